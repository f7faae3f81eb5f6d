/* us_deathword.h — the worker's death word: how the host learns of this
 * process's death before the kernel has torn its memory down.
 *
 * The kernel's exit path (do_exit -> exit_mm -> exit_mm_release ->
 * futex_exit_release -> exit_robust_list) walks the dying thread's robust
 * futex list before it unmaps anything: every listed word that holds the
 * thread's TID gets FUTEX_OWNER_DIED, and a shared waiter is woken when
 * FUTEX_WAITERS is set. The worker lists one word, its slot's `death`, and
 * the host waits on it (see csrc/us_region.h for who writes the word when).
 * This is faster than the pidfd, which becomes readable only after exit_mm
 * has unmapped and unlocked the whole address space.
 */
#ifndef US_DEATHWORD_H
#define US_DEATHWORD_H

#include <stdint.h>

#include "us_region.h"

/* Registers the calling thread's robust list with the slot's death word as
 * its one entry, after checking that the word belongs to generation `gen`.
 * Call it once, from the thread that will own lanes, before saying READY.
 * Returns 0, or -1 (errno set) with the word left at 0: the host then sees
 * no death word and keeps to the pidfd. Replaces glibc's list for this
 * thread (see us_deathword.c for why that is fine). */
int us_deathword_register(us_slot *slot, uint32_t gen);

/* Test-only fault: makes the registered list unreadable to the kernel, as a
 * worker scribbling on its own memory could, so that its death marks no word
 * and only the pidfd can tell. */
void us_deathword_corrupt(void);

#endif
