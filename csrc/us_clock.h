/* us_clock.h — the host's audio clock thread.
 *
 * A pthread that cgo starts once and that never calls into Go, so Go's
 * garbage collector cannot stall it. Every period it wakes at an absolute
 * deadline, and for each lane moves one block from its source ring into the
 * lane's input ring and one block, `latency` periods older, from the lane's
 * output ring into its sink ring. When that output block is not there it
 * writes the declared fallback instead and counts an xrun. Goroutines feed the
 * source rings and drain the sink rings; no I/O happens here. The same
 * period can instead be driven from outside (us_clock_period below), by an
 * audio server's callback that hands its own buffers in place of the rings.
 *
 * The clock owns: lane.in.write (producer), lane.out.read (consumer), the
 * source rings' read index, the sink rings' write index and every field below
 * marked "clock". Live parameter changes ride with the input: the clock
 * stamps the ones due into the input block's header (us_block.changes), so a
 * spare that re-reads the block applies them as its predecessor did. The
 * owner's indices it reads are bounds-checked; a violation
 * marks the lane corrupt, rings the doorbell and is never followed. */
#ifndef US_CLOCK_H
#define US_CLOCK_H

#include <pthread.h>
#include <stdint.h>

#include "us_region.h"
#include "us_ring.h"

#define US_IO_SLOTS 256   /* blocks per source or sink ring; power of two */
#define US_DRY_BLOCKS 64  /* input history kept for the dry fallback */
#define US_EPOCH_SPAN 32  /* hand-overs remembered: more than an output ring can hold blocks of */
#define US_PARAM_QUEUE 64 /* live parameter changes queued per lane; power of two */

/* A live parameter change the host asks for at an input block. */
typedef struct us_param_req {
    uint64_t at_block;
    us_param_change c;
} us_param_req;

enum us_fallback { US_FALLBACK_SILENCE = 0, US_FALLBACK_DRY = 1 };

enum us_corrupt {
    US_LANE_OK = 0,
    US_LANE_CORRUPT = 1, /* clock: the owner's indices failed a check; the clock ignores the lane */
    US_LANE_RESET = 2,   /* monitor: indices repaired for a new owner; the clock resyncs */
};

/* A host-private ring between goroutines and the clock. */
typedef struct us_io_ring {
    us_ring_ctl ctl;
    us_block blocks[US_IO_SLOTS];
} us_io_ring;

typedef struct us_clock_lane {
    us_lane *lane;    /* in the lane's shared memfd */
    /* host-private configuration, set before start: never read from the lane */
    uint32_t channels;
    uint32_t _pad_cfg;
    us_ring in_ring;  /* the lane's rings, at the host's own offsets */
    us_ring out_ring;
    us_io_ring *src;  /* Go → clock: input blocks, numbered from 0 */
    us_io_ring *sink; /* clock → Go: output blocks, numbered from 0 */
    float *dry;       /* US_DRY_BLOCKS blocks of input, by block number */

    /* clock-private endpoint state */
    us_producer in;
    us_consumer out;
    us_consumer src_c;
    us_producer sink_p;
    uint32_t src_done; /* the source delivered its US_BLOCK_LAST block */
    uint32_t was_fallback;            /* the last delivered block was the fallback */
    float last[US_MAX_CHANNELS];      /* its last frame, where a declick ramp starts */

    /* published by the clock for the monitor: relaxed counters, release on in_write */
    US_LINE uint64_t in_write;                /* lane.in.write as the clock last stored it */
    uint64_t push_ns[US_RING_SLOTS];          /* when in-ring index i was pushed, at [i & mask] */
    uint32_t corrupt;                         /* enum us_corrupt: clock sets 1, monitor sets 2 */
    uint32_t _pad;
    uint64_t out_read;                        /* lane.out.read as the clock last stored it (release): the
                                               * host's own copy, which a worker's scribble cannot move */
    uint64_t garbage_block;                   /* the last block refused as garbage (relaxed, before the seq) */
    uint64_t garbage_seq;                     /* blocks refused as garbage so far (release): the monitor
                                               * kills the owner when it moves */
    /* the fencing token, written by the monitor at each hand-over
     * (epoch_from[epoch % US_EPOCH_SPAN] first, then epoch, release): epoch
     * e owns the output ring's indices from epoch_from[e] up to where epoch
     * e+1's begin, and an output block counts only if its epoch owns its
     * index. So the last owners' blocks published before their fence count,
     * and nothing a fenced owner publishes after does. */
    US_LINE uint64_t epoch;
    uint64_t epoch_from[US_EPOCH_SPAN];
    /* live parameter changes: a queue from the host's SetParam (one Go
     * writer at a time, under its lock) to the clock, which stamps each into
     * the header of the input block it asks for (or, late, the first block
     * it pushes after), at most US_BLOCK_CHANGES a block, in queue order */
    US_LINE uint64_t pq_write;                /* requests queued (Go, release) */
    US_LINE uint64_t pq_read;                 /* requests stamped (clock, release) */
    uint64_t param_late;                      /* requests stamped after the block they asked for */
    us_param_req pq[US_PARAM_QUEUE];          /* Go writes [pq_write & mask] before pq_write passes it */
    uint64_t pq_applied[US_PARAM_QUEUE];      /* clock: the block request i went into, at [i & mask],
                                               * stored before pq_read passes i */
    US_LINE uint64_t xruns;                   /* output blocks replaced by the fallback */
    uint64_t stale;                           /* output blocks dropped as older than wanted */
    uint64_t in_overflows;                    /* input blocks dropped: lane input ring full */
    uint64_t src_underruns;                   /* periods with no source block ready */
    uint64_t sink_overflows;                  /* output blocks lost: sink ring full */
    uint64_t bypassed;                        /* output blocks the owner marked as fallback */
    uint64_t corruptions;                     /* bounds violations seen */
    uint64_t delivered;                       /* blocks written to the sink */
    uint64_t garbage;                         /* output blocks with NaN, Inf or a sample past the ceiling */
    uint64_t fenced;                          /* output blocks dropped: written at another epoch than the owner's */
} us_clock_lane;

typedef struct us_clock {
    /* config, set before start */
    uint64_t period_ns;
    uint64_t periods;      /* periods to run; the last output is block periods-1-latency */
    uint32_t latency;      /* output latency in periods, < US_DRY_BLOCKS */
    uint32_t frames;       /* frames per block */
    uint32_t rate;         /* frames per second (host-private: never read from a lane) */
    uint32_t _pad_rate;
    uint32_t n_lanes;
    uint32_t fallback;     /* enum us_fallback */
    int prio;              /* SCHED_FIFO priority; 0 = ordinary scheduling */
    int cpu;               /* -1 = any */
    int doorbell_fd;       /* eventfd the monitor polls; written on a corruption or garbage */
    float ceiling;         /* an output sample beyond ±ceiling (or NaN, Inf) makes its block garbage */
    uint32_t declick;      /* frames of ramp at a switch to or from the fallback; 0 = none */
    us_clock_lane lanes[US_MAX_LANES];

    /* published by the clock */
    US_LINE uint64_t period;           /* periods completed */
    uint64_t next_deadline_ns;         /* when the next period starts */
    uint64_t start_ns;
    uint32_t running;                  /* 1 while the thread runs */
    int rt_err;                        /* errno from raising to SCHED_FIFO, 0 if raised or not asked */
    uint64_t late_max_ns;              /* worst wake-up lateness */
    uint64_t late_hist[32];            /* wake-up lateness, bucket i: [2^i, 2^(i+1)) µs; 0 holds < 1 µs */
    US_LINE uint32_t stop;             /* Go → clock: finish at the next period */
    uint32_t _pad;
    pthread_t thread;
} us_clock;

/* An external driver's audio for one period, one buffer per channel as audio
 * servers lay them out: in[l][ch] holds `frames` samples of lane l's channel
 * ch, out[l][ch] receives them. A NULL input is silence, a NULL output is
 * skipped. */
typedef struct us_clock_ext {
    const float *in[US_MAX_LANES][US_MAX_CHANNELS];
    float *out[US_MAX_LANES][US_MAX_CHANNELS];
} us_clock_ext;

/* Driving the clock from outside (an audio server's process callback)
 * instead of its own thread: call us_clock_prepare once, before the first
 * period and before anything else drives it, then us_clock_period once per
 * block from one thread at a time. Never call us_clock_start on the same
 * clock. `periods` and `stop` are the timer thread's and are not looked at;
 * next_deadline_ns is the driver's to publish (the monitor schedules its
 * deadline checks from it), and so is `running`. */

/* Takes the lanes' ring indices as they stand and records start_ns. */
void us_clock_prepare(us_clock *c, uint64_t start_ns);
/* One period, number c->period: records the lateness now_ns - due_ns, pushes
 * one input block per lane into the lane and pulls the output block
 * `latency` periods older (or the fallback, counting an xrun), then
 * publishes c->period + 1. io NULL: from the source rings into the sink
 * rings, as the timer thread does. io set: from io->in into io->out, and the
 * io rings are left alone; before `latency` periods have passed io->out gets
 * silence. Allocates nothing; its only syscalls are the doorbell write on a
 * corruption and futex wakes of ring waiters. */
void us_clock_period(us_clock *c, uint64_t due_ns, uint64_t now_ns, const us_clock_ext *io);

/* Starts the thread (SCHED_FIFO at prio when prio > 0 and allowed; otherwise
 * ordinary scheduling with rt_err set). Returns 0 or an errno. */
int us_clock_start(us_clock *c);
/* Waits for the thread to finish (after `periods` or a stop request). */
void us_clock_join(us_clock *c);

#endif
