package rttest_test

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/internal/rttest"
)

const helperEnv = "UNDERSTUDY_RTTEST_HELPER"

// runHelper runs this test binary's TestHelperSkipOrFail in a child, so the
// real testing package decides what Skip and Fatal do.
func runHelper(t *testing.T, require bool) (string, error) {
	return runNamed(t, "^TestHelperSkipOrFail$", require)
}

func runNamed(t *testing.T, run string, require bool) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+run, "-test.v")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, rttest.RequireEnv+"=") && !strings.HasPrefix(kv, "GOCOVERDIR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, helperEnv+"=1")
	if require {
		cmd.Env = append(cmd.Env, rttest.RequireEnv+"=1")
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestSkipOrFailSkipsByDefault(t *testing.T) {
	out, err := runHelper(t, false)
	if err != nil || !strings.Contains(out, "--- SKIP: TestHelperSkipOrFail") || !strings.Contains(out, "no widget 7") {
		t.Errorf("child: err=%v; want exit 0 and a SKIP with the reason:\n%s", err, out)
	}
	if strings.Contains(out, "after SkipOrFail") {
		t.Errorf("test continued after SkipOrFail:\n%s", out)
	}
}

func TestSkipOrFailFailsWhenRequired(t *testing.T) {
	out, err := runHelper(t, true)
	if err == nil || !strings.Contains(out, "--- FAIL: TestHelperSkipOrFail") ||
		!strings.Contains(out, "no widget 7") || !strings.Contains(out, rttest.RequireEnv+"=1") {
		t.Errorf("child: err=%v; want a failure naming the reason and %s=1:\n%s", err, rttest.RequireEnv, out)
	}
	if strings.Contains(out, "after SkipOrFail") {
		t.Errorf("test continued after SkipOrFail:\n%s", out)
	}
}

func TestHelperSkipOrFail(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Fatal("a child-process body (TestMain keeps it out of direct runs)")
	}
	rttest.SkipOrFail(t, "no widget %d", 7)
	t.Log("after SkipOrFail")
}

// RequireRT lets a test through only where real-time privileges really
// work: checked against an independent attempt to set SCHED_FIFO on a
// throwaway thread and to lock a page, not against its own probe.
func TestRequireRT(t *testing.T) {
	fifo, lock := tryFIFO(t), tryMlock()
	out, err := runNamed(t, "^TestHelperRequireRT$", false)
	passed := err == nil && strings.Contains(out, "--- PASS: TestHelperRequireRT")
	skipped := err == nil && strings.Contains(out, "--- SKIP: TestHelperRequireRT")
	switch {
	case fifo && lock && !passed:
		t.Errorf("FIFO and mlock work here, but RequireRT did not let the test run:\n%s", out)
	case !(fifo && lock) && !skipped:
		t.Errorf("FIFO works: %v, mlock works: %v, but RequireRT did not skip:\n%s", fifo, lock, out)
	}
}

func TestHelperRequireRT(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Fatal("a child-process body (TestMain keeps it out of direct runs)")
	}
	rttest.RequireRT(t)
}

// tryFIFO sets SCHED_FIFO 1 on a locked, throwaway OS thread and restores it.
func tryFIFO(t *testing.T) bool {
	ok := make(chan bool)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with its changed policy
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: 1 /* SCHED_FIFO */, Priority: 1}
		err := unix.SchedSetAttr(0, &attr, 0)
		ok <- err == nil
	}()
	return <-ok
}

func tryMlock() bool {
	b, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return false
	}
	defer unix.Munmap(b)
	return unix.Mlock(b) == nil
}
