package supervisor

import (
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/understudy-rt/understudy/internal/rttest"
	"github.com/understudy-rt/understudy/runtime/chain"
	"github.com/understudy-rt/understudy/runtime/render"
	"github.com/understudy-rt/understudy/runtime/shm"
)

// rigChain is testLanes' chain: kernel 0 the lowpass, kernel 1 the gain.
const rigChain = "lowpass f=3000 q=0.7071 | gain db=-6"

// A gain and a lowpass cutoff automated about once a block while the
// lane's owners are SIGKILLed one after another: every spare resumes with
// the parameters of its commit point and re-applies the changes carried by
// the blocks it re-reads, so the output equals, bit for bit, an offline
// render of the same automation through a worker that never died. And the
// automation is audible: without it the output differs.
func TestAutomationSurvivesKillsBitExact(t *testing.T) {
	const blocks, kills, firstKill, every = 1000, 6, 150, 120
	underNoise(t, func(tr *trial) *rig {
		r := newRig(t, rigConfig{lanes: 1, spares: 1, blocks: blocks, rt: true, restartLimit: -1})
		p := rigParams(t, r)
		r.play()

		var wg sync.WaitGroup
		var autoErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				per := r.clk.Periods()
				if per >= blocks-40 || !r.clk.Running() {
					return
				}
				// A slow sweep of the cutoff, and a gain that jumps
				// (so that it ramps) between -20 and 0 dB.
				var err error
				if i%2 == 0 {
					_, err = p.Set(0, 0, "f", 500+4000*(0.5+0.5*math.Sin(float64(i)*0.05)))
				} else {
					_, err = p.Set(0, 1, "db", float64(-20+(i*7)%21))
				}
				if err != nil {
					autoErr = err
					return
				}
				for r.clk.Periods() == per && r.clk.Running() {
					time.Sleep(200 * time.Microsecond)
				}
			}
		}()

		ready := 1 // the first spare's
		for k := 0; k < kills; k++ {
			r.waitPeriods(uint64(firstKill + k*every))
			deadline := time.Now().Add(5 * time.Second)
			for r.count(EvSpareReady) < ready+1 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			inj, err := r.sup.InjectFault(0, FaultKill, 0)
			if err != nil {
				tr.errorf("kill %d: %v", k, err)
				break
			}
			tr.target(inj.PID)
			ready++
		}
		wg.Wait()
		r.finish(EvFailover, kills)
		if autoErr != nil {
			t.Fatal(autoErr)
		}
		log := p.Log(0)
		if n := r.count(EvFailover); n != kills {
			tr.errorf("%d failovers, want %d", n, kills)
		}
		if x := r.clk.Stats(0).Xruns; x != 0 {
			tr.errorf("%d xruns", x)
		}
		if len(log) < blocks/2 {
			tr.errorf("only %d changes made", len(log))
		}
		want := automatedReference(r, log)
		if n := mismatches(want, r.out[0]); n != 0 {
			tr.errorf("%d samples differ from the offline render of the same %d changes", n, len(log))
		}
		if n := mismatches(r.reference()[0], r.out[0]); n == 0 {
			tr.errorf("the output equals the unautomated one: the changes did nothing")
		}
		t.Logf("%d changes (%d late), %d failovers", len(log), r.clk.ParamsLate(0), r.count(EvFailover))
		return r
	})
}

// rigParams is live control of the rig's one lane.
func rigParams(t *testing.T, r *rig) *Params {
	st, err := chain.Parse(rigChain, testCatalog(t))
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.sup.Params(r.clk, [][]chain.Stage{st})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// automatedReference renders the rig's input with the changes through a
// fault-free worker.
func automatedReference(r *rig, log []shm.ParamChange) []float32 {
	r.t.Helper()
	sup, err := New(Config{Worker: testWorker(r.t), Lanes: testLanes(r.t, 1, r.frames, 48000), WorkerCPU: -1})
	if err != nil {
		r.t.Fatal(err)
	}
	defer sup.Close()
	if err := sup.Start(nil); err != nil {
		r.t.Fatal(err)
	}
	out, err := render.LaneAutomated(sup.Region().Lane(0), r.in[0], log, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

// What cannot change live is refused with one line naming it, and changes
// nothing: not the values in force, not the log.
func TestParamsRefuse(t *testing.T) {
	r := newRig(t, rigConfig{lanes: 1, spares: 0, blocks: 10})
	p := rigParams(t, r)
	for _, c := range []struct {
		lane, kernel int
		name         string
		value        float64
		want         string
	}{
		{1, 0, "f", 1000, "lane 1: there are lanes 0..0"},
		{0, 2, "db", 0, "kernel 2: its chain has kernels 0..1"},
		{0, 0, "sections", 2, "sections cannot change while the lane runs"},
		{0, 0, "x", 2, `lowpass has no parameter "x"`},
		{0, 1, "db", 30, "db=30 is out of range -120..24 dB"},
		{0, 1, "db", math.NaN(), "out of range"},
	} {
		_, err := p.Set(c.lane, c.kernel, c.name, c.value)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Set(%d, %d, %s=%g): %v, want one line with %q", c.lane, c.kernel, c.name, c.value, err, c.want)
		}
	}
	if l := p.Log(0); len(l) != 0 {
		t.Errorf("refused changes were logged: %v", l)
	}
	if v := p.Values(0, 1); len(v) != 1 || v[0] != -6 {
		t.Errorf("gain's values after refusals: %v, want [-6]", v)
	}
	// A chain that is not the lane's is refused.
	other, err := chain.Parse("lowpass f=2000 | gain db=-6", testCatalog(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.sup.Params(r.clk, [][]chain.Stage{other}); err == nil {
		t.Error("Params accepted a chain with other values than the lane's")
	}
}

// What a live change costs the worker: one block to a worker running a
// lowpass and back (spin path, as BenchmarkRingRoundTrip), with no change,
// and with a cutoff change in every block (the kernel's update designs the
// filter again).
func BenchmarkParamChangeRoundTrip(b *testing.B) {
	for _, every := range []bool{false, true} {
		name := map[bool]string{false: "none", true: "every-block"}[every]
		b.Run(name, func(b *testing.B) {
			st, err := chain.Parse("lowpass f=1000", testCatalog(b))
			if err != nil {
				b.Fatal(err)
			}
			lc, err := chain.LaneConfig(st, 1, 64, 48000, "auto")
			if err != nil {
				b.Fatal(err)
			}
			s, err := New(Config{Worker: testWorker(b), Lanes: []shm.LaneConfig{lc}, WorkerCPU: 1, SpinMicros: 200})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			if err := s.Start(nil); err != nil {
				b.Fatal(err)
			}
			rttest.PinToCPU0(b)
			var head func(*shm.Block, int)
			if every {
				head = func(blk *shm.Block, i int) {
					blk.SetChanges([]shm.ParamChange{{Kernel: 0, Param: 0, Value: float32(500 + i%1000)}})
				}
			}
			roundTrips(b, s.Region().Lane(0), 200*time.Microsecond, head)
		})
	}
}

// A parameter vector no host wrote (an owner's scribble: NaN for the gain)
// is not trusted by the next owner. The scribbling owner runs the gain on
// it and hangs (its dB-to-linear conversion loops 2^31 times on NaN) or
// outputs garbage, and is killed; its successor starts again from the
// host's values instead of dying on the same ones, so the lane goes on
// after one failover.
func TestScribbledParamsAreNotTrusted(t *testing.T) {
	underNoise(t, func(tr *trial) *rig {
		r := newRig(t, rigConfig{lanes: 1, spares: 1, blocks: 800, rt: true})
		r.play()
		r.waitPeriods(200)
		_, pid := r.sup.Owner(0)
		tr.target(pid)
		lane := r.sup.Region().Lane(0)
		for i := 0; i < 2; i++ {
			lane.ParamVector(i)[1*shm.MaxParams+0] = float32(math.NaN()) // kernel 1 (gain), db
		}
		r.finishFor(EvFailover, pid)
		if err := r.sup.LaneFailed(0); err != nil {
			tr.errorf("the lane was given up: %v", err)
		}
		fos := r.eventsOf(EvFailover)
		if len(fos) != 1 {
			tr.errorf("%d failovers, want 1", len(fos))
		}
		// The end of the run is the chain's own, finite output.
		for b := blocks(r) - 100; b < blocks(r); b++ {
			if r.flags[0][b]&shm.BlockBypassed != 0 {
				tr.errorf("block %d is the fallback", b)
				break
			}
		}
		for _, x := range r.out[0][(blocks(r)-100)*r.frames:] {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				tr.errorf("non-finite output at the end")
				break
			}
		}
		return r
	})
}

func blocks(r *rig) int { return len(r.flags[0]) }
