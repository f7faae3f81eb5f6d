package supervisor

import (
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/runtime/shm"
)

func TestStatExited(t *testing.T) {
	// The fields after comm: state ppid pgrp session tty tpgid FLAGS minflt
	// cminflt majflt cmajflt utime stime cutime cstime priority nice
	// NUM_THREADS itrealvalue starttime ...
	line := func(comm string, state byte, flags, threads int) string {
		return fmt.Sprintf("1234 (%s) %c 1 1234 1234 0 -1 %d 120 0 0 0 5 3 0 0 20 0 %d 0 98765 1000", comm, state, flags, threads)
	}
	for _, c := range []struct {
		line string
		want bool
	}{
		{line("understudy-work", 'R', 4194560, 1), false},
		{line("understudy-work", 'S', 4194564, 1), true}, // PF_EXITING (0x4)
		{line("understudy-work", 'Z', 4194560, 1), true},
		{line("understudy-work", 'X', 4194560, 1), true},
		{line("understudy-work", 'D', 4194564, 2), false}, // a sibling thread may still run user code
		{line("understudy-work", 'Z', 4194560, 3), false}, // leader gone, threads left
		{line("a) b (c", 'T', 4194560, 1), false},         // comm with ") " inside
		{line("a) b (c", 'D', 4, 1), true},
		{"1234 (x) R 1 2 3 4 5 4 0 0", false}, // cut short: no num_threads
		{"garbage", false},
		{"", false},
	} {
		if got := statExited([]byte(c.line)); got != c.want {
			t.Errorf("statExited(%q) = %v, want %v", c.line, got, c.want)
		}
	}
}

// The fence reads a real process's stat: a running, a stopped and a
// sleeping process can still run user code; a zombie and a reaped one
// cannot.
func TestExitedOnRealProcess(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/stat", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := &Supervisor{}
	s.workers[0].statFD.Store(int32(fd))
	m := &monitor{s: s}
	defer unix.Close(fd)
	if m.exited(0) {
		t.Fatal("a sleeping process reads as exited")
	}
	if a := testing.AllocsPerRun(200, func() { m.exited(0) }); a != 0 {
		t.Errorf("the fence's read allocates %.1f times", a)
	}
	syscall.Kill(pid, syscall.SIGSTOP)
	if !waitFor(func() bool { return statState(t, pid) == 'T' }) {
		t.Fatalf("the process never showed as stopped (state %c): the stopped case was not tested", statState(t, pid))
	}
	if m.exited(0) {
		t.Fatal("a stopped process reads as exited")
	}
	syscall.Kill(pid, syscall.SIGKILL)
	if !waitFor(func() bool { return m.exited(0) }) {
		t.Fatalf("a killed, unreaped process (state %c) does not read as exited", statState(t, pid))
	}
	cmd.Wait()
	if !m.exited(0) {
		t.Fatal("a reaped process does not read as exited")
	}
	s.workers[1].statFD.Store(-1)
	if m.exited(1) {
		t.Fatal("no stat file reads as exited; it must wait for the pidfd")
	}
}

func waitFor(f func() bool) bool {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if f() {
			return true
		}
	}
	return false
}

func statState(t *testing.T, pid int) byte {
	var st [512]byte
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/stat", pid), unix.O_RDONLY, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	n, _ := unix.Read(fd, st[:])
	for i := n - 1; i >= 0; i-- {
		if st[i] == ')' && i+2 < n {
			return st[i+2]
		}
	}
	return 0
}

// A hung owner is killed; the fence hands its lane over as soon as the
// kernel has it in exit, and the pidfd's report that follows finds the lane
// already gone and changes nothing.
func TestFenceThenDeath(t *testing.T) {
	const hang = 5 * time.Millisecond
	tl := &stallTimeline{}
	s := manualSupervisor(t, tl, hang)
	first, pid := s.Owner(0)
	time.Sleep(2 * hang)
	tl.pushNS, tl.inWrite = shm.NowNS()-4*uint64(hang), 1
	killNS := shm.NowNS()
	s.mon.checkDeadlines(killNS) // kills: the block is overdue
	if st := s.workers[first].state.Load(); st != wKilled {
		t.Fatalf("owner state %d after its deadline, want killed", st)
	}
	// The monitor must come back to look for the exit flag; its timer
	// armed any later would leave the lane waiting for the pidfd.
	if s.mon.armedNS > killNS+fencePollNS {
		t.Fatalf("after the kill the timer is armed %v ahead, want at most %v", time.Duration(s.mon.armedNS-killNS), time.Duration(fencePollNS))
	}
	if !waitFor(func() bool { return s.mon.exited(first) }) {
		t.Fatal("killed owner never read as exited")
	}
	// Only the fence runs, not the pidfd: the lane must move on its word.
	s.mon.checkDeadlines(shm.NowNS())
	if o, _ := s.Owner(0); o == first || s.lanes[0].awaiting >= 0 {
		t.Fatalf("after the fence: owner slot %d (killed: %d), awaiting %d", o, first, s.lanes[0].awaiting)
	}
	tl.next = shm.NowNS() + uint64(time.Millisecond)
	s.mon.poll(0) // hands the lane to the spare
	second, pid2 := s.Owner(0)
	if second < 0 || second == first || pid2 == pid {
		t.Fatalf("lane not handed over: owner slot %d pid %d (was %d/%d)", second, pid2, first, pid)
	}
	// The new owner has one hang timeout from its attach (or, if the lane
	// is idle, from the next period, 1 ms away on this timeline), and the
	// monitor must be due back by then, not at its 100 ms idle re-arm.
	// Both bounds are the monitor's own arithmetic on the attach time and
	// the timeline's next period, which the test fixes: no wall clock.
	if due := max(s.lanes[0].attachNS, tl.next) + uint64(hang); s.mon.armedNS > due {
		t.Errorf("new owner's deadline not armed: timer %v after it", time.Duration(s.mon.armedNS-due))
	}
	// From now on that block is not overdue, whatever the new owner makes
	// of it (the timeline is fake; the lane's indices are real and must
	// not move backwards).
	tl.pushNS = shm.NowNS() + uint64(time.Hour)
	for i := 0; i < 50; i++ { // now the pidfd: the old owner's death
		s.mon.poll(0)
		time.Sleep(time.Millisecond)
	}
	if o, p := s.Owner(0); o != second || p != pid2 {
		t.Errorf("the old owner's death moved the lane again: slot %d pid %d, want %d/%d", o, p, second, pid2)
	}
	if st := s.workers[first].state.Load(); st == wKilled {
		t.Errorf("old owner's death never processed (state %d)", st)
	}
}

// An owner that dies by itself while its block is pending, and whose pidfd
// the kernel has not made readable yet, is a death, not a hang: the deadline
// finds it in exit, says so, and moves the lane at once.
func TestDeadlineFindsOwnerExiting(t *testing.T) {
	const hang = 5 * time.Millisecond
	tl := &stallTimeline{}
	s := manualSupervisor(t, tl, hang)
	first, pid := s.Owner(0)
	time.Sleep(2 * hang)
	syscall.Kill(pid, syscall.SIGKILL) // from outside; the monitor polls nothing meanwhile
	if !waitFor(func() bool { return s.mon.exited(first) }) {
		t.Fatal("killed owner never read as exited")
	}
	tl.pushNS, tl.inWrite = shm.NowNS()-4*uint64(hang), 1
	s.mon.checkDeadlines(shm.NowNS())
	if p := s.lanes[0].det.path; p != PathExiting {
		t.Errorf("detected by %v, want %v", p, PathExiting)
	}
	if o, _ := s.Owner(0); o == first || s.lanes[0].awaiting >= 0 {
		t.Errorf("lane not moved at once: owner slot %d (dead: %d), awaiting %d", o, first, s.lanes[0].awaiting)
	}
	if !FaultExit.Expects(PathDeathWord) || !FaultKill.Expects(PathDeathWord) || !FaultRobust.Expects(PathExiting) ||
		!FaultRobust.Expects(PathPidfd) || FaultHang.Expects(PathExiting) {
		t.Error("Expects: exit and kill are deaths by their word; a death without one is pidfd or exiting; a hang is neither")
	}
}

// manualSupervisor is one lane and one spare under a monitor that runs only
// when the test calls it, over a timeline the test sets by hand.
func manualSupervisor(t *testing.T, tl Timeline, hang time.Duration) *Supervisor {
	t.Helper()
	s, err := New(Config{Worker: testWorker(t), Lanes: testLanes(t, 1, 64, 48000), Spares: 1, WorkerCPU: -1, HangTimeout: hang, manualMonitor: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Start(tl); err != nil {
		t.Fatal(err)
	}
	// Start drove the monitor itself; on a loaded machine its polls can
	// come late enough to count as stalls. The test's polls are what its
	// tests judge, from a monitor that has seen none.
	s.mon.stalls.Store(0)
	s.mon.lateRun, s.mon.stallNS = 0, 0
	return s
}

// The exit_code field of a real process killed by a signal names that
// signal once the kernel has it in exit, as the death word's confirmation
// reads it (SIGSYS there is the sandbox's kill).
func TestStatExitSignalOnRealProcess(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGSYS} {
		cmd := exec.Command("sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/stat", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		var buf [512]byte
		n, _ := unix.Pread(fd, buf[:], 0)
		if got := statExitSignal(buf[:n]); got != 0 {
			t.Errorf("a running process reads exit signal %d", got)
		}
		syscall.Kill(pid, sig)
		if !waitFor(func() bool { return statState(t, pid) == 'Z' }) {
			t.Fatalf("%v: never a zombie", sig)
		}
		n, _ = unix.Pread(fd, buf[:], 0)
		if got := statExitSignal(buf[:n]); got != int(sig) {
			t.Errorf("killed by %v: exit signal read %d from %q", sig, got, buf[:n])
		}
		unix.Close(fd)
		cmd.Wait()
	}
	for _, b := range []string{"", "garbage", "1 (x) R 1"} {
		if got := statExitSignal([]byte(b)); got != 0 {
			t.Errorf("statExitSignal(%q) = %d", b, got)
		}
	}
}

// A gasper's SIGKILL, put off until the poll's hand-overs are sent, is
// sent by afterHandOver, really ends the process, and the queue empties;
// neither end allocates.
func TestPutOffKill(t *testing.T) {
	start := func() *exec.Cmd {
		cmd := exec.Command("sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	gasper, bystander := start(), start()
	pidfd, err := unix.PidfdOpen(gasper.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	s := &Supervisor{}
	s.workers[0].pidfd.Store(-1)
	s.workers[1].pidfd.Store(int32(pidfd))
	m := &monitor{s: s}
	m.putOff(1, true, -1)
	if gasper.ProcessState != nil || !alive(gasper.Process.Pid) {
		t.Fatal("the gasper died before the hand-over")
	}
	m.afterHandOver()
	if err := gasper.Wait(); err == nil || gasper.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("the gasper ended with %v, want SIGKILL", gasper.ProcessState)
	}
	if !alive(bystander.Process.Pid) {
		t.Error("a process nobody put off was killed")
	}
	if m.nDying != 0 {
		t.Errorf("%d put off after the hand-over, want none", m.nDying)
	}
	if a := testing.AllocsPerRun(100, func() { m.putOff(0, true, -1); m.afterHandOver() }); a != 0 {
		t.Errorf("putOff and afterHandOver allocate %.1f times", a)
	}
}
