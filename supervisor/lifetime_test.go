package supervisor

import (
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/understudy-rt/understudy/runtime/audioclock"
	"github.com/understudy-rt/understudy/runtime/shm"
)

// session is what a Go user embeds: a supervisor and a clock over its lanes,
// with no test rig in between, so the stop paths exercised are the API's own.
type session struct {
	sup *Supervisor
	clk *audioclock.Clock
	fed atomic.Uint64
	got atomic.Uint64
}

func newSession(t testing.TB, spares int) *session {
	t.Helper()
	lanes := testLanes(t, 1, 64, 48000)
	sup, err := New(Config{Worker: testWorker(t), Lanes: lanes, Spares: spares, HangTimeout: 5 * time.Millisecond, WorkerCPU: -1})
	require.NoError(t, err)
	s := &session{sup: sup}
	clk, err := audioclock.New(audioclock.Config{Rate: 48000, Frames: 64, Latency: 2, Periods: 1 << 40, CPU: -1,
		Fallback: audioclock.Dry, Doorbell: sup.Doorbell(), Lanes: []*shm.Lane{sup.Region().Lane(0)},
		Feed: func(l int, n uint64, d []float32) (uint32, bool) {
			for i := range d {
				d[i] = float32(n%97) / 97
			}
			s.fed.Add(1)
			return 0, true
		},
		Drain: func(l int, n uint64, flags uint32, d []float32) {
			_ = d[len(d)-1] // touch the block: it must still be mapped
			s.got.Add(1)
		}})
	if err != nil {
		sup.Close()
		t.Fatal(err)
	}
	s.clk = clk
	return s
}

// The parts of a session that can be stopped, in the forms a user would.
var stopParts = []struct {
	name string
	do   func(s *session)
}{
	{"sup.Close", func(s *session) { s.sup.Close() }},
	{"clk.Free", func(s *session) { s.clk.Free() }},
	{"clk.Stop+Join", func(s *session) { s.clk.Stop(); s.clk.Join() }},
}

// orders lists every permutation of stopParts' indices.
func orders() [][]int {
	var out [][]int
	var perm func(p []int, used int)
	perm = func(p []int, used int) {
		if len(p) == len(stopParts) {
			out = append(out, append([]int(nil), p...))
			return
		}
		for i := range stopParts {
			if used&(1<<i) == 0 {
				perm(append(p, i), used|1<<i)
			}
		}
	}
	perm(nil, 0)
	return out
}

// Sessions closed at random moments (before anything starts, between the
// supervisor's and the clock's starts, while audio flows), in every order of
// their parts and all at once, with readers and fault injections racing the
// stops. Nothing may fault, hang or be left behind, and every stop is a no-op
// the second time. Before the lifetime rule, Free-then-Close faulted in the
// monitor (Clock.InWrite) and Close-then-Free in a feeder (Producer.Wait).
func TestCloseInAnyOrderStress(t *testing.T) {
	iterations := 240
	if testing.Short() {
		iterations = 42
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("UNDERSTUDY_STRESS_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (UNDERSTUDY_STRESS_SEED reruns it)", seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	perms := orders()
	before := snapshot(t)
	flowed := 0
	for i := 0; i < iterations; i++ {
		s := newSession(t, i%2)
		moment := rng.IntN(4) // 0: nothing started, 1: supervisor only, 2-3: audio flowing
		if moment >= 1 {
			require.NoError(t, s.sup.Start(s.clk), "iteration %d", i)
		}
		if moment >= 2 {
			if err := s.clk.Start(); err != nil && !isNoRT(err) {
				t.Fatalf("iteration %d: %v", i, err)
			}
			time.Sleep(time.Duration(rng.IntN(20000)) * time.Microsecond)
		}
		// Readers and an injector, as a status line and a fault injector
		// would, racing the stops below.
		done := make(chan struct{})
		var watchers sync.WaitGroup
		watchers.Add(2)
		go func() {
			defer watchers.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				s.clk.Periods()
				s.clk.Stats(0)
				s.clk.Lateness()
				s.clk.Running()
				s.sup.Owner(0)
				s.sup.Counts()
			}
		}()
		go func() {
			defer watchers.Done()
			for {
				select {
				case <-done:
					return
				case <-time.After(time.Millisecond):
				}
				s.sup.InjectFault(0, FaultKill, 0)
			}
		}()
		order := perms[i%len(perms)]
		concurrent := i%(len(perms)+1) == len(perms)
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			if concurrent {
				var wg sync.WaitGroup
				for _, p := range order {
					wg.Add(1)
					go func() { defer wg.Done(); stopParts[p].do(s) }()
				}
				wg.Wait()
				return
			}
			for _, p := range order {
				stopParts[p].do(s)
			}
		}()
		select {
		case <-stopped:
		case <-time.After(20 * time.Second):
			t.Fatalf("iteration %d: stopping in order %v (concurrent %v) hung", i, order, concurrent)
		}
		close(done)
		watchers.Wait()
		// Every stop again, in the same order: all no-ops.
		for _, p := range order {
			stopParts[p].do(s)
		}
		require.False(t, s.clk.Running(), "iteration %d: clock runs after its stops", i)
		require.Zero(t, s.clk.Periods(), "iteration %d: a freed clock reads zero", i)
		if s.got.Load() > 0 {
			flowed++
		}
		if snap := snapshot(t); snap.children != 0 {
			t.Fatalf("iteration %d (moment %d, order %s): %d worker processes left", i, moment, orderName(order, concurrent), snap.children)
		}
	}
	t.Logf("%d sessions, %d with audio drained before their stop", iterations, flowed)
	// Earlier tests' fds (a worker's output pipe, closed by its reader when
	// the last holder exits) may still be closing: fewer is fine, more is a
	// leak once they have settled.
	var after resources
	require.Eventually(t, func() bool { after = snapshot(t); return after.fds <= before.fds }, 5*time.Second, 10*time.Millisecond,
		"fds leaked over %d sessions: %d before, %d after", iterations, before.fds, after.fds)
	require.Zero(t, after.regions, "region mappings left")
	require.Positive(t, flowed, "no session ran audio: the stress test tested nothing")
}

func orderName(order []int, concurrent bool) string {
	s := ""
	for i, p := range order {
		if i > 0 {
			s += " → "
		}
		s += stopParts[p].name
	}
	if concurrent {
		s = "all at once: " + s
	}
	return s
}

// A clock freed under a running supervisor tells the monitor, which lets go
// of it and keeps supervising: a killed owner is still replaced (by pidfd;
// with no clock there are no deadlines to judge).
func TestFreeClockBeforeClose(t *testing.T) {
	s := newSession(t, 1)
	defer s.sup.Close()
	require.NoError(t, s.sup.Start(s.clk))
	if err := s.clk.Start(); err != nil && !isNoRT(err) {
		t.Fatal(err)
	}
	require.Eventually(t, func() bool { return s.got.Load() > 10 }, 5*time.Second, time.Millisecond)
	s.clk.Free()
	require.Nil(t, s.sup.mon.tl, "the monitor still holds the freed clock")
	inj, err := s.sup.InjectFault(0, FaultKill, 0)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		slot, pid := s.sup.Owner(0)
		return slot >= 0 && pid != inj.PID
	}, 5*time.Second, time.Millisecond, "no new owner after the clock was freed")
}

// Closing the supervisor first stops and joins the clock's thread, which
// reads the lanes and rings the doorbell: it must not run past Close.
func TestCloseStopsTheClock(t *testing.T) {
	s := newSession(t, 0)
	defer s.clk.Free()
	require.NoError(t, s.sup.Start(s.clk))
	if err := s.clk.Start(); err != nil && !isNoRT(err) {
		t.Fatal(err)
	}
	require.Eventually(t, func() bool { return s.got.Load() > 10 }, 5*time.Second, time.Millisecond)
	require.True(t, s.clk.Running())
	require.NoError(t, s.sup.Close())
	require.False(t, s.clk.Running(), "the clock still runs over a closed region")
	p := s.clk.Periods()
	time.Sleep(5 * s.clk.Period())
	require.Equal(t, p, s.clk.Periods(), "periods advanced after Close")
	require.Error(t, s.clk.Start(), "a clock whose region closed started again")
}
