package supervisor

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/understudy-rt/understudy/runtime/catalog"
	"github.com/understudy-rt/understudy/runtime/chain"
	"github.com/understudy-rt/understudy/runtime/render"
	"github.com/understudy-rt/understudy/runtime/shm"
)

// A block that kills its owner without a last gasp (an _exit, a crash with
// every signal blocked) is poison like one that crashes loudly: after two
// owners die on it, it is bypassed and the lane goes on; the neighbour lane
// is untouched.
func TestPoisonWithoutLastGasp(t *testing.T) {
	worker := hostileWorker(t)
	for _, m := range []struct {
		name string
		mode int
	}{{"exit", modeExit}, {"segv-with-signals-blocked", modeSegvMasked}} {
		t.Run(m.name, func(t *testing.T) {
			r := runHostile(t, worker, m.mode, 2, Config{})
			require.NoError(t, r.renderErr, "the attacked lane did not finish")
			var deaths, poisoned int
			for _, e := range r.events {
				if e.Kind == EvFailover && e.Lane == 0 {
					deaths++
					require.NotEqual(t, PathLastGasp, e.Path, "no gasp was possible, yet one was seen")
					if e.Poisoned {
						poisoned++
					}
				}
			}
			require.Equal(t, 2, deaths, "owners lost on the poison block: %v", r.events)
			require.Equal(t, 1, poisoned, "the block was not bypassed after two deaths")
			require.Zero(t, sameBits(r.out[0], r.in[0]), "the identity kernel's lane is not its input")
			require.Zero(t, sameBits(r.out[1], cleanReference(t, r.in[1])), "the neighbour lane changed")
		})
	}
}

// A kernel that dies on every block does not make the supervisor spawn
// workers as fast as it can: from the third death in a row each hand-over
// waits at least twice as long as the last, and past the limit the lane is
// given up with one message naming it, its kernel and why, and no worker
// dies for it after that.
func TestRestartStormBacksOffAndGivesUp(t *testing.T) {
	worker := hostileWorker(t)
	cat, err := catalog.Load(worker)
	require.NoError(t, err)
	st, err := chain.Parse("hostile mode=15", cat)
	require.NoError(t, err)
	lc, err := chain.LaneConfig(st, 1, 64, 48000, "scalar")
	require.NoError(t, err)
	// Enough spares that one is always warm: any wait before a hand-over is
	// the policy's, not a spawn's.
	const limit = 6
	sup, err := New(Config{Worker: worker, Lanes: []shm.LaneConfig{lc}, Spares: 4, WorkerCPU: -1, RestartLimit: limit})
	require.NoError(t, err)
	defer sup.Close()
	var mu sync.Mutex
	var events []Event
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range sup.Events() {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}
	}()
	require.NoError(t, sup.Start(nil))
	rendered := make(chan error, 1)
	go func() {
		_, err := render.Lane(sup.Region().Lane(0), testSignal(1, 64*64)[0], time.Second)
		rendered <- err
	}()
	of := func(k EventKind) []Event {
		mu.Lock()
		defer mu.Unlock()
		var out []Event
		for _, e := range events {
			if e.Kind == k {
				out = append(out, e)
			}
		}
		return out
	}
	if !assertEventually(func() bool { return len(of(EvLaneFailed)) == 1 }, 20*time.Second) {
		mu.Lock()
		for _, e := range events {
			t.Logf("%v lane %d slot %d pid %d path %v block %d", e.Kind, e.Lane, e.Slot, e.PID, e.Path, e.Block)
		}
		mu.Unlock()
		t.Fatal("the lane was never given up")
	}
	require.ErrorIs(t, <-rendered, render.ErrStalled, "a given-up lane renders nothing more")
	failed := of(EvLaneFailed)[0]
	require.True(t, errors.Is(sup.LaneFailed(0), ErrLaneFailed))
	msg := failed.Err.Error()
	for _, want := range []string{"lane 0", "hostile", "7 owners died in a row", "fallback"} {
		require.True(t, strings.Contains(msg, want), "message %q lacks %q", msg, want)
	}
	// The deaths that were handed over: the first two at once, then each
	// waits at least 1 ms, 2 ms, ... (the monitor's own arithmetic: a lower
	// bound no machine's delay can break).
	fos := of(EvFailover)
	require.Len(t, fos, limit, "hand-overs before the lane was given up")
	for k, e := range fos {
		if k >= 2 {
			want := restartBackoff << (k - 2)
			require.GreaterOrEqual(t, time.Duration(e.AttachNS-e.DetectNS), want,
				"hand-over %d came %v after its detection, before its backoff", k+1, time.Duration(e.AttachNS-e.DetectNS))
		}
	}
	// No worker dies for the lane any more: the storm has stopped.
	exited := len(of(EvWorkerExited))
	time.Sleep(200 * time.Millisecond)
	require.Equal(t, exited, len(of(EvWorkerExited)), "workers kept dying after the lane was given up")
	sup.Close()
	<-done
}

func assertEventually(cond func() bool, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}
