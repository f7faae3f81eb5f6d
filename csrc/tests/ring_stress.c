/* ring_stress.c — the C ring endpoints under ThreadSanitizer: one producer
 * thread and one consumer thread pass numbered blocks through a us_ring,
 * sleeping on the futex whenever the ring is full or empty. TSan checks that
 * every access to block data is ordered by the acquire/release pairs in
 * us_ring.h; the consumer checks every block's number and contents. A lost
 * wakeup shows as a stall, which the timeouts turn into a failure.
 *
 *   ring_stress BLOCKS SPIN   (SPIN 1: spin before sleeping, 0: sleep at once)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "us_ring.h"

static us_ring_ctl ctl;
static us_block blocks[US_RING_SLOTS];
static unsigned long n_blocks;
static int spin;

static uint32_t pattern(uint64_t b, uint32_t i) { return (uint32_t)b * 2654435761u + i; }

static void *produce(void *arg) {
    (void)arg;
    us_producer p;
    us_ring r = {&ctl, blocks, US_RING_SLOTS - 1, sizeof(us_block)};
    us_producer_init(&p, r);
    struct timespec to = {2, 0};
    for (uint64_t b = 0; b < n_blocks; b++) {
        us_block *blk;
        int tries = 0;
        while (!(blk = us_producer_peek(&p))) {
            if (spin && tries++ < 100) { us_cpu_relax(); continue; }
            uint64_t t0 = us_now_ns();
            us_producer_sleep(&p, &to);
            if (!us_producer_peek(&p) && us_now_ns() - t0 > 1500000000ull) {
                fprintf(stderr, "producer stalled at block %lu: lost wakeup\n", (unsigned long)b);
                exit(2);
            }
        }
        uint32_t *d = (uint32_t *)blk->data;
        for (uint32_t i = 0; i < 16; i++) d[i] = pattern(b, i);
        blk->block = b;
        blk->frames = 16;
        us_producer_publish(&p);
    }
    return NULL;
}

static void *consume(void *arg) {
    (void)arg;
    us_consumer c;
    us_ring r = {&ctl, blocks, US_RING_SLOTS - 1, sizeof(us_block)};
    us_consumer_init(&c, r);
    struct timespec to = {2, 0};
    for (uint64_t b = 0; b < n_blocks; b++) {
        us_block *blk;
        int tries = 0;
        while (!(blk = us_consumer_peek(&c))) {
            if (spin && tries++ < 100) { us_cpu_relax(); continue; }
            uint64_t t0 = us_now_ns();
            us_consumer_sleep(&c, &to);
            if (!us_consumer_peek(&c) && us_now_ns() - t0 > 1500000000ull) {
                fprintf(stderr, "consumer stalled at block %lu: lost wakeup\n", (unsigned long)b);
                exit(2);
            }
        }
        const uint32_t *d = (const uint32_t *)blk->data;
        if (blk->block != b || blk->frames != 16) {
            fprintf(stderr, "block %lu arrived as %lu\n", (unsigned long)b, (unsigned long)blk->block);
            exit(3);
        }
        for (uint32_t i = 0; i < 16; i++)
            if (d[i] != pattern(b, i)) {
                fprintf(stderr, "block %lu sample %u corrupted\n", (unsigned long)b, i);
                exit(3);
            }
        us_consumer_release(&c);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: ring_stress BLOCKS SPIN\n");
        return 64;
    }
    n_blocks = strtoul(argv[1], NULL, 10);
    spin = atoi(argv[2]);
    pthread_t pt, ct;
    pthread_create(&ct, NULL, consume, NULL);
    pthread_create(&pt, NULL, produce, NULL);
    pthread_join(pt, NULL);
    pthread_join(ct, NULL);
    printf("ring_stress: %lu blocks ok\n", n_blocks);
    return 0;
}
