package doctor

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/internal/rttest"
	"github.com/understudy-rt/understudy/internal/workerbin"
)

func testConfig(t *testing.T) Config {
	w, err := workerbin.Path()
	if err != nil {
		t.Fatal(err)
	}
	return Config{MonitorPrio: 80, ClockPrio: 70, WorkerPrio: 60, Worker: w, Lanes: 2,
		Rate: 48000, Block: 64, Latency: 2, HangTimeout: 667 * time.Microsecond, SpinUS: 20}
}

// children lists this process's child processes.
func children() []string {
	me := strconv.Itoa(os.Getpid())
	var kids []string
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 1 && f[1] == me {
			kids = append(kids, s)
		}
	}
	return kids
}

// TestRunReadsThisMachine runs every check against the real files: one
// result per name, in order, each with a finding.
func TestRunReadsThisMachine(t *testing.T) {
	rs := Run(testConfig(t))
	if len(rs) != len(Names) {
		t.Fatalf("%d results for %d checks", len(rs), len(Names))
	}
	for i, r := range rs {
		if r.Name != Names[i] || r.Finding == "" {
			t.Errorf("result %d: %+v, want check %s with a finding", i, r, Names[i])
		}
	}
	if kids := children(); len(kids) != 0 {
		t.Errorf("Run left children: %v", kids)
	}
}

// TestWorkerTrialSetsFIFOFromOutside: with the privilege, the throwaway
// worker really reads back SCHED_FIFO at the asked priority, and is gone
// afterwards; the calling thread's own policy is untouched.
func TestWorkerTrialSetsFIFOFromOutside(t *testing.T) {
	c := testConfig(t)
	w := tryWorker(c)
	if kids := children(); len(kids) != 0 {
		t.Errorf("tryWorker left children: %v", kids)
	}
	if w.startErr != nil {
		t.Fatalf("could not hold the worker: %v", w.startErr)
	}
	rttest.RequireRT(t)
	if w.setErr != nil || w.policy != unix.SCHED_FIFO || w.prio != c.WorkerPrio {
		t.Errorf("worker: set %v, read back policy %d prio %d; want FIFO %d", w.setErr, w.policy, w.prio, c.WorkerPrio)
	}
	if r := checkWorkerFIFO(w, c.WorkerPrio); r.Status != OK {
		t.Errorf("%+v", r)
	}
}

// TestFIFOTrialRestores: the trial's thread got each priority, and the
// test's own thread stays as it was.
func TestFIFOTrialRestores(t *testing.T) {
	rttest.RequireRT(t)
	before, _ := unix.SchedGetAttr(0, 0)
	tries := tryFIFO(testConfig(t))
	for _, tr := range tries {
		if tr.err != nil || tr.got != tr.prio {
			t.Errorf("%s: %+v", tr.role, tr)
		}
	}
	after, _ := unix.SchedGetAttr(0, 0)
	if before.Policy != after.Policy || before.Priority != after.Priority {
		t.Errorf("caller's policy changed: %+v -> %+v", before, after)
	}
}
