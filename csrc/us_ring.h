/* us_ring.h — the C side of an SPSC ring of audio blocks (see us_region.h for
 * who writes which index). Header-only: the worker and the host's audio clock
 * thread both include it. Private caches live in the endpoint structs, never
 * in shared memory, so a side reloads the other's line only when it must. */
#ifndef US_RING_H
#define US_RING_H

#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "us_region.h"

static inline uint64_t us_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Shared (not FUTEX_PRIVATE) because waiter and waker are different
 * processes mapping the same memfd. The word is the low half of an index. */
static inline long us_futex_wait(uint32_t *word, uint32_t expect, const struct timespec *rel) {
    return syscall(SYS_futex, word, FUTEX_WAIT, expect, rel, NULL, 0);
}
static inline long us_futex_wake(uint32_t *word) {
    return syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0);
}
static inline void us_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* Little-endian: the low 32 bits of a 64-bit index sit at its address. */
#define US_LOW32(p64) ((uint32_t *)(void *)(p64))

typedef struct us_ring {
    us_ring_ctl *ctl;
    us_block *blocks;
    uint64_t mask;   /* slots - 1 */
    uint64_t stride; /* bytes from one block to the next: a lane's block_stride, or sizeof(us_block) */
} us_ring;

static inline us_block *us_ring_block(const us_ring *r, uint64_t idx) {
    return (us_block *)(void *)((char *)r->blocks + (idx & r->mask) * r->stride);
}

/* An endpoint's fields are private to the thread that uses it: they live
 * outside shared memory (a worker's stack, the clock's host-private struct,
 * a Go struct), so nothing here can be scribbled on by the other side. */
typedef struct us_producer {
    us_ring r;
    uint64_t write;      /* our index: only we store ctl->write */
    uint64_t read_cache; /* last ctl->read we loaded, and checked */
    uint32_t corrupt;    /* the consumer stored a read index the protocol cannot produce */
    uint32_t _pad;
} us_producer;

typedef struct us_consumer {
    us_ring r;
    uint64_t read;        /* our index: only we store ctl->read */
    uint64_t write_cache; /* last ctl->write we loaded, and checked */
    uint32_t corrupt;     /* the producer stored a write index the protocol cannot produce */
    uint32_t _pad;
} us_consumer;

/* Takes the producer's end, resuming at the ring's indices as they stand
 * (a new owner after a failover, or the host after the monitor repaired
 * them): those are checked on the first reload like any other. */
static inline void us_producer_init(us_producer *p, us_ring r) {
    p->r = r;
    p->write = US_LOAD_ACQ(&r.ctl->write);
    p->read_cache = US_LOAD_ACQ(&r.ctl->read);
    p->corrupt = p->read_cache > p->write || p->write - p->read_cache > r.mask + 1;
    if (p->corrupt) p->read_cache = p->write;
}

static inline void us_consumer_init(us_consumer *c, us_ring r) {
    c->r = r;
    c->read = US_LOAD_ACQ(&r.ctl->read);
    c->write_cache = US_LOAD_ACQ(&r.ctl->write);
    c->corrupt = c->write_cache < c->read || c->write_cache - c->read > r.mask + 1;
    if (c->corrupt) c->write_cache = c->read;
}

/* The slot to fill next, or NULL when the ring is full or the consumer's
 * index is corrupt (p->corrupt says which). The acquire load of `read`
 * pairs with the consumer's release store in us_consumer_release: once we
 * see the slot freed, its reads of the slot's data are done. A valid `read`
 * never goes back and never passes our `write`. */
static inline us_block *us_producer_peek(us_producer *p) {
    if (p->corrupt) return NULL;
    if (p->write - p->read_cache > p->r.mask) {
        uint64_t rd = US_LOAD_ACQ(&p->r.ctl->read);
        if (rd < p->read_cache || rd > p->write) {
            p->corrupt = 1;
            return NULL;
        }
        p->read_cache = rd;
        if (p->write - p->read_cache > p->r.mask) return NULL;
    }
    return us_ring_block(&p->r, p->write);
}

/* Makes the peeked slot visible: the release store orders the block's data
 * before the index; the fence orders the index before the waiters load (see
 * the sleeping protocol in us_region.h). */
static inline void us_producer_publish(us_producer *p) {
    p->write++;
    US_STORE_REL(&p->r.ctl->write, p->write);
    US_FENCE();
    if (US_LOAD_RLX(&p->r.ctl->write_waiters)) us_futex_wake(US_LOW32(&p->r.ctl->write));
}

/* The next slot to drain, or NULL when the ring is empty or the producer's
 * index is corrupt (c->corrupt). The acquire load of `write` pairs with the
 * producer's release store in us_producer_publish: the block's data is
 * visible once its index is. A valid `write` never goes back and never runs
 * more than a ring ahead of our `read`. */
static inline us_block *us_consumer_peek(us_consumer *c) {
    if (c->corrupt) return NULL;
    if (c->read == c->write_cache) {
        uint64_t w = US_LOAD_ACQ(&c->r.ctl->write);
        if (w < c->write_cache || w - c->read > c->r.mask + 1) {
            c->corrupt = 1;
            return NULL;
        }
        c->write_cache = w;
        if (c->read == c->write_cache) return NULL;
    }
    return us_ring_block(&c->r, c->read);
}

/* Frees the peeked slot: release, so our reads of its data happen before
 * the producer can see it free; then the sleeping protocol's fence. */
static inline void us_consumer_release(us_consumer *c) {
    c->read++;
    US_STORE_REL(&c->r.ctl->read, c->read);
    US_FENCE();
    if (US_LOAD_RLX(&c->r.ctl->read_waiters)) us_futex_wake(US_LOW32(&c->r.ctl->read));
}

/* Sleeps until ctl->write moves past our read or `rel` passes (NULL:
 * forever). Returns after any wake; callers re-check their own conditions. */
static inline void us_consumer_sleep(us_consumer *c, const struct timespec *rel) {
    us_ring_ctl *ctl = c->r.ctl;
    US_STORE_RLX(&ctl->write_waiters, 1u);
    US_FENCE();
    uint64_t w = US_LOAD_ACQ(&ctl->write);
    if (w == c->read) us_futex_wait(US_LOW32(&ctl->write), (uint32_t)w, rel);
    US_STORE_RLX(&ctl->write_waiters, 0u);
}

static inline void us_producer_sleep(us_producer *p, const struct timespec *rel) {
    us_ring_ctl *ctl = p->r.ctl;
    US_STORE_RLX(&ctl->read_waiters, 1u);
    US_FENCE();
    uint64_t r = US_LOAD_ACQ(&ctl->read);
    if (p->write - r > p->r.mask) us_futex_wait(US_LOW32(&ctl->read), (uint32_t)r, rel);
    US_STORE_RLX(&ctl->read_waiters, 0u);
}

/* A lane's rings, at the offsets of its configuration (never the lane's own
 * bytes: the host takes them from its private copy, the worker from its
 * slot map). */
static inline us_ring us_lane_in(us_lane *l, const us_lane_cfg *c) {
    us_ring r = {&l->in, (us_block *)(void *)((char *)l + c->in_off), US_RING_SLOTS - 1, c->block_stride};
    return r;
}
static inline us_ring us_lane_out(us_lane *l, const us_lane_cfg *c) {
    us_ring r = {&l->out, (us_block *)(void *)((char *)l + c->out_off), US_RING_SLOTS - 1, c->block_stride};
    return r;
}

#endif
