package rt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/internal/rttest"
	"github.com/understudy-rt/understudy/rt"
)

// Low enough to stay below anything a real audio stack on a developer
// machine runs at; the threads holding it only ever block.
const testPrio = 10

// helperEnv selects a child-process mode of this test binary; see
// TestHelperProcess.
const helperEnv = "UNDERSTUDY_RT_HELPER"

const waitLimit = 20 * time.Second

// onLockedThread runs fn on a fresh locked OS thread and waits for it. The
// thread is never unlocked, so whatever fn did to its scheduling dies with
// it even if fn forgot to undo it. fn must report with t.Errorf, not Fatal.
func onLockedThread(t *testing.T, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		fn()
	}()
	waitFor(t, done, "locked-thread function")
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitLimit):
		t.Fatalf("%s did not finish within %v", what, waitLimit)
	}
}

// fifoThreads lists the tids of this process's threads that run SCHED_FIFO,
// asking the kernel about each one rather than trusting our own bookkeeping.
func fifoThreads(t *testing.T) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var fifo []int
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		attr, err := unix.SchedGetAttr(tid, 0)
		if err == unix.ESRCH {
			continue // exited since ReadDir
		}
		if err != nil {
			t.Fatalf("sched_getattr(%d): %v", tid, err)
		}
		if attr.Policy == rt.SchedFIFO {
			fifo = append(fifo, tid)
		}
	}
	return fifo
}

func threadCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestSetThreadFIFOOnlyRaisesCallingThread(t *testing.T) {
	rttest.RequireRT(t)
	if n := len(fifoThreads(t)); n != 0 {
		t.Fatalf("%d FIFO threads before the test; an earlier test leaked one", n)
	}

	raised := make(chan int, 1) // tid of the FIFO thread, or -1
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked
		if err := rt.SetThreadFIFO(testPrio); err != nil {
			t.Errorf("SetThreadFIFO(%d): %v", testPrio, err)
			raised <- -1
			return
		}
		// Restores even if a check below fails; the thread dies anyway.
		defer rt.SetThreadOther()
		if pol, prio, err := rt.ThreadPolicy(); err != nil || pol != rt.SchedFIFO || prio != testPrio {
			t.Errorf("ThreadPolicy after SetThreadFIFO = %d, %d, %v; want SCHED_FIFO(%d), %d", pol, prio, err, rt.SchedFIFO, testPrio)
		}
		if attr, err := unix.SchedGetAttr(0, 0); err != nil || attr.Flags&unix.SCHED_FLAG_RESET_ON_FORK == 0 {
			t.Errorf("sched_getattr = %+v, %v; want SCHED_FLAG_RESET_ON_FORK set", attr, err)
		}
		raised <- unix.Gettid()
		<-release // parked in the kernel, not spinning at FIFO
		if err := rt.SetThreadOther(); err != nil {
			t.Errorf("SetThreadOther: %v", err)
		}
		if pol, prio, err := rt.ThreadPolicy(); err != nil || pol != rt.SchedOther || prio != 0 {
			t.Errorf("ThreadPolicy after SetThreadOther = %d, %d, %v; want SCHED_OTHER(0), 0", pol, prio, err)
		}
	}()
	var once bool
	releaseAndWait := func() {
		if !once {
			once = true
			close(release)
			waitFor(t, done, "FIFO goroutine")
		}
	}
	t.Cleanup(releaseAndWait)

	var fifoTid int
	select {
	case fifoTid = <-raised:
	case <-time.After(waitLimit):
		t.Fatal("FIFO goroutine did not start")
	}
	if fifoTid < 0 {
		t.FailNow()
	}

	// An ordinary goroutine runs on some other thread, which must be untouched.
	other := make(chan [3]int, 1)
	go func() {
		pol, prio, _ := rt.ThreadPolicy()
		other <- [3]int{unix.Gettid(), pol, prio}
	}()
	o := <-other
	if o[0] == fifoTid {
		t.Errorf("unlocked goroutine ran on the locked thread %d", fifoTid)
	}
	if o[1] != rt.SchedOther || o[2] != 0 {
		t.Errorf("unlocked goroutine's thread %d has policy %d prio %d; want SCHED_OTHER 0", o[0], o[1], o[2])
	}
	if pol, _, _ := rt.ThreadPolicy(); pol != rt.SchedOther {
		t.Errorf("test goroutine's thread has policy %d; want SCHED_OTHER", pol)
	}

	if n := threadCount(t); n < 2 {
		t.Fatalf("only %d thread(s); the check below would prove nothing", n)
	}
	if got := fifoThreads(t); !slices.Equal(got, []int{fifoTid}) {
		t.Errorf("FIFO threads = %v; want exactly [%d] out of %d threads", got, fifoTid, threadCount(t))
	}

	releaseAndWait()
	if got := fifoThreads(t); len(got) != 0 {
		t.Errorf("FIFO threads after SetThreadOther = %v; want none", got)
	}
}

// A child forked from a FIFO thread (os/exec forks on the calling thread)
// must start at SCHED_OTHER: workers and helpers choose their own priority.
func TestFIFOThreadChildrenStartAsOther(t *testing.T) {
	rttest.RequireRT(t)
	var out []byte
	var runErr error
	onLockedThread(t, func() {
		if err := rt.SetThreadFIFO(testPrio); err != nil {
			t.Errorf("SetThreadFIFO: %v", err)
			return
		}
		defer rt.SetThreadOther()
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
		cmd.Env = append(childEnv(), helperEnv+"=policy")
		out, runErr = cmd.CombinedOutput()
	})
	if runErr != nil {
		t.Fatalf("child: %v\n%s", runErr, out)
	}
	want := fmt.Sprintf("child-policy=%d prio=0", rt.SchedOther)
	if !strings.Contains(string(out), want) {
		t.Errorf("child output lacks %q (it inherited the parent's FIFO priority?):\n%s", want, out)
	}
}

func TestRunLockedFIFO(t *testing.T) {
	rttest.RequireRT(t)
	type obs struct{ pol, prio, tid int }
	seen := make(chan obs, 1)
	done, err := rt.RunLockedFIFO(testPrio, func() {
		pol, prio, _ := rt.ThreadPolicy()
		seen <- obs{pol, prio, unix.Gettid()}
	})
	if err != nil {
		t.Fatalf("RunLockedFIFO: %v", err)
	}
	waitFor(t, done, "RunLockedFIFO fn")
	o := <-seen
	if o.pol != rt.SchedFIFO || o.prio != testPrio {
		t.Errorf("fn ran with policy %d prio %d; want SCHED_FIFO %d", o.pol, o.prio, testPrio)
	}
	// The thread was never unlocked, so Go must retire it instead of reusing
	// it at FIFO priority; that happens just after fn returns.
	deadline := time.Now().Add(waitLimit)
	for len(fifoThreads(t)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("FIFO thread(s) %v still alive %v after fn returned (fn ran on %d)", fifoThreads(t), waitLimit, o.tid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBadPriorityIsNotAPrivilegeError(t *testing.T) {
	for _, prio := range []int{-1, 0, rt.FIFOMax + 1} {
		err := rt.SetThreadFIFO(prio)
		if err == nil {
			rt.SetThreadOther() // don't leave a test thread raised
			t.Fatalf("SetThreadFIFO(%d) succeeded", prio)
		}
		if errors.Is(err, rt.ErrNoPrivilege) {
			t.Errorf("SetThreadFIFO(%d) = %v; a range error must not look like missing privilege", prio, err)
		}
		ran := false
		if _, err := rt.RunLockedFIFO(prio, func() { ran = true }); err == nil || ran {
			t.Errorf("RunLockedFIFO(%d) = %v, ran=%v; want an error and fn not run", prio, err, ran)
		}
	}
}

func vmLckKB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmLck:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatalf("parse %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatal("no VmLck in /proc/self/status")
	return 0
}

// LockMemory locks the program's mappings and the Go heap, what
// LockedNow says and nothing else (VmLck is exactly that), within what
// MemLockNeed asks for; memory mapped later is not locked (no MCL_FUTURE);
// a thread that SetThreadFIFO raises then locks its stack top; UnlockMemory
// undoes all of it.
func TestLockMemory(t *testing.T) {
	rttest.RequireRT(t)
	if n := vmLckKB(t); n != 0 {
		t.Fatalf("VmLck is %d kB before LockMemory", n)
	}
	need := rt.MemLockNeed(0)
	if err := rt.LockMemory(); err != nil {
		t.Fatalf("LockMemory: %v", err)
	}
	t.Cleanup(func() { rt.UnlockMemory() })
	l := rt.LockedNow()
	got := uint64(vmLckKB(t)) << 10
	t.Logf("VmLck %d KiB: image %d KiB, Go heap %d KiB; MemLockNeed(0) %d KiB", got>>10, l.Image>>10, l.Heap>>10, need>>10)
	// Go's scavenger may since have handed free heap pages back, which
	// unlocks them: the heap is the one part that can fall short.
	if l.Image == 0 || l.Heap == 0 || got > l.Total() || got < l.Image {
		t.Errorf("VmLck %d bytes; want image (%d) + heap (%d) = %d, or less by part of the heap, both non-zero", got, l.Image, l.Heap, l.Total())
	}
	if got > need {
		t.Errorf("VmLck %d bytes is more than MemLockNeed(0) = %d asks the limit for", got, need)
	}

	m, err := unix.Mmap(-1, 0, 8<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(m); i += 4096 {
		m[i] = 1
	}
	if now := uint64(vmLckKB(t)) << 10; now > got {
		t.Errorf("VmLck went from %d to %d bytes after an 8 MiB mmap: later mappings must not be locked", got, now)
	}
	unix.Munmap(m)

	onLockedThread(t, func() {
		if err := rt.SetThreadFIFO(testPrio); err != nil {
			t.Error(err)
			return
		}
		defer rt.SetThreadOther()
		if err := rt.StackLockErr(); err != nil {
			t.Errorf("stack lock: %v", err)
		}
		l := rt.LockedNow()
		if l.Stacks != rt.StackLockBytes {
			t.Errorf("a FIFO thread locked %d bytes of stack; want %d", l.Stacks, rt.StackLockBytes)
		}
		if now := uint64(vmLckKB(t)) << 10; now > l.Total() || now < l.Image+l.Stacks {
			t.Errorf("VmLck %d bytes after a FIFO thread started; want %d, or less by part of the heap (%+v)", now, l.Total(), l)
		}
	})

	if err := rt.UnlockMemory(); err != nil {
		t.Fatalf("UnlockMemory: %v", err)
	}
	if n := vmLckKB(t); n != 0 {
		t.Errorf("VmLck is %d kB after UnlockMemory", n)
	}
}

func TestSetThreadAffinity(t *testing.T) {
	var outside unix.CPUSet
	if err := unix.SchedGetaffinity(0, &outside); err != nil {
		t.Fatal(err)
	}
	if !outside.IsSet(0) {
		rttest.SkipOrFail(t, "CPU 0 is not in this process's affinity mask")
	}
	onLockedThread(t, func() {
		if err := rt.SetThreadAffinity([]int{0}); err != nil {
			t.Errorf("SetThreadAffinity([0]): %v", err)
			return
		}
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &set); err != nil {
			t.Errorf("SchedGetaffinity: %v", err)
			return
		}
		if set.Count() != 1 || !set.IsSet(0) {
			t.Errorf("affinity after SetThreadAffinity([0]) has %d CPUs, cpu0=%v; want only CPU 0", set.Count(), set.IsSet(0))
		}
		if got, err := rt.ThreadAffinity(); err != nil || !slices.Equal(got, []int{0}) {
			t.Errorf("ThreadAffinity = %v, %v; want [0]", got, err)
		}
	})
	var after unix.CPUSet
	if err := unix.SchedGetaffinity(0, &after); err != nil {
		t.Fatal(err)
	}
	if after != outside {
		t.Errorf("this thread's affinity changed from %d to %d CPUs; only the locked thread should be pinned", outside.Count(), after.Count())
	}

	for _, bad := range [][]int{nil, {-1}, {1 << 20}} {
		if err := rt.SetThreadAffinity(bad); err == nil {
			t.Errorf("SetThreadAffinity(%v) succeeded", bad)
		}
	}
}

func TestProbePrivileged(t *testing.T) {
	p := rttest.RequireRT(t)
	if !p.FIFO || !p.MemLock || len(p.Missing) != 0 || p.Warning() != "" {
		t.Errorf("Probe = %+v, Warning %q; want FIFO, MemLock, nothing missing, no warning", p, p.Warning())
	}
	if p.CapSysNice && p.MaxFIFO != rt.FIFOMax {
		t.Errorf("MaxFIFO = %d with CAP_SYS_NICE; want %d", p.MaxFIFO, rt.FIFOMax)
	}
	if p.RTThrottle == "" {
		t.Errorf("RTThrottle empty; /proc/sys/kernel/sched_rt_runtime_us should be readable")
	}
	t.Logf("sched_rt_runtime_us=%s cgroup rt_runtime_us=%q root=%v CAP_SYS_NICE=%v CAP_IPC_LOCK=%v",
		p.RTThrottle, p.CgroupRTRuntime, p.Root, p.CapSysNice, p.CapIPCLock)
}

// childEnv is our environment minus anything that would change a child
// test binary's behaviour: the RT requirement (children assert for
// themselves) and coverage output (the unprivileged child cannot write it).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == rttest.RequireEnv || k == helperEnv || k == "GOCOVERDIR" || strings.HasPrefix(k, helperEnv+"_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// runUnprivileged runs this test binary's TestHelperProcess as uid/gid 65534
// in mode, with the given soft rlimits. A fresh exec after setuid is exactly
// how an unprivileged user would start us: no capabilities at all.
//
// The limits are set by lowering our own soft limits around cmd.Start and
// restoring them right after, because nothing else works here: os/exec has no
// rlimit hook, and prlimit on the child after it became uid 65534 needs
// CAP_SYS_RESOURCE, which root on this VM lacks. Soft limits can go back up
// to the hard limit without privilege, and the parent keeps CAP_SYS_NICE and
// CAP_IPC_LOCK, so the brief change does not affect it.
func runUnprivileged(t *testing.T, mode string, soft map[int]uint64, extraEnv ...string) string {
	t.Helper()
	if unix.Geteuid() != 0 {
		rttest.SkipOrFail(t, "needs root to start an unprivileged child (euid is %d)", unix.Geteuid())
	}

	// The test binary lives in a 0700 go-build directory that uid 65534
	// cannot enter, so run a world-readable copy.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "rt-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "rt.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^TestHelperProcess$", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(childEnv(), append([]string{helperEnv + "=" + mode}, extraEnv...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out

	restore := make(map[int]unix.Rlimit)
	for res, cur := range soft {
		var r unix.Rlimit
		if err := unix.Getrlimit(res, &r); err != nil {
			t.Fatal(err)
		}
		if cur > r.Max {
			rttest.SkipOrFail(t, "cannot give the child soft rlimit %d = %d: hard limit is %d and raising it needs CAP_SYS_RESOURCE", res, cur, r.Max)
		}
		restore[res] = r
	}
	for res, cur := range soft {
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: cur, Max: restore[res].Max}); err != nil {
			t.Fatalf("setrlimit %d: %v", res, err)
		}
	}
	startErr := cmd.Start()
	for res, r := range restore {
		if err := unix.Setrlimit(res, &r); err != nil {
			t.Errorf("restoring rlimit %d: %v", res, err)
		}
	}
	if startErr != nil {
		rttest.SkipOrFail(t, "cannot start a child as uid 65534: %v", startErr)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("unprivileged child (%s): %v\n%s", mode, err, out.String())
	}
	if !strings.Contains(out.String(), "rt-helper-ok "+mode) {
		t.Fatalf("unprivileged child (%s) did not run its checks:\n%s", mode, out.String())
	}
	return out.String()
}

func TestProbeUnprivileged(t *testing.T) {
	// RLIMIT_MEMLOCK 0 makes mlockall fail with EPERM; a small non-zero
	// limit, below what a Go process maps, makes it fail with ENOMEM.
	// Both must read as missing privilege.
	t.Run("memlock=0", func(t *testing.T) {
		t.Log(runUnprivileged(t, "unpriv", map[int]uint64{unix.RLIMIT_RTPRIO: 0, unix.RLIMIT_MEMLOCK: 0}, helperEnv+"_ERRNO=EPERM"))
	})
	t.Run("memlock=1MiB", func(t *testing.T) {
		var r unix.Rlimit
		unix.Getrlimit(unix.RLIMIT_MEMLOCK, &r)
		t.Log(runUnprivileged(t, "unpriv", map[int]uint64{unix.RLIMIT_RTPRIO: 0, unix.RLIMIT_MEMLOCK: min(r.Max, 1<<20)}, helperEnv+"_ERRNO=ENOMEM"))
	})
}

// TestHelperProcess is not a test: it is the body of the child processes
// started above, selected by UNDERSTUDY_RT_HELPER.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	switch mode {
	case "":
		t.Fatal("TestHelperProcess runs only as a child (TestMain keeps it out of direct runs)")
	case "policy":
		// The main thread is the one the parent forked.
		attr, err := unix.SchedGetAttr(os.Getpid(), 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("child-policy=%d prio=%d\n", attr.Policy, attr.Priority)
		return
	case "unpriv":
		helperUnprivileged(t)
	case "rtprio":
		helperRTPrio(t)
	default:
		t.Fatalf("unknown helper mode %q", mode)
	}
	if !t.Failed() {
		fmt.Println("rt-helper-ok", mode)
	}
}

func hasMissing(p rt.Privileges, words ...string) bool {
	for _, m := range p.Missing {
		all := m.Fix != ""
		for _, w := range words {
			all = all && strings.Contains(m.What, w)
		}
		if all {
			return true
		}
	}
	return false
}

func helperUnprivileged(t *testing.T) {
	if unix.Geteuid() == 0 {
		t.Fatal("helper still runs as root")
	}
	const prio = 80
	p := rt.ProbeFor(prio)
	t.Logf("Probe: %+v", p)
	if p.FIFO || p.MaxFIFO != 0 || p.CapSysNice || p.CapIPCLock {
		t.Errorf("FIFO=%v MaxFIFO=%d CapSysNice=%v CapIPCLock=%v; want false, 0, false, false", p.FIFO, p.MaxFIFO, p.CapSysNice, p.CapIPCLock)
	}
	if !hasMissing(p, "RLIMIT_RTPRIO", "CAP_SYS_NICE") {
		t.Errorf("Missing %+v lacks an entry naming RLIMIT_RTPRIO and CAP_SYS_NICE", p.Missing)
	}
	if p.MemLock || !hasMissing(p, "RLIMIT_MEMLOCK", "CAP_IPC_LOCK") {
		t.Errorf("MemLock=%v Missing=%+v; want false and an entry naming RLIMIT_MEMLOCK and CAP_IPC_LOCK", p.MemLock, p.Missing)
	}
	w := p.Warning()
	t.Logf("Warning: %s", w)
	if w == "" || strings.Contains(w, "\n") || !strings.Contains(w, "ordinary scheduling") ||
		!strings.Contains(w, "RLIMIT_RTPRIO") || !strings.Contains(w, "RLIMIT_MEMLOCK") {
		t.Errorf("Warning %q: want one line naming both limits and the ordinary-scheduling fallback", w)
	}

	onLockedThread(t, func() {
		err := rt.SetThreadFIFO(prio)
		if err == nil {
			t.Errorf("SetThreadFIFO(%d) succeeded without privilege", prio)
			return
		}
		t.Logf("SetThreadFIFO: %v", err)
		var pe *rt.PrivilegeError
		if !errors.Is(err, rt.ErrNoPrivilege) || !errors.Is(err, unix.EPERM) || !errors.As(err, &pe) {
			t.Errorf("SetThreadFIFO error %#v: want a *PrivilegeError matching ErrNoPrivilege and EPERM", err)
		} else if want := "CAP_SYS_NICE or RLIMIT_RTPRIO >= 80"; pe.Need != want {
			t.Errorf("Need = %q; want %q", pe.Need, want)
		}
		if pol, _, _ := rt.ThreadPolicy(); pol != rt.SchedOther {
			t.Errorf("policy %d after refused SetThreadFIFO", pol)
		}
	})

	ran := false
	if _, err := rt.RunLockedFIFO(prio, func() { ran = true }); !errors.Is(err, rt.ErrNoPrivilege) || ran {
		t.Errorf("RunLockedFIFO = %v, ran=%v; want ErrNoPrivilege and fn not run", err, ran)
	}

	err := rt.LockMemory()
	if err == nil {
		rt.UnlockMemory()
		t.Fatal("LockMemory succeeded without privilege")
	}
	t.Logf("LockMemory: %v", err)
	wantErrno := map[string]error{"EPERM": unix.EPERM, "ENOMEM": unix.ENOMEM}[os.Getenv(helperEnv+"_ERRNO")]
	var pe *rt.PrivilegeError
	if !errors.Is(err, rt.ErrNoPrivilege) || !errors.Is(err, wantErrno) || !errors.As(err, &pe) || !strings.Contains(pe.Need, "CAP_IPC_LOCK") {
		t.Errorf("LockMemory error %#v: want a *PrivilegeError matching ErrNoPrivilege and %v, needing CAP_IPC_LOCK", err, wantErrno)
	}
}

func helperRTPrio(t *testing.T) {
	p := rt.ProbeFor(testPrio)
	if p.CapSysNice || !p.FIFO || p.MaxFIFO != testPrio {
		t.Errorf("Probe at RLIMIT_RTPRIO %d: CapSysNice=%v FIFO=%v MaxFIFO=%d; want false, true, %d", testPrio, p.CapSysNice, p.FIFO, p.MaxFIFO, testPrio)
	}
	if q := rt.ProbeFor(testPrio + 1); q.FIFO || !hasMissing(q, fmt.Sprintf("RLIMIT_RTPRIO is %d", testPrio), "CAP_SYS_NICE") {
		t.Errorf("ProbeFor(%d) = %+v; want FIFO false and a Missing entry for RLIMIT_RTPRIO %d", testPrio+1, q, testPrio)
	}
	onLockedThread(t, func() {
		err := rt.SetThreadFIFO(testPrio + 1)
		var pe *rt.PrivilegeError
		if !errors.As(err, &pe) || !errors.Is(err, rt.ErrNoPrivilege) || pe.Need != fmt.Sprintf("CAP_SYS_NICE or RLIMIT_RTPRIO >= %d", testPrio+1) {
			t.Errorf("SetThreadFIFO above the limit = %v; want a *PrivilegeError needing RLIMIT_RTPRIO >= %d", err, testPrio+1)
		}
		if err := rt.SetThreadFIFO(testPrio); err != nil {
			t.Errorf("SetThreadFIFO at the limit: %v", err)
			return
		}
		if pol, prio, _ := rt.ThreadPolicy(); pol != rt.SchedFIFO || prio != testPrio {
			t.Errorf("ThreadPolicy = %d, %d; want SCHED_FIFO %d", pol, prio, testPrio)
		}
		// Without CAP_SYS_NICE, going back only works if reset-on-fork is kept.
		if err := rt.SetThreadOther(); err != nil {
			t.Errorf("SetThreadOther without CAP_SYS_NICE: %v", err)
		}
		if pol, _, _ := rt.ThreadPolicy(); pol != rt.SchedOther {
			t.Errorf("policy %d after SetThreadOther", pol)
		}
	})
}

// A hold is the system's effective request while it stands, and is gone once
// released; a second, looser hold does not loosen the first.
func TestHoldWakeLatency(t *testing.T) {
	if _, err := os.Stat("/dev/cpu_dma_latency"); err != nil {
		rttest.SkipOrFail(t, "no PM QoS here: %v", err)
	}
	rttest.RequireRT(t)
	before, err := rt.CurrentWakeLatency()
	if err != nil {
		t.Fatal(err)
	}
	if before <= 7 {
		rttest.SkipOrFail(t, "something else already holds the wake latency at %d µs", before)
	}
	h, err := rt.HoldWakeLatency(7)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	if got, _ := rt.CurrentWakeLatency(); got != 7 {
		t.Errorf("with a 7 µs hold the system's request is %d µs", got)
	}
	loose, err := rt.HoldWakeLatency(5000)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := rt.CurrentWakeLatency(); got != 7 {
		t.Errorf("a looser second hold changed the request to %d µs", got)
	}
	loose.Release()
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	h.Release() // again: harmless
	if got, _ := rt.CurrentWakeLatency(); got != before {
		t.Errorf("after release the request is %d µs, was %d", got, before)
	}
	if _, err := rt.HoldWakeLatency(-1); err == nil {
		t.Error("a negative latency was accepted")
	}
}
