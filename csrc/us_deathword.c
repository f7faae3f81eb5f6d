/* us_deathword.c — see us_deathword.h. */
#define _GNU_SOURCE
#include "us_deathword.h"

#include <errno.h>
#include <linux/futex.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The list head and its one entry live in this process's private memory
 * (.bss), never in the region. The kernel reads them from the dying task's
 * memory and follows them: a list in memory that the host or another worker
 * can write would let that writer steer the dying worker's kernel into
 * marking any word of its choice with OWNER_DIED, or make the walk stop
 * early so the death goes unseen. Only the word itself must be shared, and
 * the kernel only ever compare-and-swaps it when it holds our TID.
 *
 * The entry is a list node whose futex is `futex_offset` bytes from it: the
 * offset spans the two mappings (private .bss to the shared slot), which the
 * kernel allows (it is a plain signed byte offset). */
static struct robust_list g_entry;
static struct robust_list_head g_head;

int us_deathword_register(us_slot *slot, uint32_t gen) {
    if (US_LOAD_ACQ(&slot->death_gen) != gen) {
        errno = ESTALE; /* not our word: the slot was prepared for someone else */
        return -1;
    }
    uint32_t *word = &slot->death;
    pid_t tid = (pid_t)syscall(SYS_gettid); /* as our PID namespace sees it, as the kernel compares */
    /* Stored before the list is registered: a death in between finds an empty
     * list, not a half-made one. */
    US_STORE_REL(word, (uint32_t)tid & US_FUTEX_TID_MASK);

    g_entry.next = &g_head.list; /* one entry, then back to the head: the end */
    g_head.list.next = &g_entry;
    g_head.futex_offset = (long)((char *)word - (char *)&g_entry);
    g_head.list_op_pending = NULL;
    /* This replaces the list glibc registered for this thread at start-up.
     * glibc keeps only PTHREAD_MUTEX_ROBUST mutexes on it; the worker takes
     * none (its only futexes are the ring and command words, plain waits),
     * and a user's kernel runs inside the worker's thread under the same
     * rule (kernels may not lock: see us_kernel.h). Threads a kernel starts
     * get glibc's list of their own and are not watched by this word. */
    if (syscall(SYS_set_robust_list, &g_head, sizeof g_head) != 0) {
        int e = errno;
        US_STORE_REL(word, 0u);
        errno = e;
        return -1;
    }
    return 0;
}

void us_deathword_corrupt(void) {
    /* An unmapped address: the kernel's fetch of the first entry faults and
     * exit_robust_list gives up silently, as it does for any corrupt list. */
    g_head.list.next = (struct robust_list *)(uintptr_t)0x8;
}
