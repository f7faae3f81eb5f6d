/* us_sandbox.c — see us_sandbox.h and docs/design.md §3. */
#define _GNU_SOURCE
#include "us_sandbox.h"

#include <errno.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define US_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define US_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "understudy's worker sandbox knows x86_64 and aarch64 only"
#endif

/* Keeps the compiler from shrinking the array: the point is the stores. */
static __attribute__((noinline)) void fault_in_stack(void) {
    volatile char pad[US_SANDBOX_MAIN_STACK - 16 * 1024];
    for (size_t i = 0; i < sizeof pad; i += 4096) pad[i] = 0;
}

int us_sandbox_lock_memory(void) {
    fault_in_stack();
    pthread_attr_t a;
    if (pthread_attr_init(&a) == 0) {
        pthread_attr_setstacksize(&a, US_SANDBOX_THREAD_STACK);
        pthread_setattr_default_np(&a);
        pthread_attr_destroy(&a);
    }
    /* Two steps: MCL_CURRENT alone faults in and locks everything mapped now
     * (MCL_ONFAULT with it would lock only what is already present); the
     * second call adds MCL_FUTURE|MCL_ONFAULT, so a kernel's later mappings
     * are locked page by page as it touches them instead of being populated
     * whole, which would spend the memlock budget on untouched reservations. */
    if (mlockall(MCL_CURRENT) != 0) return -1;
    return mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT);
}

/* ---- the filter ------------------------------------------------------------
 * Built at run time because it names our pid and our doorbell fd. Each rule
 * is a small block that starts by comparing the syscall number (in A) and
 * ends in a RET, so a non-matching rule jumps over its block with A intact. */

#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i)) /* little-endian: low half first */
#define MAX_INSNS 200

typedef struct prog {
    struct sock_filter f[MAX_INSNS];
    unsigned n;
    int overflow;
} prog;

static void emit(prog *p, struct sock_filter s) {
    if (p->n >= MAX_INSNS) {
        p->overflow = 1;
        return;
    }
    p->f[p->n++] = s;
}

static void ret(prog *p, uint32_t action) { emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, action)); }

static void allow(prog *p, long nr) {
    emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 1));
    ret(p, SECCOMP_RET_ALLOW);
}

/* Opens a conditional rule for nr; close it with rule_end. */
static unsigned rule_begin(prog *p, long nr) {
    unsigned at = p->n;
    emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 0));
    return at;
}

static void rule_end(prog *p, unsigned at) {
    unsigned skip = p->n - at - 1;
    if (skip > 255) p->overflow = 1;
    else p->f[at].jf = (uint8_t)skip;
}

static void load_arg(prog *p, int i) { emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(i))); }

/* nr allowed only when the low half of argument i equals one of vals. */
static void allow_arg_in(prog *p, long nr, int i, const uint32_t *vals, unsigned nvals) {
    unsigned at = rule_begin(p, nr);
    load_arg(p, i);
    for (unsigned k = 0; k < nvals; k++) {
        emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, vals[k], 0, 1));
        ret(p, SECCOMP_RET_ALLOW);
    }
    ret(p, SECCOMP_RET_KILL_PROCESS);
    rule_end(p, at);
}

/* nr allowed only when the low half of argument i has none of bits set. */
static void allow_arg_without(prog *p, long nr, int i, uint32_t bits) {
    unsigned at = rule_begin(p, nr);
    load_arg(p, i);
    emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, bits, 0, 1));
    ret(p, SECCOMP_RET_KILL_PROCESS);
    ret(p, SECCOMP_RET_ALLOW);
    rule_end(p, at);
}

static int build_filter(prog *p, pid_t self, int doorbell, int ctl) {
    memset(p, 0, sizeof *p);
    /* A filter written for one ABI must never judge another's numbers. */
    emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
    emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, US_AUDIT_ARCH, 1, 0));
    ret(p, SECCOMP_RET_KILL_PROCESS);
    emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
#if defined(__x86_64__)
    /* x32 calls share AUDIT_ARCH_X86_64 and differ only by this bit. */
    emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u /* __X32_SYSCALL_BIT */, 0, 1));
    ret(p, SECCOMP_RET_KILL_PROCESS);
#endif

    /* The per-block path first: a filter is walked on every call. */
    allow(p, SYS_futex);
    allow(p, SYS_clock_gettime); /* the vDSO answers it unless the clocksource cannot */

    /* Output: the captured stdout/stderr pipe and the doorbell of the last
     * gasp. Nothing else: a kernel may not reach the region's fd, the
     * pidfds or any file by writing. writev is glibc's path for fatal
     * messages (assert, malloc's checks). */
    uint32_t outs[3] = {1, 2, (uint32_t)doorbell};
    allow_arg_in(p, SYS_write, 0, outs, doorbell >= 0 ? 3 : 2);
    allow_arg_in(p, SYS_writev, 0, outs, 2);
    allow(p, SYS_read);
    /* A lane's memfd arrives with SCM_RIGHTS on the control socket, and only
     * there: a kernel may not receive from anything else. (The fd it gets is
     * mapped without PROT_EXEC, as every mapping, and closed.) */
    if (ctl >= 0) {
        uint32_t c = (uint32_t)ctl;
        allow_arg_in(p, SYS_recvmsg, 0, &c, 1);
    }
    allow(p, SYS_close);

    /* Waiting and time. */
    allow(p, SYS_futex_waitv);
    allow(p, SYS_clock_nanosleep);
    allow(p, SYS_clock_getres);
    allow(p, SYS_nanosleep);
    allow(p, SYS_gettimeofday);
    allow(p, SYS_sched_yield);
    allow(p, SYS_getpid);
    allow(p, SYS_gettid);
    allow(p, SYS_getppid);
    allow(p, SYS_getrandom);

    /* Threads: glibc's pthread_create. clone only with CLONE_THREAD, so a
     * thread and never a process; clone3 keeps its flags in memory, where a
     * filter cannot look, so it answers ENOSYS and glibc falls back to
     * clone. The robust list and rseq are every new thread's first calls;
     * get_robust_list only of ourselves (pid 0). */
    {
        unsigned at = rule_begin(p, SYS_clone);
        load_arg(p, 0);
        emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 1, 0));
        ret(p, SECCOMP_RET_KILL_PROCESS);
        ret(p, SECCOMP_RET_ALLOW);
        rule_end(p, at);
    }
    {
        unsigned at = rule_begin(p, SYS_clone3);
        ret(p, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA));
        rule_end(p, at);
    }
    /* glibc's first pthread_create (and pthread_cancel) installs handlers
     * for its two internal real-time signals, SIGCANCEL and SIGSETXID (32
     * and 33, below SIGRTMIN as glibc reports it). Other handlers stay
     * denied: the fatal-signal ones are the last gasp's. */
    {
        const uint32_t internal[] = {32, 33};
        allow_arg_in(p, SYS_rt_sigaction, 0, internal, 2);
    }
    allow(p, SYS_set_robust_list);
    uint32_t zero = 0;
    allow_arg_in(p, SYS_get_robust_list, 0, &zero, 1);
    allow(p, SYS_rseq);

    /* A kernel's own memory: never executable, so no code can be loaded or
     * written and run. madvise without MADV_REMOVE and friends, which punch
     * holes in shared memory (the region) rather than in our own view. */
    allow_arg_without(p, SYS_mmap, 2, PROT_EXEC);
    allow_arg_without(p, SYS_mprotect, 2, PROT_EXEC);
    allow(p, SYS_munmap);
    allow(p, SYS_mremap);
    allow(p, SYS_brk);
    {
        const uint32_t ok[] = {MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED,
                               MADV_DONTNEED, MADV_FREE, MADV_HUGEPAGE, MADV_NOHUGEPAGE};
        allow_arg_in(p, SYS_madvise, 2, ok, sizeof ok / sizeof ok[0]);
    }

    /* Signals: the last gasp's handler returns through rt_sigreturn and
     * re-raises; raise() and abort() block signals and tgkill themselves.
     * kill and tgkill name a process, which must be us. */
    allow(p, SYS_rt_sigreturn);
    allow(p, SYS_rt_sigprocmask);
    allow(p, SYS_sigaltstack);
    allow(p, SYS_restart_syscall);
    uint32_t me = (uint32_t)self;
    allow_arg_in(p, SYS_kill, 0, &me, 1);
    allow_arg_in(p, SYS_tgkill, 0, &me, 1);

    allow(p, SYS_exit);
    allow(p, SYS_exit_group);

    /* Everything else, fork, execve, open, socket, ptrace, prctl,
     * sched_set*, mlock, setrlimit, ftruncate, fallocate, dup*: the process
     * dies with SIGSYS, and its lane fails over. */
    ret(p, SECCOMP_RET_KILL_PROCESS);
    return p->overflow ? -1 : 0;
}

static int fail(const char *what) {
    fprintf(stderr, "understudy-worker: sandbox: %s: %s\n", what, strerror(errno));
    return -1;
}

int us_sandbox_enter(const us_sandbox *sb) {
    if (sb->off) return 0;
    int change_id = sb->uid >= 0 || sb->gid >= 0;

    /* While we may: let the locked budget match the address-space cap. A
     * root without CAP_SYS_RESOURCE (containers) cannot, and then every
     * later mapping must fit RLIMIT_MEMLOCK next to what is locked now. */
    struct rlimit ml = {US_SANDBOX_AS_BYTES, US_SANDBOX_AS_BYTES};
    struct rlimit cur;
    if (change_id && getrlimit(RLIMIT_MEMLOCK, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
        cur.rlim_max < ml.rlim_max)
        (void)setrlimit(RLIMIT_MEMLOCK, &ml);

    /* The bounding set and ambient caps only matter across execve, which
     * the filter denies; dropping them costs nothing and holds even if it
     * did not. Dropping the bounding set needs CAP_SETPCAP, so before the
     * uid change; a host without it has nothing to drop. */
    for (int cap = 0; cap <= 63; cap++) {
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0) break; /* past the kernel's last cap */
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EPERM) return fail("dropping the bounding set");
    }
    (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);

    if (change_id) {
        gid_t gid = (gid_t)(sb->gid >= 0 ? sb->gid : sb->uid);
        uid_t uid = (uid_t)(sb->uid >= 0 ? sb->uid : (long)getuid());
        if (setgroups(0, NULL) != 0) return fail("setgroups");
        if (setresgid(gid, gid, gid) != 0) return fail("setgid");
        if (setresuid(uid, uid, uid) != 0) return fail("setuid");
        /* The credential change cleared the parent-death signal: re-arm it,
         * then make sure the host did not die in between (we would have
         * been reparented and the signal would never come). */
        if (sb->parent > 0) {
            if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) return fail("PR_SET_PDEATHSIG");
            if (getppid() != sb->parent) {
                fprintf(stderr, "understudy-worker: sandbox: the host exited while we dropped privileges\n");
                return -1;
            }
        }
    }

    /* A uid change from root already cleared these; a worker that keeps
     * its uid (a non-root host, or root told to keep it) clears them here. */
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &hdr, data) != 0) return fail("capset");

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail("PR_SET_NO_NEW_PRIVS");

    struct rlimit as = {US_SANDBOX_AS_BYTES, US_SANDBOX_AS_BYTES};
    struct rlimit none = {0, 0};
    if (setrlimit(RLIMIT_AS, &as) != 0) return fail("RLIMIT_AS");
    if (setrlimit(RLIMIT_CORE, &none) != 0) return fail("RLIMIT_CORE");
    if (change_id && sb->uid > 0) {
        /* Counted per uid across the system, so only for a uid of the
         * worker's own: the host user's would count its whole session. */
        struct rlimit np = {US_SANDBOX_NPROC, US_SANDBOX_NPROC};
        if (setrlimit(RLIMIT_NPROC, &np) != 0) return fail("RLIMIT_NPROC");
    }

    static prog p; /* 1.6 KiB; static so it costs no stack at this depth */
    if (build_filter(&p, getpid(), sb->doorbell_fd, sb->ctl_fd) != 0) {
        fprintf(stderr, "understudy-worker: sandbox: filter too long\n");
        return -1;
    }
    struct sock_fprog fp = {.len = (unsigned short)p.n, .filter = p.f};
    /* Installed with a listener, which we keep open at US_LISTENER_FD and
     * never use (the filter returns no USER_NOTIF, and ioctl is denied),
     * for two reasons:
     * - it is a second reference to the filter. do_exit() releases the
     *   dying task's filter (seccomp_filter_release) before exit_mm(), and
     *   dropping the last reference frees the BPF program there (queues
     *   bpf_prog_free_deferred, wakes a kworker: 3-5 us before the kernel
     *   marks our death word). Held by the file, it is freed at
     *   exit_files(), after the word.
     * - the host takes a copy (pidfd_getfd) and polls it: POLLHUP once every
     *   task holding the filter has released it in do_exit, which confirms
     *   a death word's wake without reading /proc. TSYNC gives the filter
     *   to every thread we already have (a user kernel's constructors may
     *   have started some), so that none escapes that count; TSYNC_ESRCH
     *   lets it go with a listener (5.7+).
     * A kernel or a chain that refuses (before 5.7, or a listener already
     * in the chain: EBUSY) gets the same filter without one, and the host
     * confirms from /proc; so does a listener at another fd. */
    long lfd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                       SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_TSYNC_ESRCH, &fp);
    if (lfd < 0 && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fp) != 0) return fail("seccomp");
    return 0;
}
