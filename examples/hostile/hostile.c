/* hostile.c — a user kernel that attacks the worker running it, for the
 * isolation tests (supervisor/sandbox_test.go). Never ship it.
 *
 *   make user-worker KERNEL=examples/hostile/hostile.c OUT=hostile-worker
 *
 * It passes audio through untouched, except on a block whose first sample
 * is exactly HOSTILE_TRIGGER: then it performs the attack its `mode`
 * parameter names, as a kernel author could from process(). The test puts
 * the trigger in one block of one lane; a worker that survives the attack
 * carries on passing audio through. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <math.h>
#include <linux/falloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <time.h>
#include <unistd.h>

#include "us_kernel.h"
#include "us_region.h"

#define HOSTILE_TRIGGER 12.345f /* loud, yet under the +24 dBFS ceiling: passed through, it is not garbage */

/* Modes, in the order of the test's table. */
enum {
    M_NONE = 0,
    M_FORK = 1,           /* fork a child that outlives us */
    M_FORK_CRASH = 2,     /* fork children, then crash */
    M_SOCKET = 3,         /* open a socket */
    M_OPEN = 4,           /* open a file */
    M_EXECVE = 5,         /* become another program */
    M_KILL_HOST = 6,      /* kill(getppid(), SIGKILL) */
    M_PTRACE = 7,         /* attach to the host */
    M_SCHED = 8,          /* SCHED_FIFO 99 for ourselves */
    M_PDEATHSIG = 9,      /* clear our death signal */
    M_MLOCK = 10,         /* lock 2 GiB */
    M_HOST_MEM = 11,      /* open /proc/<host>/mem read-write */
    M_THREAD = 12,        /* start and join a thread that marks the block: allowed */
    M_EXIT = 13,          /* _exit on the trigger block: no last gasp */
    M_SEGV_BLOCKED = 14,  /* crash on the trigger block with every signal blocked: no last gasp */
    M_EXIT_ALWAYS = 15,   /* _exit on every block: a restart storm */
    M_NAN_STATE = 16,     /* poison the state on the trigger: NaN out of every block from then on */
    M_LOUD = 17,          /* +80 dB on the trigger block only */
    M_SLOW = 18,          /* every block takes 800 µs: slow, not hung */
    M_LANE_SCRIBBLE = 19, /* write 1e8 over every field of its lane that the host writes, carry on */
    M_LANE_SCRIBBLE_CRASH = 20, /* the same, then crash: the next owner must still take the lane */
    M_PUNCH = 21,         /* punch a hole in its own block's memory (MADV_REMOVE): the region vanishing under the host */
    M_DUP2 = 22,          /* dup2 stdout over stderr, as a kernel would to redirect the region's fd */
    M_FALLOCATE = 23,     /* fallocate(PUNCH_HOLE) on fd 3, where the region used to be */
    M_PRINT_CRASH = 24,   /* counts blocks in its state and adds the count; prints a line to stderr
                           * on the trigger, then crashes: the host must pass the line on */
    M_THREAD_LEFT = 25,   /* start a thread that sleeps on, then end our own thread alone (SYS_exit) */
    M_LAST = M_THREAD_LEFT,
};

static const us_param_spec hostile_params[] = {
    {"mode", "", 0.0f, (float)M_LAST, 0.0f, 1},
};

static size_t hostile_state_bytes(uint32_t channels) {
    (void)channels;
    return sizeof(uint32_t);
}

static int hostile_init(void *state, const float *params, uint32_t channels, float rate) {
    (void)params;
    (void)channels;
    (void)rate;
    memset(state, 0, sizeof(uint32_t));
    return 0;
}

#define HOSTILE_THREAD_MARK 4.321f /* under the +24 dBFS ceiling: a mark, not garbage */

/* Sleeps for ever, without spinning (it inherits the worker's SCHED_FIFO):
 * the sibling left running when the worker's own thread is gone. */
static void *sleeper_body(void *arg) {
    static uint32_t never;
    (void)arg;
    for (;;) syscall(SYS_futex, &never, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    return NULL;
}

/* Leaves a mark in the block, so the test sees the thread really ran. */
static void *thread_body(void *arg) {
    float *buf = arg;
    buf[1] = HOSTILE_THREAD_MARK;
    return NULL;
}

static void child_lingers(void) {
    for (;;) pause();
}

/* Its own lane's memory, found from the state pointer the worker hands the
 * kernel: a lane is mapped page-aligned and this kernel's little state lies
 * in its first page. NULL if the guess is wrong. */
static us_lane *own_lane(void *state) {
    us_lane *l = (us_lane *)((uintptr_t)state & ~(uintptr_t)4095);
    return l->hdr.magic == US_REGION_MAGIC && l->hdr.kind == US_MAP_LANE ? l : NULL;
}

/* What used to be `lane.channels = 1e8`: today the lane holds no
 * configuration, so the attack writes 1e8 over every field of the lane that
 * the host writes (its header, the owner's epoch and slot, the bypass
 * block). The host must read none of it back. */
static void scribble_lane(void *state) {
    us_lane *l = own_lane(state);
    if (!l) return;
    const float big = 1e8f;
    uint32_t w;
    memcpy(&w, &big, sizeof w);
    uint64_t w64 = (uint64_t)w << 32 | w;
    uint32_t *h = (uint32_t *)(void *)&l->hdr;
    for (size_t i = 0; i < sizeof l->hdr / sizeof *h; i++) h[i] = w;
    l->owner_epoch = w64;
    l->owner_slot = w;
    l->bypass_block = w64;
}

static void attack(int mode, void *state, float *buf) {
    pid_t host = getppid();
    char path[64];
    switch (mode) {
    case M_FORK:
        if (fork() == 0) child_lingers();
        break;
    case M_FORK_CRASH:
        for (int i = 0; i < 4; i++)
            if (fork() == 0) child_lingers();
        {
            volatile int *volatile null = NULL;
            *null = 1;
        }
        break;
    case M_SOCKET: {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s >= 0) close(s);
        break;
    }
    case M_OPEN: {
        int fd = open("/etc/passwd", O_RDONLY);
        if (fd >= 0) close(fd);
        break;
    }
    case M_EXECVE: {
        char *argv[] = {"/bin/sleep", "1000", NULL};
        execv(argv[0], argv);
        break;
    }
    case M_KILL_HOST:
        kill(host, SIGKILL);
        break;
    case M_PTRACE:
        ptrace(PTRACE_ATTACH, host, NULL, NULL);
        break;
    case M_SCHED: {
        struct sched_param sp = {.sched_priority = 99};
        sched_setscheduler(0, SCHED_FIFO, &sp);
        break;
    }
    case M_PDEATHSIG:
        prctl(PR_SET_PDEATHSIG, 0);
        break;
    case M_MLOCK: {
        size_t n = (size_t)2 << 30;
        void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        mlock(p == MAP_FAILED ? state : p, n);
        break;
    }
    case M_HOST_MEM: {
        snprintf(path, sizeof path, "/proc/%d/mem", (int)host);
        int fd = open(path, O_RDWR);
        if (fd >= 0) close(fd);
        break;
    }
    case M_PUNCH: {
        uintptr_t page = (uintptr_t)buf & ~(uintptr_t)4095;
        madvise((void *)page, 4096, MADV_REMOVE);
        break;
    }
    case M_DUP2:
        dup2(1, 2);
        break;
    case M_FALLOCATE:
        fallocate(3, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096);
        break;
    case M_LANE_SCRIBBLE:
        scribble_lane(state);
        break;
    case M_LANE_SCRIBBLE_CRASH: {
        scribble_lane(state);
        volatile int *volatile null = NULL;
        *null = 1;
        break;
    }
    case M_THREAD: {
        pthread_t t;
        if (pthread_create(&t, NULL, thread_body, buf) == 0) pthread_join(t, NULL);
        break;
    }
    case M_PRINT_CRASH: {
        /* A kernel author's own diagnostic, the last thing it says. */
        fprintf(stderr, "hostile: this block starts with %.1f and I cannot take it\n", (double)buf[0]);
        volatile int *volatile null = NULL;
        *null = 1;
        break;
    }
    case M_THREAD_LEFT: {
        pthread_t t;
        if (pthread_create(&t, NULL, sleeper_body, NULL) == 0) syscall(SYS_exit, 0);
        break;
    }
    case M_EXIT:
        _exit(3);
    case M_SEGV_BLOCKED: {
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_BLOCK, &all, NULL);
        *(volatile int *)0 = 1; /* a blocked synchronous SIGSEGV kills at once */
        break;
    }
    default:
        break;
    }
}

static void hostile_process(void *state, const float *params, float *buf, uint32_t frames, uint32_t channels) {
    int mode = (int)params[0];
    if (mode == M_EXIT_ALWAYS) _exit(3);
    if (mode == M_SLOW) {
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do clock_gettime(CLOCK_MONOTONIC, &t);
        while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 800000L);
    }
    if (mode == M_NAN_STATE && buf[0] == HOSTILE_TRIGGER) *(uint32_t *)state = 1;
    if (mode == M_NAN_STATE && *(uint32_t *)state) {
        for (uint32_t i = 0; i < frames * channels; i++) buf[i] = NAN;
        return;
    }
    if (mode == M_LOUD && buf[0] == HOSTILE_TRIGGER) {
        for (uint32_t i = 0; i < frames * channels; i++) buf[i] *= 10000.0f;
        return;
    }
    if (mode == M_PRINT_CRASH) {
        /* Stateful, so that a replay from the wrong state shows: it counts
         * its blocks in its state (before it looks at the block, so the
         * buffer a crash leaves behind is one count ahead of the committed
         * one) and adds the count to every sample. */
        uint32_t *count = state;
        (*count)++;
        if (buf[0] == HOSTILE_TRIGGER) attack(mode, state, buf);
        for (uint32_t i = 0; i < frames * channels; i++) buf[i] += (float)*count * 0x1p-12f;
        return;
    }
    if (buf[0] == HOSTILE_TRIGGER) attack((int)params[0], state, buf);
}

static const us_kernel hostile = {
    .abi_version = US_KERNEL_ABI_VERSION,
    .name = "hostile",
    .variant = "scalar",
    .summary = "passes audio through; attacks its worker on a trigger block (tests only)",
    .n_params = 1,
    .params = hostile_params,
    .state_bytes = hostile_state_bytes,
    .init = hostile_init,
    .process = hostile_process,
};

US_USER_KERNELS(&hostile);
