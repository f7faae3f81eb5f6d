/* understudy-worker — one crash-isolated DSP process.
 *
 * Started by the host with its slot's memfd, the doorbell eventfd and its end
 * of a control socket inherited, and nothing else of the host's. It maps its
 * slot, locks and faults it in, arms the parent-death signal, installs the
 * last-gasp handler, checks it can run every lane's chain, says READY in its
 * slot and sleeps on the slot's command futex. On ATTACH it receives its
 * lane's memfd on the control socket, maps it, closes the fd and adopts the
 * lane from its committed state: wait for a block, copy the committed state
 * to the other buffer, run the chain in place, publish the output, then
 * commit by advancing the input read index. A crash anywhere before the
 * commit leaves the committed state and the input block for the next owner.
 *
 *   understudy-worker --slot-fd N --doorbell-fd N --ctl-fd N --slot N --gen N
 *                     --parent PID [--spin-us N] [--uid N --gid N] [--unsandboxed]
 *   understudy-worker --list-kernels [--uid N --gid N] [--unsandboxed]
 *   understudy-worker --replay FILE [--out RAW]   (us_replay.h: one saved block, for gdb)
 *
 * Before it runs any kernel code (a kernel's init included) it drops to
 * least privilege (us_sandbox.h). Its scheduling policy and CPU are the
 * host's business: the host sets them from outside, and the sandbox denies
 * the worker any say.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include "us_deathword.h"
#include "us_fp.h"
#include "us_kernel.h"
#include "us_region.h"
#include "us_replay.h"
#include "us_ring.h"
#include "us_sandbox.h"

enum {
    EXIT_USAGE = 64,
    EXIT_LAYOUT = 65,
    EXIT_KERNEL = 66,
    EXIT_PARENT = 67,
    EXIT_SANDBOX = 68,
};

/* The handler reads these, so they are set before it is installed and never
 * change after. */
static us_slot *g_slot;
static int g_doorbell = -1;
/* The block in hand, for the last gasp; UINT64_MAX between blocks. */
static volatile uint64_t g_block = UINT64_MAX;

/* Tells the host's monitor to look at our slot: a last gasp, READY, an
 * attach it asked to hear of, a first commit. The monitor waits on events only; these are its
 * events for a worker's life. Async-signal-safe. */
static void ring_doorbell(void) {
    uint64_t one = 1;
    ssize_t n = write(g_doorbell, &one, sizeof one);
    (void)n;
}

/* Async-signal-safe only: plain stores, clock_gettime, write. */
static void write_gasp(int sig) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    g_slot->gasp_signo = sig;
    g_slot->gasp_block = g_block;
    g_slot->gasp_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    US_STORE_REL(&g_slot->status, (uint32_t)US_ST_DYING);
    /* The release store of gasp publishes everything above and promises the
     * host that we write nothing else: it may hand our lane on at once. */
    US_STORE_REL(&g_slot->gasp, 1u);
    ring_doorbell();
}

static void last_gasp(int sig, siginfo_t *info, void *uctx) {
    (void)info;
    (void)uctx;
    write_gasp(sig);
    /* SA_RESETHAND restored the default action and the signal is blocked while
     * we run, so this stays pending and kills us as soon as we return, even
     * when the signal was sent rather than caused by a faulting instruction. */
    raise(sig);
}

static void install_last_gasp(void) {
    static char altstack[64 * 1024];
    /* Faulted in now: a .bss page is first touched, and faulted in (5-7 us
     * on this VM's shadow page tables), by the signal frame the kernel
     * writes on it, which put that fault between a crash and its gasp. */
    memset(altstack, 0, sizeof altstack);
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) perror("understudy-worker: sigaltstack");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = last_gasp;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
    sigfillset(&sa.sa_mask);
    const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
}

static unsigned long arg_ul(const char *flag, const char *v) {
    char *end;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (errno || *end || end == v) {
        fprintf(stderr, "understudy-worker: %s wants a number, got \"%s\"\n", flag, v);
        exit(EXIT_USAGE);
    }
    return x;
}

typedef struct lane_run {
    us_lane *lane;
    us_lane_cfg cfg; /* our private copy: what we run by, whatever the shared copy says later */
    const us_kernel *k[US_MAX_CHAIN];
    uint32_t n;
    uint32_t reinit; /* US_ATTACH_REINIT: init the chain over the committed state first */
    uint64_t epoch;  /* the epoch we attached at: stamped on every output block and commit */
} lane_run;

/* Resolves a lane's chain from the host's configuration, copied first into
 * run->cfg: we write nothing of the host's. The host validated the chain
 * already; a failure here means a worker built with other kernels or another
 * ABI, or a host that disagrees with us on the layout. */
static int resolve_chain(const us_lane_cfg *shared, lane_run *run) {
    memcpy(&run->cfg, shared, sizeof run->cfg);
    us_lane_cfg *l = &run->cfg;
    run->lane = NULL;
    run->n = l->chain_len;
    us_lane_cfg g = *l;
    if (us_lane_geometry(&g) != 0 || g.state_stride != l->state_stride || g.block_stride != l->block_stride ||
        g.state_off != l->state_off || g.in_off != l->in_off || g.out_off != l->out_off ||
        g.lane_bytes != l->lane_bytes)
        return -1;
    for (uint32_t i = 0; i < run->n; i++) {
        us_chain_entry *e = &l->chain[i];
        e->name[US_KERNEL_NAME_MAX - 1] = 0;
        e->variant[US_KERNEL_VARIANT_MAX - 1] = 0;
        if (e->n_params > US_KERNEL_MAX_PARAMS || e->state_offset > l->state_bytes) return -1;
        if (!us_variant_supported(e->variant)) {
            fprintf(stderr, "understudy-worker: kernel %s variant %s needs instructions this CPU lacks\n",
                    e->name, e->variant);
            return -1;
        }
        const us_kernel *k = us_find_kernel_variant(e->name, e->variant);
        if (!k) {
            fprintf(stderr, "understudy-worker: lane kernel %s (variant %s) is not built into this worker\n",
                    e->name, e->variant[0] ? e->variant : "scalar");
            return -1;
        }
        if (!us_kernel_abi_ok(k)) {
            fprintf(stderr, "understudy-worker: kernel %s has ABI %u, this worker speaks %u..%u: rebuild it\n",
                    e->name, k->abi_version, US_KERNEL_ABI_MIN, US_KERNEL_ABI_VERSION);
            return -1;
        }
        if (e->state_offset + k->state_bytes(l->channels) > l->state_bytes) return -1;
        run->k[i] = k;
    }
    return 0;
}

/* The bus fault's page: a shared mapping of a memfd truncated under it. Made
 * before the sandbox, which denies memfd_create and ftruncate: at fault time
 * the fault is the touch alone, as in a kernel's real SIGBUS. */
static volatile char *g_bus_page;

static void prepare_bus_fault(void) {
    int fd = memfd_create("understudy-bus", MFD_CLOEXEC);
    if (fd < 0) return;
    if (ftruncate(fd, 4096) == 0) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED && ftruncate(fd, 0) == 0) g_bus_page = p; /* now beyond EOF */
    }
    close(fd);
}

/* Faults we perform on ourselves when the host asks, to prove detection. */
static void perform_fault(uint32_t kind) {
    switch (kind) {

    case US_FAULT_SEGV: {
        /* Through a volatile pointer: a literal null store is undefined
         * behaviour that gcc turns into ud2 (SIGILL), not a real store. */
        volatile int *volatile null = NULL;
        *null = 1;
        break;
    }
    case US_FAULT_BUS:
        if (g_bus_page) g_bus_page[0] = 1; /* beyond EOF: SIGBUS */
        break;
    case US_FAULT_ABORT:
        abort();
    case US_FAULT_FPE: {
        /* Both operands volatile: gcc computes 1/x without dividing. */
        volatile int one = 1, zero = 0;
        volatile int x = one / zero;
        (void)x;
        break;
    }
    case US_FAULT_EXIT:
        _exit(3);
    case US_FAULT_FORGE:
        /* The promise a gasp makes (nothing more from us) broken: only the
         * host's SIGKILL ends this. */
        write_gasp(SIGSEGV);
        break;
    case US_FAULT_ROBUST:
        us_deathword_corrupt();
        _exit(3);
    case US_FAULT_HANG:
        for (;;) __asm__ volatile("" ::: "memory");
    case US_FAULT_STOP:
        raise(SIGSTOP);
        break;
    default:
        break;
    }
}

static uint64_t g_spin_ns = 20000;

/* The next input block, or NULL. The producer's index is the host's, but
 * the last owner could have written over it before it died: one out of range
 * is not followed (the clock stores its own again within a period). */
static us_block *peek_input(us_consumer *in) {
    us_block *b = us_consumer_peek(in);
    if (b && in->write_cache - in->read > US_RING_SLOTS) {
        in->write_cache = in->read;
        return NULL;
    }
    return b;
}

/* Whether v is a value params[j] of k may hold: what the host checked
 * (range, whole number) checked again, since everything in the lane could
 * have been written by a dead owner. */
static int param_ok(const us_kernel *k, uint32_t j, float v) {
    const us_param_spec *p = &k->params[j];
    if (!(v >= p->min && v <= p->max)) return 0; /* NaN fails too */
    return !p->integer || (float)(int64_t)v == v;
}

/* Checks a committed parameter vector: every value in its range, and every
 * value that cannot change live still the host's. A vector that fails was
 * written by no host: the lane restarts from the host's values. */
static int params_ok(const lane_run *run, const float *pv) {
    for (uint32_t i = 0; i < run->n; i++) {
        const us_chain_entry *e = &run->cfg.chain[i];
        const us_kernel *k = run->k[i];
        uint32_t live = us_kernel_live(k);
        for (uint32_t j = 0; j < e->n_params && j < k->n_params; j++) {
            float v = pv[i * US_KERNEL_MAX_PARAMS + j];
            if (!param_ok(k, j, v)) return 0;
            if (!(live >> j & 1u) && memcmp(&v, &e->params[j], sizeof v) != 0) return 0;
        }
    }
    return 1;
}

static void params_from_cfg(const lane_run *run, float *pv) {
    memset(pv, 0, US_LANE_PARAM_BYTES);
    for (uint32_t i = 0; i < run->n; i++)
        memcpy(pv + i * US_KERNEL_MAX_PARAMS, run->cfg.chain[i].params, run->cfg.chain[i].n_params * sizeof(float));
}

/* Applies the live parameter changes block ib carries to pv (the next state's
 * vector) and lets each kernel whose values changed update its derived
 * state, once. A change the schema refuses (a scribble: the host checked
 * what it queued) is skipped, the same way by every owner. */
static void apply_changes(const lane_run *run, const us_block *ib, float *pv, uint8_t *st) {
    uint32_t n = US_LOAD_RLX(&ib->n_changes);
    if (n == 0 || n > US_BLOCK_CHANGES) return;
    uint32_t dirty = 0;
    for (uint32_t c = 0; c < n; c++) {
        us_param_change ch;
        memcpy(&ch, &ib->changes[c], sizeof ch);
        if (ch.kernel >= run->n) continue;
        const us_kernel *k = run->k[ch.kernel];
        if (ch.param >= k->n_params || ch.param >= run->cfg.chain[ch.kernel].n_params ||
            !(us_kernel_live(k) >> ch.param & 1u) || !param_ok(k, ch.param, ch.value))
            continue;
        pv[ch.kernel * US_KERNEL_MAX_PARAMS + ch.param] = ch.value;
        dirty |= 1u << ch.kernel;
    }
    for (uint32_t i = 0; i < run->n; i++) {
        void (*update)(void *, const float *, uint32_t, float) = us_kernel_update(run->k[i]);
        if ((dirty >> i & 1u) && update)
            update(st + run->cfg.chain[i].state_offset, pv + i * US_KERNEL_MAX_PARAMS, run->cfg.channels,
                   (float)run->cfg.rate);
    }
}

/* Runs the lane until the host sends another command. Returns on a command. */
static void run_lane(us_slot *slot, lane_run *run, uint32_t cmd_seq) {
    us_lane *l = run->lane;
    const us_lane_cfg *cfg = &run->cfg;
    us_consumer in;
    us_producer out;
    us_consumer_init(&in, us_lane_in(l, cfg));
    us_producer_init(&out, us_lane_out(l, cfg));
    const uint32_t ch = cfg->channels;
    const size_t sbytes = cfg->state_stride; /* the chain's states and the parameter vector */
    const uint32_t poff = us_lane_params_off(cfg);
    uint8_t *state[2] = {(uint8_t *)l + cfg->state_off, (uint8_t *)l + cfg->state_off + cfg->state_stride};
    uint64_t epoch = run->epoch;
    const uint64_t period_ns = cfg->rate ? (uint64_t)cfg->frames * 1000000000ull / cfg->rate : UINT64_MAX;
    int first = 1;

    /* The parameters in force come with the committed state. Nothing
     * committed yet, or a vector no host wrote: the host's own values. */
    int fresh = in.read == 0 || run->reinit;
    {
        float *pv = (float *)(state[in.read & 1] + poff);
        if (in.read == 0 || !params_ok(run, pv)) {
            params_from_cfg(run, pv);
            fresh = 1;
        }
    }
    if (fresh) {
        /* Nothing committed yet (the initial state is state[0]), or the host
         * asks for a fresh start because the committed state made garbage:
         * init writes the committed buffer itself, from the parameters in
         * force. That is idempotent, so an owner that dies here leaves
         * nothing to undo; the host asks its successor again. */
        uint8_t *st = state[in.read & 1];
        const float *pv = (const float *)(st + poff);
        for (uint32_t i = 0; i < run->n; i++) {
            const us_chain_entry *e = &cfg->chain[i];
            if (run->k[i]->init(st + e->state_offset, pv + i * US_KERNEL_MAX_PARAMS, ch, (float)cfg->rate) != 0) {
                fprintf(stderr, "understudy-worker: kernel %s refused its parameters\n", e->name);
                exit(EXIT_KERNEL);
            }
        }
    }

    for (;;) {
        us_block *ib = peek_input(&in);
        if (!ib) {
            uint64_t spin_until = us_now_ns() + g_spin_ns;
            while (!(ib = peek_input(&in)) && us_now_ns() < spin_until) {
                if (US_LOAD_ACQ(&slot->cmd_seq) != cmd_seq) return;
                us_cpu_relax();
            }
            while (!ib) {
                if (US_LOAD_ACQ(&slot->cmd_seq) != cmd_seq) return;
                if (in.corrupt) {
                    /* The host's index out of range: a dead owner's scribble
                     * that the clock overwrites within a period. Look again
                     * after a pause, never follow it. */
                    struct timespec pause = {0, 100000};
                    nanosleep(&pause, NULL);
                    in.corrupt = 0;
                    in.write_cache = in.read;
                }
                /* The host wakes this futex on every input block it
                 * publishes while we say we wait (write_waiters), and at
                 * Close; an index a dead owner left out of range is caught
                 * by the peek above and looked at again after a pause. No
                 * timeout: a pending futex timer must be cancelled on the
                 * way out of the wait, and on a death that cancel (a
                 * clock-event reprogram, a trap on a VM) sat between the
                 * SIGKILL and do_exit(), 5-8 us here. */
                us_consumer_sleep(&in, NULL);
                ib = peek_input(&in);
            }
        }
        if (US_LOAD_ACQ(&slot->cmd_seq) != cmd_seq) return;

        uint64_t block = ib->block;
        uint32_t frames = ib->frames;
        uint64_t t_push = ib->t_push_ns; /* read now: the slot is the host's again after the commit */
        if (frames > cfg->frames) frames = cfg->frames; /* host bug guard; never trust sizes */
        g_block = block;
        uint32_t fk = US_LOAD_ACQ(&slot->fault_kind);
        if (fk != US_FAULT_NONE && US_LOAD_RLX(&slot->fault_block) == block) {
            US_STORE_REL(&slot->fault_ns, us_now_ns());
            if (fk == US_FAULT_SCRIBBLE) {
                /* A buggy worker that corrupts the ring it produces and
                 * carries on from the corrupt index: the host must catch it
                 * by its bounds checks and never follow it. */
                out.write += 1000003u;
                US_STORE_REL(&l->out.write, out.write);
            } else if (fk == US_FAULT_STALE) {
                /* Behave as an owner the host has fenced would: carry on
                 * under the epoch before ours. */
                epoch = run->epoch - 1;
                US_STORE_REL(&l->commit_epoch, epoch);
            } else {
                perform_fault(fk);
            }
        }

        us_block *ob;
        while (!(ob = us_producer_peek(&out))) {
            if (US_LOAD_ACQ(&slot->cmd_seq) != cmd_seq) return;
            if (out.corrupt) { /* as for the input: the clock rewrites its index */
                out.corrupt = 0;
                /* As if full: the next peek reloads the index and checks it. */
                out.read_cache = out.write > out.r.mask ? out.write - out.r.mask - 1 : 0;
            }
            struct timespec ms = {0, 1000000};
            us_producer_sleep(&out, &ms);
        }

        uint64_t t_start = us_now_ns(); /* vDSO: no system call */
        uint64_t c = in.read;
        const uint8_t *committed = state[c & 1];
        uint8_t *next = state[(c + 1) & 1];
        memcpy(next, committed, sbytes);

        size_t n = (size_t)frames * ch;
        memcpy(ob->data, ib->data, n * sizeof(float));
        /* Changes apply on a bypassed block too: the automation is the
         * host's, whatever became of this block's audio. */
        float *pv = (float *)(next + poff);
        apply_changes(run, ib, pv, next);
        uint32_t flags = 0;
        if (block == US_LOAD_ACQ(&l->bypass_block)) {
            flags = US_BLOCK_BYPASSED; /* poison input: the dry signal, state carried over */
        } else {
            for (uint32_t i = 0; i < run->n; i++) {
                const us_chain_entry *e = &cfg->chain[i];
                run->k[i]->process(next + e->state_offset, pv + i * US_KERNEL_MAX_PARAMS, ob->data, frames, ch);
            }
        }
        uint64_t now = us_now_ns();
        ob->block = block;
        ob->frames = frames;
        ob->flags = flags | (ib->flags & US_BLOCK_LAST);
        ob->t_push_ns = now;
        ob->epoch = epoch;
        us_producer_publish(&out);

        US_STORE_RLX(&l->commit_block, block);
        US_STORE_RLX(&l->commit_ns, now);
        US_STORE_RLX(&l->commits, US_LOAD_RLX(&l->commits) + 1);
        g_block = UINT64_MAX;
        /* The commit: output is out, next state is whole. */
        us_consumer_release(&in);
        if (first) {
            US_STORE_RLX(&slot->first_push_ns, t_push);
            US_STORE_REL(&slot->first_commit_ns, now);
            first = 0;
            ring_doorbell(); /* once per life: the monitor reports the failover done */
        }
        US_STORE_RLX(&slot->heartbeat, US_LOAD_RLX(&slot->heartbeat) + 1);
        /* The chain's own time, for the host's deadline: a recent peak that
         * decays by 1/1024 a block (half-life about 700 blocks), so one slow
         * block raises it at once and a calm stretch lowers it again. */
        uint64_t cost = now - t_start, peak = US_LOAD_RLX(&slot->cost_peak_ns);
        peak -= peak >> 10;
        US_STORE_RLX(&slot->cost_peak_ns, cost > peak ? cost : peak);
        if (cost > period_ns) US_STORE_RLX(&slot->overruns, US_LOAD_RLX(&slot->overruns) + 1);
        uint64_t lag = now - t_push;
        if (t_push && lag < (1ull << 40) && lag > US_LOAD_RLX(&slot->lag_max_ns)) US_STORE_RLX(&slot->lag_max_ns, lag);
    }
}

static void json_string(const char *s) {
    putchar('"');
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') putchar('\\');
        putchar(*s);
    }
    putchar('"');
}

/* Prints every kernel this worker carries, as JSON, for the host to validate
 * chains against the worker's own schema (user kernels included). */
static int list_kernels(void) {
    printf("{\"abi\":%u,\"layout\":%u,\"max_channels\":%d,\"state_limit\":%d,\"kernels\":[",
           US_KERNEL_ABI_VERSION, US_LAYOUT_VERSION, US_MAX_CHANNELS, US_LANE_STATE_BYTES);
    int first = 1;
    for (size_t i = 0; us_kernel_at(i); i++) {
        const us_kernel *k = us_kernel_at(i);
        printf("%s{\"name\":", first ? "" : ",");
        first = 0;
        json_string(k->name);
        printf(",\"variant\":");
        json_string(k->variant);
        printf(",\"supported\":%s,\"abi\":%u,\"summary\":", us_variant_supported(k->variant) ? "true" : "false",
               k->abi_version);
        json_string(k->summary);
        printf(",\"params\":[");
        for (uint32_t j = 0; j < k->n_params; j++) {
            const us_param_spec *p = &k->params[j];
            printf("%s{\"name\":", j ? "," : "");
            json_string(p->name);
            printf(",\"unit\":");
            json_string(p->unit);
            printf(",\"min\":%.9g,\"max\":%.9g,\"default\":%.9g,\"integer\":%s,\"live\":%s}", p->min, p->max,
                   p->def, p->integer ? "true" : "false", us_kernel_live(k) >> j & 1u ? "true" : "false");
        }
        printf("],\"state_bytes\":[");
        for (uint32_t ch = 1; ch <= US_MAX_CHANNELS; ch++)
            printf("%s%zu", ch > 1 ? "," : "", k->state_bytes(ch));
        printf("]}");
    }
    printf("]}\n");
    return 0;
}

/* A spare must be able to run every lane it may be handed: resolve each
 * chain and initialise it into scratch memory before saying READY, so a bad
 * parameter or a missing kernel fails the handshake, not a failover. */
static int check_lanes(us_slot_map *sm) {
    static uint8_t scratch[US_LANE_STATE_BYTES];
    static lane_run run; /* 1 KiB: off the stack at this depth */
    for (uint32_t li = 0; li < sm->hdr.n_lanes; li++) {
        if (resolve_chain(&sm->lanes[li], &run) != 0) {
            fprintf(stderr, "understudy-worker: lane %u: its chain cannot run in this worker\n", li);
            return -1;
        }
        for (uint32_t i = 0; i < run.n; i++) {
            const us_chain_entry *e = &run.cfg.chain[i];
            if (run.k[i]->init(scratch + e->state_offset, e->params, run.cfg.channels, (float)run.cfg.rate) != 0) {
                fprintf(stderr, "understudy-worker: lane %u: kernel %s refused its parameters\n", li, e->name);
                return -1;
            }
        }
    }
    return 0;
}

/* Receives the lane's fd that the host sent just before the ATTACH we are
 * handling, maps the lane and closes the fd. The message must name the same
 * lane and epoch as the command: anything else is a protocol error. Returns
 * the mapping or NULL (and says why). */
static us_lane *receive_lane(int ctl_fd, uint32_t li, uint64_t epoch, const us_lane_cfg *cfg) {
    us_attach_msg msg;
    struct iovec iov = {.iov_base = &msg, .iov_len = sizeof msg};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    /* The host sent before it published the command, so the message is
     * queued already: never wait for one. */
    ssize_t n = recvmsg(ctl_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    int fd = -1;
    struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
        memcpy(&fd, CMSG_DATA(c), sizeof fd);
    if (n != (ssize_t)sizeof msg || fd < 0 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || msg.lane != li ||
        msg.epoch != epoch) {
        fprintf(stderr, "understudy-worker: ATTACH lane %u epoch %llu: no matching lane fd on the control socket\n",
                li, (unsigned long long)epoch);
        if (fd >= 0) close(fd);
        return NULL;
    }
    /* Populated now, and locked as it is (MCL_FUTURE|MCL_ONFAULT): the first
     * block takes no page fault. The lane is small (its geometry's size), so
     * this fits the memlock limit that is left after the uid drop. */
    us_lane *l = mmap(NULL, cfg->lane_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    close(fd);
    if (l == MAP_FAILED) {
        perror("understudy-worker: mmap lane");
        return NULL;
    }
    if (l->hdr.magic != US_REGION_MAGIC || l->hdr.layout_version != US_LAYOUT_VERSION ||
        l->hdr.kind != US_MAP_LANE || l->hdr.index != li || l->hdr.bytes != cfg->lane_bytes) {
        fprintf(stderr, "understudy-worker: the fd for lane %u is not that lane\n", li);
        munmap(l, cfg->lane_bytes);
        return NULL;
    }
    return l;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--replay")) return us_replay_main(argc, argv);
    long slot_fd = -1, ctl_fd = -1, slot_i = -1, parent = -1;
    int list = 0;
    us_sandbox sb = {.off = 0, .uid = -1, .gid = -1, .parent = 0, .doorbell_fd = -1, .ctl_fd = -1};
    unsigned long gen = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--list-kernels")) {
            list = 1;
            continue;
        }
        if (!strcmp(a, "--unsandboxed")) {
            sb.off = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "understudy-worker: %s needs a value\n", a);
            return EXIT_USAGE;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--slot-fd")) slot_fd = (long)arg_ul(a, v);
        else if (!strcmp(a, "--ctl-fd")) ctl_fd = (long)arg_ul(a, v);
        else if (!strcmp(a, "--doorbell-fd")) g_doorbell = (int)arg_ul(a, v);
        else if (!strcmp(a, "--slot")) slot_i = (long)arg_ul(a, v);
        else if (!strcmp(a, "--gen")) gen = arg_ul(a, v);
        else if (!strcmp(a, "--parent")) parent = (long)arg_ul(a, v);
        else if (!strcmp(a, "--spin-us")) g_spin_ns = arg_ul(a, v) * 1000ull;
        else if (!strcmp(a, "--uid")) sb.uid = (long)arg_ul(a, v);
        else if (!strcmp(a, "--gid")) sb.gid = (long)arg_ul(a, v);
        else {
            fprintf(stderr, "understudy-worker: unknown flag %s (this program is started by understudy)\n", a);
            return EXIT_USAGE;
        }
    }
    if (sb.uid > INT_MAX || sb.gid > INT_MAX) {
        fprintf(stderr, "understudy-worker: --uid and --gid want an id below 2^31\n");
        return EXIT_USAGE;
    }
    if (list) {
        /* Listing runs kernels' code (state_bytes), so it is confined like
         * the rest. stdout gets its buffer now: glibc would fstat it on the
         * first printf, and the filter denies fstat. */
        static char outbuf[16384];
        setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
        if (us_sandbox_enter(&sb) != 0) return EXIT_SANDBOX;
        return list_kernels();
    }
    if (slot_fd < 0 || ctl_fd < 0 || g_doorbell < 0 || slot_i < 0 || parent <= 0 || slot_fd > INT_MAX ||
        ctl_fd > INT_MAX) {
        fprintf(stderr, "understudy-worker: needs --slot-fd, --ctl-fd, --doorbell-fd, --slot and --parent; "
                        "it is started by understudy, not by hand\n");
        return EXIT_USAGE;
    }
    sb.parent = (pid_t)parent;
    sb.doorbell_fd = g_doorbell;
    sb.ctl_fd = (int)ctl_fd;
    /* Whatever else the host's own parent left open without close-on-exec
     * is not ours to keep: a kernel must find no fd but the ones above. */
    {
        int top = (int)(slot_fd > ctl_fd ? slot_fd : ctl_fd);
        if (g_doorbell > top) top = g_doorbell;
        for (int fd = 3; fd < top; fd++)
            if (fd != slot_fd && fd != ctl_fd && fd != g_doorbell) close(fd);
        if (syscall(SYS_close_range, (unsigned)top + 1, ~0u, 0) != 0) {
            perror("understudy-worker: close_range");
            return EXIT_LAYOUT;
        }
    }

    /* Die with the host. The signal follows the forking *thread*, so the host
     * forks from one thread that lives as long as it does; and a parent that
     * died before prctl ran would leave us orphaned, hence the check. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != (pid_t)parent) return EXIT_PARENT;

    struct stat st;
    if (fstat((int)slot_fd, &st) != 0 || (size_t)st.st_size < sizeof(us_slot_map)) {
        fprintf(stderr, "understudy-worker: fd %ld is not an understudy slot\n", slot_fd);
        return EXIT_LAYOUT;
    }
    us_slot_map *sm = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, (int)slot_fd, 0);
    if (sm == MAP_FAILED) {
        perror("understudy-worker: mmap slot");
        return EXIT_LAYOUT;
    }
    /* The mapping stays; the fd is not needed any more, and one fewer fd
     * of the host's is one fewer thing a kernel can reach. */
    close((int)slot_fd);
    us_header *h = &sm->hdr;
    if (h->magic != US_REGION_MAGIC || h->layout_version != US_LAYOUT_VERSION ||
        h->kernel_abi != US_KERNEL_ABI_VERSION || h->bytes != (uint64_t)st.st_size || h->kind != US_MAP_SLOT ||
        h->n_lanes > US_MAX_LANES || us_slot_map_bytes(h->n_lanes) != h->bytes || h->index != (uint64_t)slot_i ||
        (uint64_t)slot_i >= US_MAX_SLOTS) {
        fprintf(stderr, "understudy-worker: slot layout differs from this worker's "
                        "(layout %u, kernel ABI %u): rebuild the worker with the host\n",
                US_LAYOUT_VERSION, US_KERNEL_ABI_VERSION);
        return EXIT_LAYOUT;
    }
    const uint32_t n_lanes = h->n_lanes;
    us_slot *slot = &sm->slot;
    if (US_LOAD_ACQ(&slot->generation) != (uint32_t)gen) {
        fprintf(stderr, "understudy-worker: slot %ld was reused (generation %u, we were %lu)\n",
                slot_i, slot->generation, gen);
        return EXIT_LAYOUT;
    }
    /* First thing once the slot is known to be ours: from here on any death
     * of this thread marks the slot's death word. */
    if (us_deathword_register(slot, (uint32_t)gen) != 0)
        perror("understudy-worker: death word not registered (the host watches the pidfd only)");
    g_slot = slot;
    install_last_gasp();
    prepare_bus_fault();

    /* Real-time set-up. A refused lock is reported once and we go on: the
     * host decides whether that is acceptable, and a worker that may take a
     * page fault is still better than no worker. Priority and CPU are set
     * by the host, from outside. */
    if (us_sandbox_lock_memory() != 0) perror("understudy-worker: mlockall");
    /* Touch every page we will use so that no command finds one missing
     * (mlockall already did; this covers a kernel that refused the lock). */
    volatile uint8_t sink = 0;
    for (size_t off = 0; off < (size_t)st.st_size; off += 4096) sink ^= ((volatile uint8_t *)sm)[off];
    (void)sink;

    /* From here on, kernels' code runs: confined. */
    if (us_sandbox_enter(&sb) != 0) {
        US_STORE_REL(&slot->status, (uint32_t)US_ST_FAILED);
        return EXIT_SANDBOX;
    }
    if (check_lanes(sm) != 0) {
        US_STORE_RLX(&slot->fail_code, (uint32_t)US_FAIL_KERNEL);
        US_STORE_REL(&slot->status, (uint32_t)US_ST_FAILED);
        return EXIT_KERNEL;
    }
    us_fp_flush_denormals();

    US_STORE_RLX(&slot->pid, (int32_t)getpid());
    US_STORE_RLX(&slot->ready_ns, us_now_ns());
    US_STORE_REL(&slot->status, (uint32_t)US_ST_READY);
    ring_doorbell();

    static lane_run run;
    uint32_t seen = 0;
    for (;;) {
        uint32_t seq = US_LOAD_ACQ(&slot->cmd_seq);
        if (seq == seen) {
            us_futex_wait(&slot->cmd_seq, seen, NULL);
            continue;
        }
        seen = seq;
        uint32_t cmd = US_LOAD_RLX(&slot->cmd);
        if (cmd == US_CMD_EXIT) {
            US_STORE_REL(&slot->status, (uint32_t)US_ST_EXITED);
            return 0;
        }
        if (cmd != US_CMD_ATTACH) continue;
        /* One lane per life: the host hands a worker one lane and never takes
         * it back but by its death. A second ATTACH is a host bug. */
        if (run.lane) {
            fprintf(stderr, "understudy-worker: asked to attach a second lane\n");
            return EXIT_LAYOUT;
        }
        uint32_t li = US_LOAD_RLX(&slot->cmd_lane);
        uint64_t epoch = US_LOAD_RLX(&slot->cmd_epoch);
        uint64_t in_read = US_LOAD_RLX(&slot->cmd_in_read), out_write = US_LOAD_RLX(&slot->cmd_out_write);
        if (li >= n_lanes) {
            fprintf(stderr, "understudy-worker: asked to attach lane %u of %u\n", li, n_lanes);
            return EXIT_LAYOUT;
        }
        if (resolve_chain(&sm->lanes[li], &run) != 0) {
            US_STORE_RLX(&slot->fail_code, (uint32_t)US_FAIL_KERNEL);
            US_STORE_REL(&slot->status, (uint32_t)US_ST_FAILED);
            return EXIT_KERNEL;
        }
        us_lane *l = receive_lane((int)ctl_fd, li, epoch, &run.cfg);
        if (!l) {
            US_STORE_RLX(&slot->fail_code, (uint32_t)US_FAIL_LAYOUT);
            US_STORE_REL(&slot->status, (uint32_t)US_ST_FAILED);
            return EXIT_LAYOUT;
        }
        run.lane = l;
        run.epoch = epoch;
        /* The indices the host chose for us, then our epoch (release): the
         * indices we own are ours alone to store, even to repair what the
         * last owner left in them, and the host judges them only once our
         * epoch says we have. */
        if (in_read != US_NO_RESUME) US_STORE_REL(&l->in.read, in_read);
        if (out_write != US_NO_RESUME) US_STORE_REL(&l->out.write, out_write);
        US_STORE_REL(&l->commit_epoch, epoch);
        run.reinit = US_LOAD_RLX(&slot->cmd_flags) & US_ATTACH_REINIT;
        US_STORE_RLX(&slot->attach_ns, us_now_ns());
        US_STORE_REL(&slot->status, (uint32_t)US_ST_ATTACHED);
        if (US_LOAD_RLX(&slot->cmd_flags) & US_ATTACH_NOTIFY) ring_doorbell();
        run_lane(slot, &run, seq);
    }
}
