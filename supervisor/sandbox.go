package supervisor

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// NobodyID is the uid and gid a root host gives its workers by default: an
// id that owns nothing, so a worker that escaped its filter could still
// reach no file and signal no process of anyone else's.
const NobodyID = 65534

// workerIDs is the uid and gid the workers drop to, or -1s for none. A
// non-root host cannot give its workers another uid; its seccomp filter is
// then the whole line.
func workerIDs(cfg *Config) (uid, gid int) {
	if cfg.Unsandboxed {
		return -1, -1
	}
	uid, gid = cfg.WorkerUID, cfg.WorkerGID
	root := os.Geteuid() == 0
	if uid == 0 {
		uid = -1
		if root {
			uid = NobodyID
		}
	}
	if gid == 0 {
		gid = -1
		if root {
			gid = NobodyID
		}
	}
	return uid, gid
}

// sandboxArgs are the worker flags that say how it confines itself.
func sandboxArgs(cfg *Config) []string {
	if cfg.Unsandboxed {
		return []string{"--unsandboxed"}
	}
	var a []string
	uid, gid := workerIDs(cfg)
	if uid >= 0 {
		a = append(a, "--uid", strconv.Itoa(uid))
	}
	if gid >= 0 {
		a = append(a, "--gid", strconv.Itoa(gid))
	}
	return a
}

// workerRT remembers the first failure to set a worker's scheduling.
type workerRT struct {
	mu   sync.Mutex
	warn error
}

func (w *workerRT) note(err error) {
	w.mu.Lock()
	if w.warn == nil {
		w.warn = err
	}
	w.mu.Unlock()
}

func (w *workerRT) get() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.warn
}

// WorkerRTWarning is non-nil when the host could not give a worker its
// SCHED_FIFO priority (Config.WorkerPrio) or its CPU (Config.WorkerCPU).
// Workers hold no capabilities and may not change their own scheduling, so
// the host sets both from outside at spawn; the worker runs either way.
func (s *Supervisor) WorkerRTWarning() error { return s.workerRT.get() }

// placeWorker sets a new worker's policy and CPU from outside, before its
// handshake completes. Threads a kernel starts later inherit both.
func (s *Supervisor) placeWorker(pid int) {
	if p := int(s.workerPrio.Load()); p > 0 {
		if err := setFIFO(pid, p); err != nil {
			s.workerRT.note(err)
		}
	}
	if s.cfg.WorkerCPU >= 0 {
		var set unix.CPUSet
		set.Set(s.cfg.WorkerCPU)
		if err := unix.SchedSetaffinity(pid, &set); err != nil {
			s.workerRT.note(fmt.Errorf("workers are not pinned to CPU %d: sched_setaffinity on worker %d: %w", s.cfg.WorkerCPU, pid, err))
		}
	}
}

// killedBySandbox reports whether the exited process behind pidfd was
// killed by SIGSYS, which is what its seccomp filter does to a denied call.
// WNOWAIT leaves the zombie for the control plane's reap.
func killedBySandbox(pidfd int) bool {
	if pidfd < 0 {
		return false
	}
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PIDFD, pidfd, &info, unix.WEXITED|unix.WNOWAIT|unix.WNOHANG, nil); err != nil {
		return false
	}
	code, sig := exitStatus(&info)
	return code < 0 && sig == int(unix.SIGSYS)
}

var errSandboxOff = errors.New("workers run unsandboxed (--unsandboxed): a kernel can reach everything the host can")

// SandboxWarning is non-nil when the workers run without their sandbox.
func (s *Supervisor) SandboxWarning() error {
	if s.cfg.Unsandboxed {
		return errSandboxOff
	}
	return nil
}

// schedFIFO moves thread tid (a process's main thread: its pid) to
// SCHED_FIFO prio from outside: the host sets its workers' and its
// monitor's policy, which none of them can do for itself once sandboxed or
// locked to its loop.
func schedFIFO(tid, prio int) error {
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: uint32(prio)}
	return unix.SchedSetAttr(tid, &attr, 0)
}

func setFIFO(pid, prio int) error {
	if err := schedFIFO(pid, prio); err != nil {
		return fmt.Errorf("workers run without SCHED_FIFO %d: sched_setattr on worker %d: %w", prio, pid, err)
	}
	return nil
}

// checkPrio refuses a SCHED_FIFO priority the kernel would.
func checkPrio(who string, prio int) error {
	if prio < 1 || prio > 99 {
		return fmt.Errorf("supervisor: %s priority %d, want 1..99", who, prio)
	}
	return nil
}

// SetMonitorPriority moves the monitor's thread to SCHED_FIFO prio: for a
// host whose audio thread's priority is known only once it runs (a JACK
// client's callback, which PipeWire runs at FIFO 88), above which the
// monitor must sit. Only after Start.
func (s *Supervisor) SetMonitorPriority(prio int) error {
	if err := checkPrio("monitor", prio); err != nil {
		return err
	}
	tid := int(s.monTID.Load())
	if tid == 0 {
		return errors.New("supervisor: SetMonitorPriority before Start")
	}
	if err := schedFIFO(tid, prio); err != nil {
		return fmt.Errorf("the monitor runs without SCHED_FIFO %d: sched_setattr: %w", prio, err)
	}
	return nil
}

// MonitorPriority is the monitor thread's SCHED_FIFO priority as the
// kernel has it (0: not real-time, or not started).
func (s *Supervisor) MonitorPriority() int {
	tid := int(s.monTID.Load())
	if tid == 0 {
		return 0
	}
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil || attr.Policy != unix.SCHED_FIFO {
		return 0
	}
	return int(attr.Priority)
}

// SetWorkerPriority moves every worker, and every one spawned from now on,
// to SCHED_FIFO prio: for a host whose audio thread's priority is known only
// once it runs (a JACK client's callback), under which workers must sit. The
// threads a kernel started do not follow; the worker's main thread does.
func (s *Supervisor) SetWorkerPriority(prio int) error {
	if err := checkPrio("worker", prio); err != nil {
		return err
	}
	s.workerPrio.Store(int32(prio))
	var first error
	for i := range s.workers {
		w := &s.workers[i]
		if st := w.state.Load(); st == wSpare || st == wOwner || st == wSpawning {
			if pid := int(w.pid.Load()); pid > 0 {
				if err := setFIFO(pid, prio); err != nil && first == nil && !errors.Is(err, unix.ESRCH) {
					first = err
				}
			}
		}
	}
	return first
}
