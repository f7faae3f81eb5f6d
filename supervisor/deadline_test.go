package supervisor

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/understudy-rt/understudy/internal/rttest"
	"github.com/understudy-rt/understudy/runtime/audioclock"
	"github.com/understudy-rt/understudy/runtime/catalog"
	"github.com/understudy-rt/understudy/runtime/chain"
	"github.com/understudy-rt/understudy/runtime/shm"
)

// A kernel that needs 800 µs of a 1.33 ms period is slow, not hung: with a
// 500 µs hang timeout (which alone would kill it on every block) its lane's
// deadline comes from its measured block time, bounded by the headroom, and
// no owner is failed over; a hang on the same lane is still caught.
func TestSlowKernelIsNotAHang(t *testing.T) {
	worker := hostileWorker(t)
	cat, err := catalog.Load(worker)
	require.NoError(t, err)
	st, err := chain.Parse("hostile mode=18", cat)
	require.NoError(t, err)
	lc, err := chain.LaneConfig(st, 1, 64, 48000, "scalar")
	require.NoError(t, err)
	underNoise(t, func(tr *trial) *rig {
		const blocks, latency = 600, 10
		prios := [3]int{}
		if rtUsable(t) {
			prios = [3]int{80, 70, 60}
		}
		sup, err := New(Config{Worker: worker, Lanes: []shm.LaneConfig{lc}, Spares: 1, WorkerCPU: -1,
			HangTimeout: 500 * time.Microsecond, MonitorPrio: prios[0], WorkerPrio: prios[2]})
		require.NoError(t, err)
		r := &rig{t: t, sup: sup, nBlocks: blocks, frames: 64, latency: latency, evDone: make(chan struct{})}
		r.in = testSignal(1, blocks*64)
		clk, err := audioclock.New(audioclock.Config{Rate: 48000, Frames: 64, Latency: latency, Periods: blocks + latency,
			Prio: prios[1], CPU: -1, Fallback: audioclock.Dry, Doorbell: sup.Doorbell(),
			Lanes: []*shm.Lane{sup.Region().Lane(0)}, Feed: r.feed, Drain: r.drain})
		require.NoError(t, err)
		r.clk = clk
		go func() {
			defer close(r.evDone)
			for e := range sup.Events() {
				r.evMu.Lock()
				r.events = append(r.events, e)
				r.evMu.Unlock()
			}
		}()
		require.NoError(t, sup.Start(clk))
		r.play()
		r.waitPeriods(300)
		d, bound := sup.Deadline(0)
		if bound == BoundFloor {
			tr.errorf("deadline %v set by the hang timeout: the measured block time was not used", time.Duration(d))
		}
		// Now a real hang on the same lane: caught, within the headroom.
		inj, err := sup.InjectFault(0, FaultHang, clk.Periods()+5)
		require.NoError(t, err)
		tr.target(inj.PID)
		r.finish(EvFailover, 1)
		fos := r.eventsOf(EvFailover)
		if len(fos) != 1 || fos[0].PID != inj.PID || fos[0].Path != PathDeadline {
			tr.errorf("%d failovers (want exactly the hang's, by its deadline): %v", len(fos), fos)
		}
		t.Logf("deadline %v (%v), overruns %d", time.Duration(d), bound, sup.Overruns())
		return r
	})
}

// rtUsable is whether this run may use real-time priorities (see rttest.UseRT).
func rtUsable(t *testing.T) bool {
	t.Helper()
	return rttest.UseRT(t)
}
