package doctor

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/rt"
	"github.com/understudy-rt/understudy/runtime/shm"
	"github.com/understudy-rt/understudy/supervisor"
)

// fifoTry is one attempt to put a thread at SCHED_FIFO prio.
type fifoTry struct {
	role        string // "monitor", "clock"
	prio        int
	err         error
	policy, got int // what the thread had afterwards
}

// tryFIFO raises a throwaway OS thread to each of the host's priorities and
// back. The thread stays locked, so Go ends it rather than hand it on, even if
// the way back failed.
func tryFIFO(c Config) []fifoTry {
	tries := []fifoTry{{role: "monitor", prio: c.MonitorPrio}, {role: "clock", prio: c.ClockPrio}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: see above
		for i := range tries {
			t := &tries[i]
			if t.err = rt.SetThreadFIFO(t.prio); t.err != nil {
				continue
			}
			t.policy, t.got, _ = rt.ThreadPolicy()
			if err := rt.SetThreadOther(); err != nil {
				t.err = fmt.Errorf("granted, but the way back failed: %w", err)
			}
		}
	}()
	<-done
	return tries
}

func checkFIFOTrial(tries []fifoTry) Result {
	r := Result{Name: "fifo"}
	var ok []string
	for _, t := range tries {
		switch {
		case t.err != nil:
			r.Status = Fail
			r.Finding = fmt.Sprintf("the %s's SCHED_FIFO %d was refused: %v", t.role, t.prio, t.err)
			r.Fix = "look for what else governs scheduling here: a security module (SELinux, AppArmor), a seccomp profile, a sched_ext scheduler"
			var pe *rt.PrivilegeError
			if errors.As(t.err, &pe) {
				r.Finding = fmt.Sprintf("the %s's SCHED_FIFO %d was refused (%v): need %s", t.role, t.prio, pe.Err, pe.Need)
				r.Fix = pe.Fix
			}
			return r
		case t.policy != rt.SchedFIFO || t.got != t.prio:
			r.Status = Fail
			r.Finding = fmt.Sprintf("the %s asked for SCHED_FIFO %d and the kernel reports policy %d priority %d", t.role, t.prio, t.policy, t.got)
			r.Fix = "check for a security module or a scheduler extension overriding policies"
			return r
		}
		ok = append(ok, fmt.Sprintf("%s %d", t.role, t.prio))
	}
	r.Finding = "a throwaway thread got SCHED_FIFO at " + strings.Join(ok, " and ") + ", then went back"
	return r
}

// mlockTry is the host locking its memory the way it will when it plays:
// rt.LockMemory (program, libraries, Go heap), a real-time thread's stacks,
// and the default run's region and clock (rt.DefaultShared), all at once,
// so that what is tried is what rt.MemLockNeed asks the limit for.
type mlockTry struct {
	err  error
	need uint64
}

func tryMLock() mlockTry {
	t := mlockTry{need: rt.Probe().MemLockNeed}
	if t.err = rt.LockMemory(); t.err != nil {
		return t
	}
	defer rt.UnlockMemory()
	done := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		done <- rt.LockThreadStacks()
	}()
	if t.err = <-done; t.err != nil {
		return t
	}
	shared, err := unix.Mmap(-1, 0, int(rt.DefaultShared), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.err = err
		return t
	}
	defer unix.Munmap(shared)
	if err := unix.Mlock(shared); err != nil {
		// As rt reports its own refusals: a privilege the host lacks.
		t.err = &rt.PrivilegeError{Op: "mlock of the region and clock", Err: err}
	}
	return t
}

func checkMLockTrial(t mlockTry) Result {
	r := Result{Name: "mlock"}
	var pe *rt.PrivilegeError
	switch {
	case t.err == nil:
		r.Finding = "locked the host's memory the way it does when it plays, then unlocked it"
	case errors.As(t.err, &pe):
		// The need the memlock line gives, from the same probe: rt's own
		// error would recount a heap that has grown since.
		r.Status = Fail
		r.Finding = fmt.Sprintf("locking the host's memory was refused (%v): need CAP_IPC_LOCK or RLIMIT_MEMLOCK >= %s", pe.Err, bytesText(t.need))
		r.Fix = rt.FixMemLock(t.need)
	default:
		r.Status = Fail
		r.Finding = fmt.Sprintf("locking the host's memory failed: %v", t.err)
		r.Fix = "check the memory left (`free -m`) and `ulimit -l`"
	}
	return r
}

// workerTry is a throwaway worker held at its first instruction: the host
// sets its scheduling from outside, as it does every worker's, and reads the
// limits and capabilities the worker's own locking will face.
type workerTry struct {
	path     string
	startErr error // the worker could not be started and held
	setErr   error // sched_setattr on its pid
	policy   int   // read back from outside
	prio     int
	capEff   uint64 // the worker's effective capabilities after exec
	memlock  uint64 // its soft RLIMIT_MEMLOCK
	need     uint64 // what it will lock: its shared memory and its own image
}

// workerImageBytes is what a worker locks beyond the shared region: its code,
// libc, stack and the kernels' state. Measured on a running demo worker
// (VmLck 3792 kB with a 1295 kB region): 2.4 MiB; rounded up for a user's
// kernels.
const workerImageBytes = 4 << 20

// tryWorker starts the worker under PTRACE_TRACEME, so it stops at its exec
// with the credentials, limits and capabilities it will run with but before
// it runs a line of its own; sets it to SCHED_FIFO from outside; and kills
// and reaps it. A traced exec ignores file capabilities, which a worker
// (possibly NO_NEW_PRIVS) must not rely on anyway.
func tryWorker(c Config) (w workerTry) {
	w.path = c.Worker
	w.need = uint64(shm.Bytes(max(c.Lanes, 1))) + workerImageBytes
	if err := supervisor.CheckWorker(c.Worker); err != nil {
		w.startErr = err
		return w
	}
	// ptrace ties the tracee to the thread that forked it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	null, err := os.Open(os.DevNull)
	if err != nil {
		w.startErr = err
		return w
	}
	defer null.Close()
	fd := null.Fd()
	pid, err := syscall.ForkExec(c.Worker, []string{c.Worker}, &syscall.ProcAttr{
		Files: []uintptr{fd, fd, fd},
		Sys:   &syscall.SysProcAttr{Ptrace: true, Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		w.startErr = fmt.Errorf("start %s held at exec (ptrace): %w", c.Worker, err)
		return w
	}
	defer func() {
		unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		for {
			if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != unix.EINTR {
				break
			}
		}
	}()
	var ws unix.WaitStatus
	for {
		_, err = unix.Wait4(pid, &ws, unix.WALL, nil)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil || !ws.Stopped() {
		w.startErr = fmt.Errorf("%s did not stop at its exec (wait status %#x, %v)", c.Worker, uint32(ws), err)
		return w
	}
	w.setErr = unix.SchedSetAttr(pid, &unix.SchedAttr{
		Policy: unix.SCHED_FIFO, Flags: unix.SCHED_FLAG_RESET_ON_FORK, Priority: uint32(c.WorkerPrio),
	}, 0)
	if a, err := unix.SchedGetAttr(pid, 0); err == nil {
		w.policy, w.prio = int(a.Policy), int(a.Priority)
	}
	w.capEff = procStatusHex(pid, "CapEff:")
	var lim unix.Rlimit
	if unix.Prlimit(pid, unix.RLIMIT_MEMLOCK, nil, &lim) == nil {
		w.memlock = lim.Cur
	}
	return w
}

func procStatusHex(pid int, key string) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return n
		}
	}
	return 0
}

func checkWorkerFIFO(w workerTry, prio int) Result {
	r := Result{Name: "worker-fifo"}
	switch {
	case errors.Is(w.startErr, supervisor.ErrWorkerBinary):
		r.Status = Fail
		r.Finding = w.startErr.Error()
		r.Fix = "build it with `make`, or pass --worker PATH (or set UNDERSTUDY_WORKER)"
	case w.startErr != nil:
		r.Status = Warn
		r.Finding = "could not hold a throwaway worker to try: " + w.startErr.Error()
		r.Fix = "if ptrace is restricted (kernel.yama.ptrace_scope 3, a seccomp profile), run `understudy demo` and check its workers with `ps -eLo pid,cls,rtprio,comm`"
	case errors.Is(w.setErr, unix.EPERM):
		r.Status = Fail
		r.Finding = fmt.Sprintf("the host could not set its worker to SCHED_FIFO %d from outside (EPERM): the workers would run on ordinary scheduling", prio)
		r.Fix = "give the host CAP_SYS_NICE (`setcap cap_sys_nice+ep` on the understudy binary, or run it as root) or an RLIMIT_RTPRIO of at least the worker's priority (limits.d rtprio, LimitRTPRIO= under systemd); check the cgroup's cpu.rt_runtime_us"
	case w.setErr != nil:
		r.Status = Fail
		r.Finding = fmt.Sprintf("setting the worker to SCHED_FIFO %d failed: %v", prio, w.setErr)
		r.Fix = "check the cgroup's cpu.rt_runtime_us and any security module or sched_ext scheduler"
	case w.policy != unix.SCHED_FIFO || w.prio != prio:
		r.Status = Fail
		r.Finding = fmt.Sprintf("the worker was set to SCHED_FIFO %d but reads back policy %d priority %d", prio, w.policy, w.prio)
		r.Fix = "look for what overrides policies here: a sched_ext scheduler, a daemon such as rtkit or ananicy"
	default:
		r.Finding = fmt.Sprintf("the host set a throwaway %s to SCHED_FIFO %d from outside, then killed it", w.path, prio)
	}
	return r
}

func checkWorkerMemLock(w workerTry) Result {
	r := Result{Name: "worker-memlock"}
	switch {
	case w.startErr != nil:
		r.Status = Warn
		r.Finding = "no worker to read its limits from (see worker-fifo)"
	case w.capEff&(1<<unix.CAP_IPC_LOCK) != 0:
		r.Finding = fmt.Sprintf("the worker holds CAP_IPC_LOCK (RLIMIT_MEMLOCK %s)", limitText(w.memlock, bytesText))
	case w.memlock == unlimited || w.memlock >= w.need:
		r.Finding = fmt.Sprintf("the worker's RLIMIT_MEMLOCK %s covers the %s it locks", limitText(w.memlock, bytesText), bytesText(w.need))
	default:
		r.Status = Fail
		r.Finding = fmt.Sprintf("the worker's RLIMIT_MEMLOCK is %s, below the %s it locks, and it holds no CAP_IPC_LOCK (file capabilities on the host do not pass to it): page faults can stall it",
			bytesText(w.memlock), bytesText(w.need))
		r.Fix = "raise the memlock limit of the user that runs understudy (limits.d `memlock unlimited`, LimitMEMLOCK=infinity under systemd)"
	}
	return r
}
