/* us_clock.c — see us_clock.h. */
#define _GNU_SOURCE
#include "us_clock.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

static void add_ns(struct timespec *ts, uint64_t ns) {
    uint64_t t = (uint64_t)ts->tv_nsec + ns;
    ts->tv_sec += (time_t)(t / 1000000000ull);
    ts->tv_nsec = (long)(t % 1000000000ull);
}

static uint64_t ts_ns(const struct timespec *ts) {
    return (uint64_t)ts->tv_sec * 1000000000ull + (uint64_t)ts->tv_nsec;
}

static void mark_corrupt(us_clock *c, us_clock_lane *cl) {
    if (US_LOAD_ACQ(&cl->corrupt) == US_LANE_OK) {
        US_STORE_RLX(&cl->corruptions, cl->corruptions + 1);
        US_STORE_REL(&cl->corrupt, (uint32_t)US_LANE_CORRUPT);
        uint64_t one = 1;
        ssize_t n = write(c->doorbell_fd, &one, sizeof one);
        (void)n;
    }
}

/* When the monitor has handed a lane to a new owner after its indices went
 * wrong, pick the owner's indices up again once the new owner has stored the
 * ones the monitor chose; until then the lane is left alone. Our own indices
 * are ours: whatever a worker wrote over them is overwritten, never read.
 * Returns 1 when the lane is usable. */
static int lane_usable(us_clock_lane *cl) {
    uint32_t st = US_LOAD_ACQ(&cl->corrupt);
    if (st == US_LANE_OK) return 1;
    if (st == US_LANE_CORRUPT) return 0;
    /* Ours first, every period until the new owner's are in range: it reads
     * them, and must not find what the old owner wrote there. */
    US_STORE_REL(&cl->in.r.ctl->write, cl->in.write);
    US_STORE_REL(&cl->out.r.ctl->read, cl->out.read);
    uint64_t r = US_LOAD_ACQ(&cl->in.r.ctl->read);
    uint64_t w = US_LOAD_ACQ(&cl->out.r.ctl->write);
    if (r > cl->in.write || cl->in.write - r > US_RING_SLOTS || w < cl->out.read || w - cl->out.read > US_RING_SLOTS)
        return 0;
    cl->in.read_cache = r;
    cl->in.corrupt = 0;
    cl->out.write_cache = w;
    cl->out.corrupt = 0;
    US_STORE_REL(&cl->corrupt, (uint32_t)US_LANE_OK);
    return 1;
}

/* Whether owner epoch e owned output index idx (see us_clock_lane.epoch). */
static int epoch_owns(us_clock_lane *cl, uint64_t e, uint64_t idx) {
    uint64_t cur = US_LOAD_ACQ(&cl->epoch);
    if (e == 0 || e > cur || cur - e >= US_EPOCH_SPAN) return 0;
    if (idx < US_LOAD_RLX(&cl->epoch_from[e % US_EPOCH_SPAN])) return 0;
    return e == cur || idx < US_LOAD_RLX(&cl->epoch_from[(e + 1) % US_EPOCH_SPAN]);
}

/* Interleaves an external driver's per-channel buffers into dst; a channel
 * without a buffer is silence. */
static void ext_gather(float *dst, const float *const *in, uint32_t ch, uint32_t frames) {
    for (uint32_t c = 0; c < ch; c++) {
        const float *s = in[c];
        if (s)
            for (uint32_t f = 0; f < frames; f++) dst[(size_t)f * ch + c] = s[f];
        else
            for (uint32_t f = 0; f < frames; f++) dst[(size_t)f * ch + c] = 0.0f;
    }
}

static void ext_scatter(float *const *out, const float *src, uint32_t ch, uint32_t frames) {
    for (uint32_t c = 0; c < ch; c++) {
        float *d = out[c];
        if (!d) continue;
        if (src)
            for (uint32_t f = 0; f < frames; f++) d[f] = src[(size_t)f * ch + c];
        else
            memset(d, 0, (size_t)frames * sizeof(float));
    }
}

/* Stamps the queued parameter changes due at block k (and any a late
 * request asked for earlier) into input block ib: no lock, no allocation,
 * the queue is host-private. */
static void stamp_changes(us_clock_lane *cl, us_block *ib, uint64_t k) {
    uint64_t r = cl->pq_read, w = US_LOAD_ACQ(&cl->pq_write);
    uint32_t n = 0;
    if (w - r > US_PARAM_QUEUE) w = r; /* cannot happen: SetParam bounds it */
    for (; r < w && n < US_BLOCK_CHANGES; r++, n++) {
        const us_param_req *q = &cl->pq[r & (US_PARAM_QUEUE - 1)];
        if (q->at_block > k) break;
        if (q->at_block < k) US_STORE_RLX(&cl->param_late, cl->param_late + 1);
        ib->changes[n] = q->c;
        US_STORE_RLX(&cl->pq_applied[r & (US_PARAM_QUEUE - 1)], k);
    }
    ib->n_changes = n;
    if (r != cl->pq_read) US_STORE_REL(&cl->pq_read, r);
}

/* in: the external driver's buffers for this lane, or NULL for the source ring. */
static void push_input(us_clock *c, us_clock_lane *cl, uint64_t k, uint64_t now, const float *const *in) {
    size_t n = (size_t)c->frames * cl->channels;
    float *dry = cl->dry + (k % US_DRY_BLOCKS) * n;
    uint32_t frames = c->frames, flags = 0;

    us_block *sb = (in || cl->src_done) ? NULL : us_consumer_peek(&cl->src_c);
    if (in) {
        ext_gather(dry, in, cl->channels, c->frames);
    } else if (sb) {
        frames = sb->frames <= c->frames ? sb->frames : c->frames;
        flags = sb->flags;
        memcpy(dry, sb->data, (size_t)frames * cl->channels * sizeof(float));
        if (frames < c->frames) memset(dry + (size_t)frames * cl->channels, 0, (n - (size_t)frames * cl->channels) * sizeof(float));
        if (flags & US_BLOCK_LAST) cl->src_done = 1;
        us_consumer_release(&cl->src_c);
    } else {
        /* Past the end we feed silence so the last blocks flush through the
         * latency; before it, an empty source is an underrun. */
        if (!cl->src_done) US_STORE_RLX(&cl->src_underruns, cl->src_underruns + 1);
        memset(dry, 0, n * sizeof(float));
    }
    frames = c->frames;

    if (!lane_usable(cl)) {
        US_STORE_RLX(&cl->in_overflows, cl->in_overflows + 1);
        return;
    }
    us_block *ib = us_producer_peek(&cl->in);
    /* The ring checked the owner's read index (us_ring.h): never followed. */
    if (cl->in.corrupt) {
        mark_corrupt(c, cl);
        return;
    }
    if (!ib) {
        US_STORE_RLX(&cl->in_overflows, cl->in_overflows + 1);
        return;
    }
    memcpy(ib->data, dry, n * sizeof(float));
    ib->block = k;
    ib->frames = frames;
    ib->flags = flags;
    ib->t_push_ns = now;
    /* Consumed only with a block that reaches the lane: a change due at a
     * block that never does rides with the next one. */
    stamp_changes(cl, ib, k);
    /* in_write goes up before the lane's own index: the monitor reads the
     * owner's commit first and in_write second, and a commit can then never
     * look ahead of what the host pushed. */
    US_STORE_RLX(&cl->push_ns[cl->in.write & (US_RING_SLOTS - 1)], now);
    US_STORE_REL(&cl->in_write, cl->in.write + 1);
    us_producer_publish(&cl->in);
}

/* A block whose samples a user's kernel left NaN, infinite, or past the
 * ceiling never reaches the output: `!(|x| <= ceiling)` is true for all
 * three, NaN included, with one compare a sample. */
static int is_garbage(const float *x, size_t n, float ceiling) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad |= !(fabsf(x[i]) <= ceiling);
    return bad;
}

static void refuse_garbage(us_clock *c, us_clock_lane *cl, uint64_t block) {
    US_STORE_RLX(&cl->garbage, cl->garbage + 1);
    US_STORE_RLX(&cl->garbage_block, block);
    US_STORE_REL(&cl->garbage_seq, cl->garbage_seq + 1);
    uint64_t one = 1;
    ssize_t w = write(c->doorbell_fd, &one, sizeof one);
    (void)w;
}

/* At a switch between the chain's output and the fallback (xrun, bypass,
 * garbage), the first `declick` frames of the new block start from where
 * the last block ended and ramp to the new signal: a step becomes a short
 * slope instead of a click. x is interleaved (stride ch) or, planar, one
 * channel's buffer (stride 1) per call. */
static void ramp(float *x, size_t stride, uint32_t frames, uint32_t d, float from) {
    if (d > frames) d = frames;
    float delta = from - x[0];
    for (uint32_t i = 0; i < d; i++) x[i * stride] += delta * (float)(d - i) / (float)(d + 1);
}

/* Moves output block `want` to the sink (the external driver's buffers when
 * out is not NULL), or the fallback when it is not ready. */
static void pull_output(us_clock *c, us_clock_lane *cl, uint64_t want, float *const *out) {
    const uint32_t ch = cl->channels;
    const size_t n = (size_t)c->frames * ch;
    us_block *got = NULL;
    if (lane_usable(cl)) {
        for (;;) {
            us_block *ob = us_consumer_peek(&cl->out);
            /* The ring checked the owner's write index (us_ring.h). */
            if (cl->out.corrupt) {
                mark_corrupt(c, cl);
                break;
            }
            if (!ob) break;
            /* The fencing token: a block counts only if its epoch owned its
             * index. The epoch is loaded after the peek, so a block of the
             * new owner's is never judged by the epoch before it. */
            if (!epoch_owns(cl, ob->epoch, cl->out.read)) {
                US_STORE_RLX(&cl->fenced, cl->fenced + 1);
                us_consumer_release(&cl->out);
                continue;
            }
            uint64_t b = ob->block;
            if (b > want + c->latency) { /* never pushed: a block number the owner made up */
                mark_corrupt(c, cl);
                break;
            }
            if (b < want) { /* a block a dead owner published and its successor redid */
                US_STORE_RLX(&cl->stale, cl->stale + 1);
                us_consumer_release(&cl->out);
                continue;
            }
            if (b == want) {
                if (ob->frames != c->frames) {
                    mark_corrupt(c, cl);
                    break;
                }
                if (is_garbage(ob->data, n, c->ceiling)) {
                    refuse_garbage(c, cl, b);
                    us_consumer_release(&cl->out);
                    break; /* the fallback plays instead */
                }
                got = ob;
            }
            break; /* b > want: ours never came; leave the later one */
        }
    }
    const uint32_t fallback = !got || (got->flags & US_BLOCK_BYPASSED);
    const int switched = c->declick && fallback != cl->was_fallback;
    cl->was_fallback = fallback;

    if (out) {
        const float *src = NULL;
        if (got) {
            src = got->data;
            if (got->flags & US_BLOCK_BYPASSED) US_STORE_RLX(&cl->bypassed, cl->bypassed + 1);
        } else {
            US_STORE_RLX(&cl->xruns, cl->xruns + 1);
            if (c->fallback == US_FALLBACK_DRY) src = cl->dry + (want % US_DRY_BLOCKS) * n;
        }
        ext_scatter(out, src, ch, c->frames);
        if (got) us_consumer_release(&cl->out);
        for (uint32_t k = 0; k < ch; k++) {
            if (!out[k]) continue;
            if (switched) ramp(out[k], 1, c->frames, c->declick, cl->last[k]);
            cl->last[k] = out[k][c->frames - 1];
        }
        US_STORE_RLX(&cl->delivered, cl->delivered + 1);
        return;
    }

    us_block *sb = us_producer_peek(&cl->sink_p);
    if (!sb) {
        US_STORE_RLX(&cl->sink_overflows, cl->sink_overflows + 1);
        if (got) us_consumer_release(&cl->out);
        return;
    }
    uint32_t flags = 0;
    if (got) {
        memcpy(sb->data, got->data, n * sizeof(float));
        flags = got->flags & US_BLOCK_BYPASSED;
        if (flags) US_STORE_RLX(&cl->bypassed, cl->bypassed + 1);
        us_consumer_release(&cl->out);
    } else {
        US_STORE_RLX(&cl->xruns, cl->xruns + 1);
        flags = US_BLOCK_BYPASSED;
        if (c->fallback == US_FALLBACK_DRY)
            memcpy(sb->data, cl->dry + (want % US_DRY_BLOCKS) * n, n * sizeof(float));
        else
            memset(sb->data, 0, n * sizeof(float));
    }
    for (uint32_t k = 0; k < ch; k++) {
        if (switched) ramp(sb->data + k, ch, c->frames, c->declick, cl->last[k]);
        cl->last[k] = sb->data[(size_t)(c->frames - 1) * ch + k];
    }
    sb->block = want;
    sb->frames = c->frames;
    sb->flags = flags;
    sb->t_push_ns = us_now_ns();
    us_producer_publish(&cl->sink_p);
    US_STORE_RLX(&cl->delivered, cl->delivered + 1);
}

static void record_lateness(us_clock *c, uint64_t late) {
    if (late > c->late_max_ns) US_STORE_RLX(&c->late_max_ns, late);
    uint64_t us = late / 1000;
    int b = 0;
    while (us > 0 && b < 31) {
        us >>= 1;
        b++;
    }
    US_STORE_RLX(&c->late_hist[b], c->late_hist[b] + 1);
}

static void prepare_lanes(us_clock *c) {
    for (uint32_t i = 0; i < c->n_lanes; i++) {
        us_clock_lane *cl = &c->lanes[i];
        us_producer_init(&cl->in, cl->in_ring);
        us_consumer_init(&cl->out, cl->out_ring);
        us_ring src = {&cl->src->ctl, cl->src->blocks, US_IO_SLOTS - 1, sizeof(us_block)};
        us_ring sink = {&cl->sink->ctl, cl->sink->blocks, US_IO_SLOTS - 1, sizeof(us_block)};
        us_consumer_init(&cl->src_c, src);
        us_producer_init(&cl->sink_p, sink);
        US_STORE_REL(&cl->in_write, cl->in.write);
        US_STORE_REL(&cl->out_read, cl->out.read);
    }
}

void us_clock_prepare(us_clock *c, uint64_t start_ns) {
    prepare_lanes(c);
    US_STORE_RLX(&c->start_ns, start_ns);
}

void us_clock_period(us_clock *c, uint64_t due_ns, uint64_t now_ns, const us_clock_ext *io) {
    /* Only this thread stores c->period, so its own load needs no ordering. */
    uint64_t k = US_LOAD_RLX(&c->period);
    /* Orders the store of `period` that ended the last period before the
     * loads of the parameter queues below: SetParam stores a queue's write
     * index and then loads `period`, so either it sees that this period has
     * not begun (and we see its request) or it waits for our answer. */
    US_FENCE();
    record_lateness(c, now_ns > due_ns ? now_ns - due_ns : 0);
    for (uint32_t i = 0; i < c->n_lanes; i++) push_input(c, &c->lanes[i], k, now_ns, io ? io->in[i] : NULL);
    if (k >= c->latency) {
        for (uint32_t i = 0; i < c->n_lanes; i++) {
            pull_output(c, &c->lanes[i], k - c->latency, io ? io->out[i] : NULL);
            US_STORE_REL(&c->lanes[i].out_read, c->lanes[i].out.read);
        }
    } else if (io) {
        /* Nothing has come through the latency yet: an external sink still
         * hears every period, so it hears silence. */
        for (uint32_t i = 0; i < c->n_lanes; i++) ext_scatter(io->out[i], NULL, c->lanes[i].channels, c->frames);
    }
    US_STORE_REL(&c->period, k + 1);
}

static void *clock_main(void *arg) {
    us_clock *c = arg;
    if (c->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(c->cpu, &set);
        sched_setaffinity(0, sizeof set, &set);
    }
    prepare_lanes(c);
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    US_STORE_RLX(&c->start_ns, ts_ns(&deadline));
    for (uint64_t k = 0; k < c->periods; k++) {
        US_STORE_REL(&c->next_deadline_ns, ts_ns(&deadline));
        /* The only blocking call on this thread; EINTR just re-sleeps. */
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR) {
        }
        us_clock_period(c, ts_ns(&deadline), us_now_ns(), NULL);
        if (US_LOAD_ACQ(&c->stop)) break;
        add_ns(&deadline, c->period_ns);
    }
    US_STORE_REL(&c->running, 0u);
    return NULL;
}

int us_clock_start(us_clock *c) {
    if (c->n_lanes > US_MAX_LANES || c->latency >= US_DRY_BLOCKS || c->frames == 0 || c->period_ns == 0)
        return EINVAL;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    c->rt_err = 0;
    if (c->prio > 0) {
        struct sched_param sp = {.sched_priority = c->prio};
        pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
        pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
        pthread_attr_setschedparam(&attr, &sp);
    }
    US_STORE_REL(&c->running, 1u);
    int err = pthread_create(&c->thread, &attr, clock_main, c);
    if (err == EPERM && c->prio > 0) {
        /* No privilege: run anyway on ordinary scheduling and say so. */
        c->rt_err = EPERM;
        pthread_attr_destroy(&attr);
        pthread_attr_init(&attr);
        err = pthread_create(&c->thread, &attr, clock_main, c);
    }
    pthread_attr_destroy(&attr);
    if (err) US_STORE_REL(&c->running, 0u);
    return err;
}

void us_clock_join(us_clock *c) { pthread_join(c->thread, NULL); }
