/* us_region.h — the shared region between the Go host and its C workers.
 *
 * This header is the single source of truth for the layout: the Go view in
 * runtime/shm is built from it by cgo and a test compares every offset.
 *
 * One memfd holds one region: a header, a worker slot per process that may
 * ever attach, and a lane per DSP chain. The region outlives every worker;
 * failover hands a lane to another process, it never copies audio.
 *
 * Ownership, which is the whole protocol:
 *   host   writes: header, lane config, lane.owner_*, slot.cmd_*, slot.fault_*,
 *                  lane.in.write (producer), lane.out.read (consumer)
 *   owner  writes: lane.in.read (== commit), lane.out.write, lane.state[],
 *                  lane.out slots, lane.commit_*, its own slot's report fields
 *   slot.death has three writers (host, worker, kernel): see the field.
 *   anyone else writes nothing. A worker attaches to a lane only after the
 *   host has fenced the previous owner (its pidfd fired, or it declared itself
 *   dying and from then on touches nothing but its slot and the doorbell).
 *
 * Everything a worker writes is untrusted by the host: indices, sizes and
 * block numbers are bounds-checked on every read.
 *
 * Atomics: fields are plain integers accessed with US_LOAD_ACQ / US_STORE_REL
 * (GCC __atomic builtins, the same as C11 acquire/release) so that cgo can
 * see the struct; Go accesses them with sync/atomic (sequentially consistent,
 * which is at least as strong on amd64 and arm64).
 */
#ifndef US_REGION_H
#define US_REGION_H

#include <stddef.h>
#include <stdint.h>

#include "us_kernel.h"

#define US_REGION_MAGIC 0x4e4f494745525355ull /* "USREGION" little-endian */
#define US_LAYOUT_VERSION 3u

#define US_CACHELINE 64
#define US_MAX_LANES 16         /* lanes per region */
#define US_MAX_SLOTS 32         /* worker processes attached over a region's life at once */
#define US_RING_SLOTS 16        /* blocks in flight per ring; power of two */
#define US_SLOT_SAMPLES 4096    /* floats per audio block: frames * channels */
#define US_MAX_FRAMES 1024      /* frames per block */
#define US_MAX_CHANNELS 16      /* channels per lane */
#define US_MAX_CHAIN 8          /* kernels per lane */
#define US_LANE_STATE_BYTES 65536 /* one committed state buffer for a whole chain (an FIR's delay line) */

#ifndef US_TEST_DROP_ORDERING
#define US_LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define US_STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#else /* test only: proves the ThreadSanitizer ring test can fail */
#define US_LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define US_STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#endif
#define US_LOAD_RLX(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define US_STORE_RLX(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define US_FENCE() __atomic_thread_fence(__ATOMIC_SEQ_CST)

#define US_LINE _Alignas(US_CACHELINE)

/* ---- SPSC ring control ---------------------------------------------------
 * Indices are free-running 64-bit counters; slot = index & (slots - 1).
 * `write` is stored only by the producer, `read` only by the consumer, each
 * with release after the slot's data, and loaded by the other side with
 * acquire. Each side caches the other's index in its own private memory and
 * reloads it only when the ring looks full or empty (rigtorp/SPSCQueue), so
 * the two lines bounce between cores only when they must.
 *
 * Placement: each side's line holds only what that side writes — the
 * producer's line its index and its "I may sleep on read" flag, the
 * consumer's line the same for its side — so a store never dirties a line
 * the other side writes. The two lines are US_INDEX_LINE (128) bytes apart,
 * not 64: Intel's adjacent-line prefetcher (and AMD's) fetches 64-byte lines
 * in aligned pairs, and two indices on one pair would bounce together as if
 * they shared a line.
 *
 * Sleeping: a side that finds nothing to do after a bounded spin sets its
 * *_waiters word to 1, issues a full fence, re-checks the other's index, and
 * only then futex-waits on the low 32 bits of that index (the futex compares
 * them atomically, so a store between the re-check and the wait makes the
 * wait return at once). The other side, after its release store, issues a
 * full fence and wakes only if the waiters word is set. The two fences order
 * "waiters=1 ; load index" against "store index ; load waiters", so at least
 * one side sees the other's store: no wakeup is lost.
 *
 * Validation (us_ring.h): a side never follows an index of the other's that
 * the protocol cannot produce — a read index behind its last value or past
 * our write, a write index behind our read or more than a ring ahead. Its
 * endpoint is then marked corrupt, and stays so until re-initialised. */
#define US_INDEX_LINE 128

typedef struct us_ring_ctl {
    /* the producer's line */
    _Alignas(US_INDEX_LINE) uint64_t write; /* next index to fill; low half is a futex word */
    uint32_t read_waiters;                  /* 1 while the producer may sleep on `read` */
    uint32_t _pad_p;
    /* the consumer's line */
    _Alignas(US_INDEX_LINE) uint64_t read;  /* next index to drain; low half is a futex word */
    uint32_t write_waiters;                 /* 1 while the consumer may sleep on `write` */
    uint32_t _pad_c;
} us_ring_ctl;

/* One audio block. The header shares the first line; data starts on the next
 * so a reader of the header does not drag audio lines with it. */
typedef struct us_block {
    US_LINE uint64_t block;          /* block number in the lane's stream */
    uint64_t t_push_ns;              /* CLOCK_MONOTONIC when the producer published it */
    uint32_t frames;                 /* valid frames, <= lane frames */
    uint32_t flags;                  /* US_BLOCK_* */
    US_LINE float data[US_SLOT_SAMPLES];
} us_block;

#define US_BLOCK_BYPASSED 1u /* output is the declared fallback, not the chain's */
#define US_BLOCK_LAST 2u     /* no more input after this block */

/* One kernel of a chain, as the host configured it. */
typedef struct us_chain_entry {
    char name[US_KERNEL_NAME_MAX];
    char variant[US_KERNEL_VARIANT_MAX]; /* chosen once by the host for every worker of the lane */
    uint32_t n_params;
    uint32_t state_offset;           /* byte offset of this kernel's state in a state buffer */
    float params[US_KERNEL_MAX_PARAMS];
} us_chain_entry;

/* A lane: one DSP chain's input, output and committed state. */
typedef struct us_lane {
    /* config: written by the host before the first attach, read-only after */
    US_LINE uint32_t channels;
    uint32_t frames;                 /* frames per block */
    uint32_t rate;
    uint32_t chain_len;
    uint32_t state_bytes;            /* sum over the chain, <= US_LANE_STATE_BYTES */
    uint32_t _pad_cfg;
    us_chain_entry chain[US_MAX_CHAIN];

    /* ownership: written by the host (monitor) only */
    US_LINE uint64_t owner_epoch;    /* bumped on every hand-over */
    uint32_t owner_slot;             /* slot index of the owner, US_NO_OWNER if none */
    uint32_t _pad_own;
    uint64_t bypass_block;           /* poison input: the owner outputs the fallback for this block */

    /* commit report: written by the owner, read by the host for metrics */
    US_LINE uint64_t commit_block;   /* block number of the last commit */
    uint64_t commit_ns;              /* CLOCK_MONOTONIC of the last commit */
    uint64_t commits;                /* blocks this lane has committed, all owners */

    /* in: host produces, owner consumes. in.read is the commit point: it is
     * stored (release) only after the block's output is published and the next
     * state buffer is complete. The committed state is state[in.read & 1]. */
    us_ring_ctl in;
    /* out: owner produces, host consumes. */
    us_ring_ctl out;

    US_LINE uint8_t state[2][US_LANE_STATE_BYTES];
    us_block in_blocks[US_RING_SLOTS];
    us_block out_blocks[US_RING_SLOTS];
} us_lane;

#define US_NO_OWNER 0xffffffffu

/* Commands from the host to a worker, in slot.cmd; slot.cmd_seq is bumped
 * (release) after cmd and its arguments and is the futex word a spare sleeps
 * on. */
enum us_cmd {
    US_CMD_NONE = 0,
    US_CMD_ATTACH = 1, /* adopt cmd_lane at cmd_epoch from its committed state */
    US_CMD_EXIT = 2,   /* detach and exit(0) */
};

/* ATTACH flags. REINIT: run every kernel's init over the committed state
 * before the first block, instead of resuming from it — the host asks for
 * it when the previous owner's output was garbage (NaN, Inf), which a
 * poisoned state would go on producing forever. */
#define US_ATTACH_REINIT 1u

/* What a worker says of itself, in slot.status. */
enum us_status {
    US_ST_EMPTY = 0,    /* slot unused */
    US_ST_STARTING = 1, /* host spawned a process for it */
    US_ST_READY = 2,    /* mapped, locked, faulted in, waiting for a command */
    US_ST_ATTACHED = 3, /* owns a lane */
    US_ST_DYING = 4,    /* last gasp: touches nothing but its slot and the doorbell */
    US_ST_EXITED = 5,   /* left cleanly on US_CMD_EXIT */
    US_ST_FAILED = 6,   /* refused to start; fail_reason says why */
};

/* Faults a worker performs on itself when asked, for demos and tests. */
enum us_fault {
    US_FAULT_NONE = 0,
    US_FAULT_SEGV = 1,  /* write through a null pointer */
    US_FAULT_BUS = 2,   /* touch a page of a truncated file mapping */
    US_FAULT_ABORT = 3, /* abort() */
    US_FAULT_FPE = 4,   /* integer divide by zero */
    US_FAULT_KILL = 5,  /* performed by the host: SIGKILL */
    US_FAULT_EXIT = 6,  /* _exit(3) mid-block */
    US_FAULT_HANG = 7,  /* infinite loop in the kernel */
    US_FAULT_STOP = 8,  /* raise(SIGSTOP) */
    US_FAULT_SCRIBBLE = 9, /* corrupt the lane's out.write index */
    US_FAULT_ROBUST = 10,  /* corrupt its robust list, then _exit(3): no death word, pidfd only */
    US_FAULT_COUNT = 11,
};

typedef struct us_slot {
    /* host → worker */
    US_LINE uint32_t cmd_seq;        /* futex word: bumped after every command */
    uint32_t cmd;                    /* enum us_cmd */
    uint32_t cmd_lane;
    uint32_t generation;             /* bumped by the host each time the slot is reused */
    uint64_t cmd_epoch;
    uint32_t fault_kind;             /* enum us_fault; 0 = none */
    uint32_t cmd_flags;              /* US_ATTACH_* with an ATTACH */
    uint64_t fault_block;            /* perform the fault when processing this block */

    /* worker → host: lifecycle and measurements */
    US_LINE uint32_t status;         /* enum us_status */
    int32_t pid;
    uint64_t ready_ns;               /* when it became READY */
    uint64_t attach_ns;              /* when it saw its ATTACH */
    uint64_t first_commit_ns;        /* its first commit after ATTACH */
    uint64_t fault_ns;               /* just before it performed a requested fault */
    uint64_t heartbeat;              /* blocks processed; for diagnostics */
    uint32_t fail_code;              /* why it refused to start (US_FAIL_*) */
    uint32_t _pad_s;
    /* worker → host: timing of the blocks it processed */
    US_LINE uint64_t lag_max_ns;     /* worst push-to-commit time of a block */
    uint64_t first_push_ns;          /* when the block of its first commit was pushed */
    uint64_t cost_peak_ns;           /* a block's chain time, recent peak: max(cost, peak - peak/1024)
                                      * per block (untrusted: the host clamps what it makes of it) */
    uint64_t overruns;               /* blocks whose chain took longer than a period */

    /* last gasp: written from the signal handler only */
    US_LINE uint32_t gasp;           /* 1 once the handler ran */
    int32_t gasp_signo;
    uint64_t gasp_block;             /* block in hand, or UINT64_MAX */
    uint64_t gasp_ns;
    /* The death word: a robust futex that the kernel marks when the worker's
     * thread dies, before it tears the address space down (see
     * us_deathword.h). It shares the last-gasp line because nobody touches
     * that line per block. It is the one field with three writers, each safe
     * for its own reason:
     *   host, per spawn (shm Slot.Prepare): stores 0 and death_gen while no
     *     process holds the slot, so no other writer can be running;
     *   worker, once, before READY: stores its gettid() (the value the kernel
     *     compares with the dying thread's TID), while the host does not look
     *     at the word yet (it arms only a READY worker);
     *   host, when it arms the word (the monitor): a compare-and-swap
     *     tid -> tid|US_FUTEX_WAITERS, which fails, and is retried with what it
     *     found, if the kernel got there first;
     *   kernel, on the thread's death (futex_exit_release ->
     *     handle_futex_death): a compare-and-swap of a word holding the dying
     *     TID to (old & WAITERS)|OWNER_DIED, then a wake of one shared waiter
     *     if WAITERS was set. It writes nothing unless the TID matches.
     * The worker could overwrite the word at any time: the host treats it as
     * untrusted and confirms a death with one read of the exit flag. */
    uint32_t death;
    /* The generation the word belongs to, set with it by the host per spawn
     * (the slot's generation): a word is only ever read as the death of the
     * worker whose generation is here, so a respawned worker in the same slot
     * never inherits its predecessor's OWNER_DIED. */
    uint32_t death_gen;
} us_slot;

/* Bits of a robust futex word (linux/futex.h), for those who read it. */
#define US_FUTEX_WAITERS 0x80000000u
#define US_FUTEX_OWNER_DIED 0x40000000u
#define US_FUTEX_TID_MASK 0x3fffffffu

enum us_fail {
    US_FAIL_NONE = 0,
    US_FAIL_LAYOUT = 1,  /* region magic, version or size mismatch */
    US_FAIL_KERNEL = 2,  /* unknown kernel or ABI mismatch in a lane's chain */
    US_FAIL_PARAMS = 3,  /* kernel init refused its params */
    US_FAIL_PARENT = 4,  /* parent died before we armed PDEATHSIG */
};

typedef struct us_header {
    US_LINE uint64_t magic;
    uint32_t layout_version;
    uint32_t kernel_abi;
    uint64_t region_bytes;           /* the whole mapping; workers check it against fstat */
    uint32_t n_lanes;
    uint32_t n_slots;
    uint64_t lanes_offset;
    uint64_t slots_offset;
    uint64_t lane_stride;
    uint64_t slot_stride;
    /* host status: the monitor's heartbeat and the clock's period, for workers
     * and tools that only read. */
    US_LINE uint64_t host_pid;
} us_header;

/* The region: header, slots, lanes. n_lanes lanes follow the slots; the size
 * is us_region_bytes(n_lanes). */
typedef struct us_region {
    us_header hdr;
    us_slot slots[US_MAX_SLOTS];
    us_lane lanes[];
} us_region;

static inline size_t us_region_bytes(uint32_t n_lanes) {
    return sizeof(us_region) + (size_t)n_lanes * sizeof(us_lane);
}

/* Layout invariants the Go view and the protocol rely on. */
_Static_assert((US_RING_SLOTS & (US_RING_SLOTS - 1)) == 0, "ring slots must be a power of two");
_Static_assert(US_SLOT_SAMPLES >= US_MAX_FRAMES, "a block of one channel must fit");
_Static_assert(offsetof(us_ring_ctl, write) == 0, "write opens the producer's line");
_Static_assert(offsetof(us_ring_ctl, read_waiters) < US_CACHELINE, "read_waiters on the producer's line");
_Static_assert(offsetof(us_ring_ctl, read) == US_INDEX_LINE, "read opens the consumer's line, a prefetch pair away");
_Static_assert(offsetof(us_ring_ctl, write_waiters) < US_INDEX_LINE + US_CACHELINE, "write_waiters on the consumer's line");
_Static_assert(sizeof(us_ring_ctl) == 2 * US_INDEX_LINE, "ring control is two prefetch pairs");
_Static_assert(offsetof(us_block, data) == US_CACHELINE, "block data starts on the second line");
_Static_assert(sizeof(us_block) % US_CACHELINE == 0, "blocks are whole lines");
_Static_assert(offsetof(us_lane, owner_epoch) % US_CACHELINE == 0, "ownership on its own line");
_Static_assert(offsetof(us_lane, commit_block) % US_CACHELINE == 0, "commit report on its own line");
_Static_assert(offsetof(us_lane, in) % US_CACHELINE == 0, "in ring aligned");
_Static_assert(offsetof(us_lane, out) % US_CACHELINE == 0, "out ring aligned");
_Static_assert(offsetof(us_lane, state) % US_CACHELINE == 0, "state aligned");
_Static_assert(sizeof(us_lane) % US_CACHELINE == 0, "lanes are whole lines");
_Static_assert(offsetof(us_slot, status) == US_CACHELINE, "worker reports on their own line");
_Static_assert(offsetof(us_slot, lag_max_ns) == 2 * US_CACHELINE, "timings on their own line");
_Static_assert(offsetof(us_slot, gasp) == 3 * US_CACHELINE, "last gasp on its own line");
_Static_assert(offsetof(us_slot, death) / US_CACHELINE == offsetof(us_slot, gasp) / US_CACHELINE,
               "the death word stays off the lines a worker writes per block");
_Static_assert(offsetof(us_slot, death) % 4 == 0, "a futex word is 32-bit aligned");
_Static_assert(sizeof(us_slot) == 4 * US_CACHELINE, "slot is four lines");
_Static_assert(sizeof(us_header) == 2 * US_CACHELINE, "header is two lines");
_Static_assert(offsetof(us_region, slots) % US_CACHELINE == 0, "slots aligned");
_Static_assert(offsetof(us_region, lanes) % US_CACHELINE == 0, "lanes aligned");
_Static_assert(sizeof(uint64_t) == 8 && sizeof(float) == 4, "ABI sizes");

#endif
