/* futex_pingpong.c — the floor for a cross-process wakeup: two processes
 * hand a token back and forth through a shared futex word, each sleeping in
 * FUTEX_WAIT until the other wakes it. No ring, no data: what is left is the
 * kernel's wake-up path, which the ring's futex path pays twice per round
 * trip too. Prints round-trip percentiles in ns.
 *
 *   futex_pingpong ROUNDS
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Waits until *w != v (shared futex: the waker is another process). */
static void wait_change(uint32_t *w, uint32_t v) {
    while (__atomic_load_n(w, __ATOMIC_ACQUIRE) == v) syscall(SYS_futex, w, FUTEX_WAIT, v, NULL, NULL, 0);
}

static void post(uint32_t *w) {
    __atomic_add_fetch(w, 1, __ATOMIC_RELEASE);
    syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 10000;
    uint32_t *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint32_t *ping = &w[0], *pong = &w[16]; /* separate cache lines */
    pid_t child = fork();
    if (child == 0) {
        for (long i = 0; i < rounds; i++) {
            wait_change(ping, (uint32_t)i);
            post(pong);
        }
        _exit(0);
    }
    uint64_t *rt = malloc(sizeof(uint64_t) * (size_t)rounds);
    for (long i = 0; i < rounds; i++) {
        uint64_t t0 = now_ns();
        post(ping);
        wait_change(pong, (uint32_t)i);
        rt[i] = now_ns() - t0;
    }
    waitpid(child, NULL, 0);
    qsort(rt, (size_t)rounds, sizeof rt[0], cmp);
    printf("p50 %llu p99 %llu\n", (unsigned long long)rt[rounds / 2], (unsigned long long)rt[rounds * 99 / 100]);
    return 0;
}
