/* us_sandbox.h — a worker's drop to least privilege (docs/design.md §3).
 *
 * A worker runs users' kernels, which are not trusted. Once it has mapped and
 * locked what it needs, it gives up everything else, in this order:
 *
 *   us_sandbox_lock_memory  mlockall, pre-faulted stack, small thread stacks
 *   us_sandbox_enter        bounding/ambient capabilities, groups, gid, uid,
 *                           the death signal re-armed, every capability,
 *                           no_new_privs, resource caps, the seccomp filter
 *
 * After us_sandbox_enter the process can compute, allocate non-executable
 * memory, start threads, wait on futexes, read clocks, write to stdout,
 * stderr and the doorbell, signal itself and exit. Any other system call
 * kills the whole process with SIGSYS, which the host reports as the fault
 * path `sandbox`. The allowlist is the table in docs/design.md §3; the
 * comments in us_sandbox.c say why each entry is there.
 */
#ifndef US_SANDBOX_H
#define US_SANDBOX_H

#include <sys/types.h>

/* Resource caps set by us_sandbox_enter. AS bounds what a kernel may map
 * (its heap, its threads' stacks) so that a runaway allocation fails with
 * ENOMEM in the worker instead of pressing the host's memory; NPROC bounds
 * threads of the worker's uid (processes are denied by the filter anyway),
 * and is set only when the worker has a uid of its own to count against. */
#define US_SANDBOX_AS_BYTES (1ull << 30)  /* 1 GiB of address space */
#define US_SANDBOX_NPROC 512              /* threads of the worker uid, all workers together */
#define US_SANDBOX_THREAD_STACK (256u << 10) /* default stack of a kernel's threads */
#define US_SANDBOX_MAIN_STACK (256u << 10)   /* main stack faulted in and locked before the drop */
#define US_LISTENER_FD 3 /* the seccomp filter's listener: the lowest fd free when it is made (supervisor/filter.go) */

typedef struct us_sandbox {
    int off;         /* --unsandboxed: skip everything but the memory lock */
    long uid, gid;   /* -1: keep ours (a non-root host cannot give another) */
    pid_t parent;    /* > 0: re-arm PR_SET_PDEATHSIG after setuid and check the parent is still it */
    int doorbell_fd; /* the one fd besides 1 and 2 a worker may write to; -1: none */
    int ctl_fd;      /* the control socket, the one fd a worker may receive on (its lane's fd); -1: none */
} us_sandbox;

/* Locks the address space: what is mapped now is faulted in and locked, and
 * later mappings are locked as they are touched. Also faults in the main
 * stack and sets the default stack of threads a kernel starts, because after
 * the uid drop RLIMIT_MEMLOCK (8 MiB unless the host may raise it) bounds
 * every locked mapping, and glibc's default of RLIMIT_STACK (8 MiB) per
 * thread would not fit. The lane a worker maps at attach, after the drop,
 * is locked under that limit too: it is sized to its geometry (at most about
 * 650 KiB), so it fits whatever the lane count. Returns 0, or -1 with errno
 * (mlockall refused). */
int us_sandbox_lock_memory(void);

/* Drops privileges and installs the filter. Prints one line and returns -1
 * when a step that was asked for fails: a worker that cannot be confined
 * must not run a kernel. Single-threaded callers only (the filter is
 * installed on the calling thread and inherited by the threads it starts). */
int us_sandbox_enter(const us_sandbox *sb);

#endif
