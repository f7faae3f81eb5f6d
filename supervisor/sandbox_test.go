package supervisor

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/internal/rttest"
	"github.com/understudy-rt/understudy/internal/workerbin"
	"github.com/understudy-rt/understudy/runtime/catalog"
	"github.com/understudy-rt/understudy/runtime/chain"
	"github.com/understudy-rt/understudy/runtime/render"
	"github.com/understudy-rt/understudy/runtime/shm"
)

// The hostile kernel's modes (examples/hostile/hostile.c) and trigger.
const (
	hostileTrigger = float32(12.345)
	hostileMark    = float32(4.321) // what modeThread's thread writes into sample 1 of the block
	modeFork       = 1
	modeForkCrash  = 2
	modeSocket     = 3
	modeOpen       = 4
	modeExecve     = 5
	modeKillHost   = 6
	modePtrace     = 7
	modeSched      = 8
	modePdeathsig  = 9
	modeMlock      = 10
	modeHostMem    = 11
	modeThread     = 12
	modeExit       = 13 // _exit on the trigger block
	modeSegvMasked = 14 // crash on it with every signal blocked
	modeExitAlways = 15 // _exit on every block
	modeNaNState   = 16 // poison the state on the trigger: NaN from then on
	modeLoud       = 17 // +80 dB on the trigger block
	modeSlow       = 18 // 800 µs a block: slow, not hung
	// write 1e8 over every host-written field of its own lane (header,
	// owner epoch and slot, bypass block) and carry on; then the same and crash
	modeLaneScribble      = 19
	modeLaneScribbleCrash = 20
	modePunch             = 21 // MADV_REMOVE on its own block's page
	modeDup2              = 22 // dup2 stdout over stderr
	modeFallocate         = 23 // fallocate(PUNCH_HOLE) on fd 3
	modePrintCrash        = 24 // print a line to stderr on the trigger block, then crash
	modeThreadLeft        = 25 // start a sleeping thread, then end the worker's own thread alone
)

// hostileWorker builds the hostile kernel into a worker through the SDK,
// under a name of this run's own so that leftover processes can be told
// from anyone else's.
func hostileWorker(t *testing.T) string {
	out := filepath.Join(t.TempDir(), fmt.Sprintf("hstl%d", os.Getpid()))
	if err := workerbin.BuildUser("examples/hostile/hostile.c", out); err != nil {
		t.Fatal(err)
	}
	return out
}

// runProcs lists live processes whose command name is comm: what is left of
// a run whose workers all carry that name.
func runProcs(comm string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err == nil && strings.TrimSpace(string(b)) == comm {
			pids = append(pids, pid)
		}
	}
	return pids
}

// leftovers waits up to 2 s for every process named comm to be gone.
func leftovers(comm string) []int {
	deadline := time.Now().Add(2 * time.Second)
	for {
		p := runProcs(comm)
		if len(p) == 0 || time.Now().After(deadline) {
			return p
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const hostileBlock = 7 // the block that triggers the attack

type hostileRun struct {
	in, out   [][]float32
	events    []Event
	renderErr error
}

// runHostile renders two lanes offline under supervision: lane 0 through
// the hostile kernel in the given mode, with the trigger in one block, and
// lane 1 through an ordinary chain, which the attack must not touch. It
// waits (boundedly) for wantDeaths failovers and SIGSYS deaths to be
// reported, or, when done is not nil, until done says so.
func runHostile(t *testing.T, worker string, mode int, wantDeaths int, cfg Config, done ...func(*hostileRun) bool) *hostileRun {
	t.Helper()
	cat, err := catalog.Load(worker)
	if err != nil {
		t.Fatal(err)
	}
	const frames, blocks = 64, 40
	laneCfg := func(c string) shm.LaneConfig {
		st, err := chain.Parse(c, cat)
		if err != nil {
			t.Fatal(err)
		}
		lc, err := chain.LaneConfig(st, 1, frames, 48000, "scalar")
		if err != nil {
			t.Fatal(err)
		}
		return lc
	}
	cfg.Worker = worker
	cfg.Lanes = []shm.LaneConfig{laneCfg(fmt.Sprintf("hostile mode=%d", mode)), laneCfg("lowpass f=3000 q=0.7071 | gain db=-6")}
	cfg.Spares = 2
	cfg.WorkerCPU = -1
	sup, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	r := &hostileRun{in: testSignal(2, blocks*frames)}
	r.in[0][hostileBlock*frames] = hostileTrigger
	var evMu sync.Mutex
	evDone := make(chan struct{})
	go func() {
		defer close(evDone)
		for e := range sup.Events() {
			evMu.Lock()
			r.events = append(r.events, e)
			evMu.Unlock()
		}
	}()
	if err := sup.Start(nil); err != nil {
		t.Fatal(err)
	}
	r.out = make([][]float32, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for l := range r.in {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.out[l], errs[l] = render.Lane(sup.Region().Lane(l), r.in[l], 5*time.Second)
		}()
	}
	wg.Wait()
	r.renderErr = errs[0]
	if errs[1] != nil {
		t.Errorf("the attacked lane's neighbour failed: %v", errs[1])
	}
	// A failover is reported once its new owner committed, a death once it
	// is reaped: let both come in before Close stops the reports.
	if wantDeaths > 0 || len(done) > 0 {
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			evMu.Lock()
			var ok bool
			if len(done) > 0 {
				ok = done[0](r)
			} else {
				ok = r.count(EvFailover, PathNone) >= wantDeaths && r.count(EvWorkerExited, PathNone) >= wantDeaths
			}
			evMu.Unlock()
			if ok {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	sup.Close()
	<-evDone
	return r
}

func (r *hostileRun) count(k EventKind, p Path) int {
	n := 0
	for _, e := range r.events {
		if e.Kind == k && (p == PathNone || e.Path == p) {
			n++
		}
	}
	return n
}

func (r *hostileRun) sigsys() int {
	n := 0
	for _, e := range r.events {
		if e.Kind == EvWorkerExited && e.ExitSignal == int(unix.SIGSYS) {
			n++
		}
	}
	return n
}

func sameBits(a, b []float32) int {
	n := 0
	for i := range a {
		if i >= len(b) || math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			n++
		}
	}
	return n
}

// cleanReference renders lane 1's chain through the stock worker.
func cleanReference(t *testing.T, in []float32) []float32 {
	t.Helper()
	sup, err := New(Config{Worker: testWorker(t), Lanes: testLanes(t, 1, 64, 48000), WorkerCPU: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	if err := sup.Start(nil); err != nil {
		t.Fatal(err)
	}
	out, err := render.Lane(sup.Region().Lane(0), in, 0)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A kernel that attacks its worker harms nothing but its own lane: the
// denied call kills the worker with SIGSYS, the monitor reports the path
// `sandbox`, the lane fails over (the block is bypassed once two owners died
// on it), the other lane is bit-exact, and nothing the kernel started
// survives. Creating a thread is allowed and works.
func TestSandboxHostileKernel(t *testing.T) {
	worker := hostileWorker(t)
	comm := filepath.Base(worker)
	modes := []struct {
		name string
		mode int
		dies bool
	}{
		{"fork", modeFork, true},
		{"fork-then-crash", modeForkCrash, true},
		{"socket", modeSocket, true},
		{"open", modeOpen, true},
		{"execve", modeExecve, true},
		{"kill-host", modeKillHost, true},
		{"ptrace-host", modePtrace, true},
		{"sched-fifo-99", modeSched, true},
		{"clear-pdeathsig", modePdeathsig, true},
		{"mlock-2GiB", modeMlock, true},
		{"host-mem", modeHostMem, true},
		{"punch-hole", modePunch, true},
		{"dup2", modeDup2, true},
		{"fallocate", modeFallocate, true},
		{"pthread", modeThread, false},
	}
	var ref []float32
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			// Two owners die on the trigger block; the third is fed it
			// bypassed (poison).
			deaths := 0
			if m.dies {
				deaths = 2
			}
			r := runHostile(t, worker, m.mode, deaths, Config{Unsandboxed: os.Getenv("HOSTILE_UNSANDBOXED") == "1"})
			if ref == nil {
				ref = cleanReference(t, r.in[1])
			}
			if r.renderErr != nil {
				t.Errorf("attacked lane did not finish: %v", r.renderErr)
			}
			// Identity kernel, dry bypass: the attacked lane's output is its
			// input whatever happened, but for the thread's mark.
			want := append([]float32(nil), r.in[0]...)
			if m.mode == modeThread {
				want[hostileBlock*64+1] = hostileMark
			}
			if n := sameBits(want, r.out[0]); n != 0 {
				t.Errorf("attacked lane: %d samples differ from what it should output", n)
			}
			if n := sameBits(ref, r.out[1]); n != 0 {
				t.Errorf("the other lane: %d samples differ from a clean run", n)
			}
			sandboxed, sys := r.count(EvFailover, PathSandbox), r.sigsys()
			if m.dies {
				if sandboxed != 2 || sys != 2 {
					t.Errorf("%d failovers by path sandbox, %d workers killed by SIGSYS; want 2 each (the block is bypassed after two deaths)", sandboxed, sys)
				}
				if other := r.count(EvFailover, PathNone) - sandboxed; other != 0 {
					t.Errorf("%d failovers by another path than sandbox", other)
				}
			} else if n := r.count(EvFailover, PathNone); n != 0 || sys != 0 {
				t.Errorf("an allowed attack cost %d failovers, %d SIGSYS deaths; want none", n, sys)
			}
			if left := leftovers(comm); len(left) != 0 {
				t.Errorf("processes of the run left after Close: %v", left)
				for _, p := range left {
					unix.Kill(p, unix.SIGKILL)
				}
			}
			if t.Failed() {
				for _, e := range r.events {
					t.Logf("event %v lane %d pid %d path %v exit %d/%d err %v", e.Kind, e.Lane, e.PID, e.Path, e.ExitCode, e.ExitSignal, e.Err)
				}
			}
		})
	}
}

// procStatus reads the named fields of /proc/<pid>/status.
func procStatus(t *testing.T, pid int, fields ...string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for _, f := range fields {
			if k == f {
				m[k] = strings.Join(strings.Fields(v), " ")
			}
		}
	}
	return m
}

func startedSupervisor(t *testing.T, cfg Config) *Supervisor {
	t.Helper()
	cfg.Worker = testWorker(t)
	cfg.Lanes = testLanes(t, 1, 64, 48000)
	cfg.WorkerCPU = -1
	sup, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sup.Close() })
	if err := sup.Start(nil); err != nil {
		t.Fatal(err)
	}
	return sup
}

// As root, a worker runs as nobody with no capability at all, no way to
// regain one, its filter on, and the SCHED_FIFO priority the host gave it
// from outside.
func TestSandboxWorkerPrivileges(t *testing.T) {
	if os.Geteuid() != 0 {
		rttest.SkipOrFail(t, "needs root to give workers another uid")
	}
	rttest.RequireRT(t)
	const prio = 7
	sup := startedSupervisor(t, Config{WorkerPrio: prio})
	if w := sup.WorkerRTWarning(); w != nil {
		t.Fatalf("host could not place its worker: %v", w)
	}
	_, pid := sup.Owner(0)
	st := procStatus(t, pid, "Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
	want := map[string]string{
		"Uid": "65534 65534 65534 65534", "Gid": "65534 65534 65534 65534", "Groups": "",
		"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
		"CapBnd": "0000000000000000", "CapAmb": "0000000000000000",
		"NoNewPrivs": "1", "Seccomp": "2",
	}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("worker %d %s: %q, want %q", pid, k, st[k], v)
		}
	}
	attr, err := unix.SchedGetAttr(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	if attr.Policy != unix.SCHED_FIFO || attr.Priority != prio {
		t.Errorf("worker %d: policy %d priority %d, want SCHED_FIFO(%d) %d", pid, attr.Policy, attr.Priority, unix.SCHED_FIFO, prio)
	}
}

// --unsandboxed is what it says: the worker keeps the host's uid and runs
// without a filter.
func TestSandboxOff(t *testing.T) {
	sup := startedSupervisor(t, Config{Unsandboxed: true})
	if sup.SandboxWarning() == nil {
		t.Error("no warning for an unsandboxed supervisor")
	}
	_, pid := sup.Owner(0)
	st := procStatus(t, pid, "Uid", "Seccomp", "NoNewPrivs")
	if st["Seccomp"] != "0" || st["NoNewPrivs"] != "0" {
		t.Errorf("unsandboxed worker: Seccomp %s NoNewPrivs %s, want 0 0", st["Seccomp"], st["NoNewPrivs"])
	}
	if uid := strconv.Itoa(os.Geteuid()); !strings.HasPrefix(st["Uid"], uid+" ") {
		t.Errorf("unsandboxed worker uid %q, want the host's %s", st["Uid"], uid)
	}
}

// A kernel that writes over everything of its own lane that the host
// writes (what used to be `lane.channels = 1e8`, which killed the host)
// harms nothing: the host reads none of it back, its configuration is its
// own, and the next owner of the lane finds a lane it accepts (the monitor
// restores the header before every attach). The other lane is bit-exact.
func TestHostileLaneScribble(t *testing.T) {
	worker := hostileWorker(t)
	comm := filepath.Base(worker)
	var ref []float32
	for _, m := range []struct {
		name   string
		mode   int
		deaths int
	}{
		{"carry-on", modeLaneScribble, 0},
		{"then-crash", modeLaneScribbleCrash, 2},
	} {
		t.Run(m.name, func(t *testing.T) {
			gasps := func(r *hostileRun) int { return r.count(EvFailover, PathLastGasp) }
			r := runHostile(t, worker, m.mode, 0, Config{}, func(r *hostileRun) bool { return gasps(r) >= m.deaths })
			if ref == nil {
				ref = cleanReference(t, r.in[1])
			}
			if r.renderErr != nil {
				t.Errorf("attacked lane did not finish: %v", r.renderErr)
			}
			// Identity kernel, dry bypass after two deaths on the block.
			if n := sameBits(r.in[0], r.out[0]); n != 0 {
				t.Errorf("attacked lane: %d samples differ from its input", n)
			}
			if n := sameBits(ref, r.out[1]); n != 0 {
				t.Errorf("the other lane: %d samples differ from a clean run", n)
			}
			if got := gasps(r); got != m.deaths {
				t.Errorf("%d failovers by last gasp, want %d", got, m.deaths)
			}
			if other := r.count(EvFailover, PathNone) - gasps(r); other != 0 {
				t.Errorf("%d failovers by another path", other)
			}
			for _, e := range r.events {
				if e.Kind == EvSpawnFailed {
					t.Errorf("a spare failed: %v", e.Err)
				}
			}
			if left := leftovers(comm); len(left) != 0 {
				t.Errorf("processes of the run left after Close: %v", left)
				for _, p := range left {
					unix.Kill(p, unix.SIGKILL)
				}
			}
			if t.Failed() {
				for _, e := range r.events {
					t.Logf("event %v lane %d pid %d path %v exit %d/%d err %v", e.Kind, e.Lane, e.PID, e.Path, e.ExitCode, e.ExitSignal, e.Err)
				}
			}
		})
	}
}
