// Package rt holds the real-time primitives the supervisor needs: probing for
// SCHED_FIFO and mlock privileges, raising a single OS thread to SCHED_FIFO,
// locking memory and pinning threads.
//
// Everything here acts on the calling OS thread (pid 0 in the syscalls), so
// callers must hold runtime.LockOSThread: otherwise the Go scheduler may move
// the goroutine away and leave some arbitrary runtime thread at real-time
// priority.
package rt

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Valid SCHED_FIFO priorities on Linux (sched_get_priority_min/max).
const (
	FIFOMin = 1
	FIFOMax = 99
)

// Policies as returned by ThreadPolicy (the kernel calls SCHED_OTHER
// SCHED_NORMAL).
const (
	SchedOther = unix.SCHED_NORMAL
	SchedFIFO  = unix.SCHED_FIFO
)

// ErrNoPrivilege matches (with errors.Is) every *PrivilegeError.
var ErrNoPrivilege = errors.New("insufficient real-time privilege")

// PrivilegeError reports that the kernel refused a real-time request because
// the process lacks a capability or a large enough resource limit.
type PrivilegeError struct {
	Op   string // what was attempted, e.g. "SCHED_FIFO priority 80"
	Need string // exactly what is missing, e.g. "CAP_SYS_NICE or RLIMIT_RTPRIO >= 80"
	Fix  string // how to grant it
	Err  error  // the errno from the kernel
}

func (e *PrivilegeError) Error() string {
	s := fmt.Sprintf("rt: %s: %v: need %s", e.Op, e.Err, e.Need)
	if e.Fix != "" {
		s += "; to grant it: " + e.Fix
	}
	return s
}

func (e *PrivilegeError) Unwrap() error { return e.Err }

// Is lets errors.Is(err, ErrNoPrivilege) match without callers having to know
// which errno (EPERM, or ENOMEM for an undersized RLIMIT_MEMLOCK) was behind it.
func (e *PrivilegeError) Is(target error) bool { return target == ErrNoPrivilege }

// SetThreadFIFO raises the calling OS thread, and only it, to SCHED_FIFO at
// prio. The caller must hold runtime.LockOSThread and should never unlock it,
// so that Go destroys the thread rather than reusing it for other goroutines.
//
// The thread also gets SCHED_RESET_ON_FORK: any thread or process it creates
// (os/exec forks from the calling thread) starts at SCHED_OTHER instead of
// silently inheriting our real-time priority.
//
// Once LockMemory has succeeded, the thread also locks its stacks
// (LockThreadStacks) before it returns, so that it never faults on them.
func SetThreadFIFO(prio int) error {
	if prio < FIFOMin || prio > FIFOMax {
		return fmt.Errorf("rt: SCHED_FIFO priority %d out of range: use %d..%d", prio, FIFOMin, FIFOMax)
	}
	attr := unix.SchedAttr{
		Policy:   SchedFIFO,
		Flags:    unix.SCHED_FLAG_RESET_ON_FORK,
		Priority: uint32(prio),
	}
	err := unix.SchedSetAttr(0, &attr, 0)
	if err == nil {
		if locking.on.Load() {
			// Failing to lock them is not worth refusing real-time
			// priority over (the probe asked for enough); StackLockErr
			// keeps the reason.
			if err := LockThreadStacks(); err != nil {
				locking.stackErr.Store(&err)
			}
		}
		return nil
	}
	op := fmt.Sprintf("SCHED_FIFO priority %d", prio)
	if err == unix.EPERM {
		return fifoPrivilegeError(op, prio, err)
	}
	return fmt.Errorf("rt: %s: %w", op, err)
}

// fifoPrivilegeError explains an EPERM from sched_setattr using what Probe
// sees, because the usual cause (no CAP_SYS_NICE, low RLIMIT_RTPRIO) is not
// the only one: a cgroup without an RT budget refuses even root.
func fifoPrivilegeError(op string, prio int, err error) *PrivilegeError {
	p := ProbeFor(prio)
	pe := &PrivilegeError{Op: op, Err: err}
	switch {
	case !p.fifoByPrivilege():
		pe.Need = fmt.Sprintf("CAP_SYS_NICE or RLIMIT_RTPRIO >= %d", prio)
		pe.Fix = fixRTPrio()
	case p.CgroupRTRuntime == "0":
		pe.Need = "a real-time budget for this cgroup (cpu.rt_runtime_us is 0)"
		pe.Fix = fixCgroupRT
	default:
		pe.Need = fmt.Sprintf("CAP_SYS_NICE or RLIMIT_RTPRIO >= %d (the kernel refused although this process appears to have it; check the cgroup's cpu.rt_runtime_us and security modules)", prio)
		pe.Fix = fixRTPrio()
	}
	return pe
}

// SetThreadOther returns the calling thread to SCHED_OTHER at nice 0.
func SetThreadOther() error {
	attr := unix.SchedAttr{Policy: SchedOther}
	// Without CAP_SYS_NICE the kernel refuses to clear reset-on-fork once
	// set, so keep whatever SetThreadFIFO put there; for SCHED_OTHER at
	// nice 0 the flag changes nothing anyway.
	if cur, err := unix.SchedGetAttr(0, 0); err == nil {
		attr.Flags = cur.Flags & unix.SCHED_FLAG_RESET_ON_FORK
	}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		if err == unix.EPERM {
			// Only reachable from a positive nice: going back to 0 raises
			// the thread's priority.
			return &PrivilegeError{
				Op:   "SCHED_OTHER nice 0",
				Need: "CAP_SYS_NICE or RLIMIT_NICE >= 20",
				Fix:  "run as root, or `setcap cap_sys_nice+ep " + binPath() + "`",
				Err:  err,
			}
		}
		return fmt.Errorf("rt: SCHED_OTHER: %w", err)
	}
	return nil
}

// ThreadPolicy returns the calling thread's scheduling policy (SchedOther,
// SchedFIFO or another unix.SCHED_*) and real-time priority (0 for
// non-real-time policies).
func ThreadPolicy() (policy int, prio int, err error) {
	attr, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("rt: sched_getattr: %w", err)
	}
	return int(attr.Policy), int(attr.Priority), nil
}

// SetThreadAffinity pins the calling thread to cpus.
func SetThreadAffinity(cpus []int) error {
	if len(cpus) == 0 {
		return errors.New("rt: SetThreadAffinity: no CPUs given")
	}
	var set unix.CPUSet
	max := len(set) * 64
	for _, c := range cpus {
		if c < 0 || c >= max {
			return fmt.Errorf("rt: SetThreadAffinity: CPU %d out of range 0..%d", c, max-1)
		}
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		if err == unix.EINVAL {
			return fmt.Errorf("rt: SetThreadAffinity %v: none of these CPUs is online and allowed by this process's cpuset: %w", cpus, err)
		}
		return fmt.Errorf("rt: SetThreadAffinity %v: %w", cpus, err)
	}
	return nil
}

// ThreadAffinity returns the CPUs the calling thread may run on.
func ThreadAffinity() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("rt: sched_getaffinity: %w", err)
	}
	var cpus []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// RunLockedFIFO runs fn on a dedicated OS thread at SCHED_FIFO prio.
//
// It returns once the priority is in place. A non-nil error (typically a
// *PrivilegeError) means fn will never run, and the caller decides whether
// to run it at ordinary priority instead. Otherwise done is closed when fn
// returns.
//
// The thread is never unlocked, so when fn returns Go destroys it instead of
// handing a real-time thread to unrelated goroutines. fn should block (futex,
// epoll, channel) rather than spin: a FIFO spinner starves every ordinary
// thread on its CPU, including the Go runtime's own, and with
// sched_rt_runtime_us = -1 nothing throttles it.
func RunLockedFIFO(prio int, fn func()) (done <-chan struct{}, err error) {
	if prio < FIFOMin || prio > FIFOMax {
		return nil, fmt.Errorf("rt: SCHED_FIFO priority %d out of range: use %d..%d", prio, FIFOMin, FIFOMax)
	}
	started := make(chan error, 1)
	d := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked; see above
		if err := SetThreadFIFO(prio); err != nil {
			started <- err
			return
		}
		started <- nil
		defer close(d)
		fn()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return d, nil
}

// Fix texts name the running binary so they can be pasted as-is.
func binPath() string {
	if p, err := os.Executable(); err == nil {
		return p
	}
	return "BIN"
}

func fixRTPrio() string {
	return "run as root, or `setcap cap_sys_nice+ep " + binPath() + "`, or add `USER - rtprio 99` to /etc/security/limits.conf and log in again"
}

// fixMemLock gives the limit in limits.conf's unit (KiB), rounded up to
// whole MiB.
func FixMemLock(need uint64) string {
	kib := (need + (1 << 20) - 1) >> 20 << 10
	return fmt.Sprintf("run as root, or `setcap cap_ipc_lock+ep %s`, or add `USER - memlock %d` to /etc/security/limits.conf and log in again (LimitMEMLOCK=%dM under systemd)", binPath(), kib, kib>>10)
}

const fixCgroupRT = "give the cgroup a budget (cgroup v1: write e.g. 950000 to cpu.rt_runtime_us; Docker: --cpu-rt-runtime=950000) or run in the root cgroup"

// mib rounds up, so a "need" is never understated; small limits stay in
// KiB so that 64 KiB does not read as 1 MiB.
func mib(b uint64) string {
	if b < 1<<20 {
		return fmt.Sprintf("%d KiB", b>>10)
	}
	return fmt.Sprintf("%d MiB", (b+(1<<20)-1)>>20)
}

func limitString(v uint64, unit func(uint64) string) string {
	if v == unix.RLIM_INFINITY {
		return "unlimited"
	}
	return unit(v)
}
