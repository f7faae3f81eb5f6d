package jack_test

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/understudy-rt/understudy/engine"
	"github.com/understudy-rt/understudy/internal/jacktest"
	"github.com/understudy-rt/understudy/internal/rttest"
	"github.com/understudy-rt/understudy/internal/workerbin"
	"github.com/understudy-rt/understudy/runtime/audioclock"
	"github.com/understudy-rt/understudy/runtime/jack"
	"github.com/understudy-rt/understudy/supervisor"
)

// live is an engine session whose clock JACK drives, and the events it saw.
type live struct {
	s      *engine.Session
	sup    *supervisor.Supervisor
	clk    *audioclock.Clock
	cli    *jack.Client
	mu     sync.Mutex
	events []supervisor.Event
}

type liveConfig struct {
	lanes       []engine.Lane
	spares      int
	latency     int
	fallback    audioclock.Fallback
	connectIn   []string
	connectOut  []string
	hangTimeout time.Duration
	clientName  string
	server      string
	// serverPriority was the server's client priority; the engine now
	// reads the callback thread's from the client and sets the workers
	// below it, the monitor above. Kept so callers still compile.
	serverPriority int
}

func startLive(t testing.TB, c liveConfig) *live {
	t.Helper()
	w, err := workerbin.Path()
	if err != nil {
		t.Fatal(err)
	}
	if c.hangTimeout == 0 {
		c.hangTimeout = 2 * time.Millisecond
	}
	out := engine.Output{Fallback: "dry", CeilingDB: 24, Declick: 32}
	if c.fallback == audioclock.Silence {
		out.Fallback = "silence"
	}
	l := &live{}
	l.s, err = engine.New(engine.Config{Backend: engine.JACK, Worker: w, Lanes: c.lanes, Block: period,
		Latency: c.latency, Spares: c.spares, HangTimeout: c.hangTimeout, Output: &out,
		JACK: engine.JACKConfig{Name: c.clientName, Server: c.server, ConnectIn: c.connectIn, ConnectOut: c.connectOut},
		OnEvent: func(e supervisor.Event) {
			l.mu.Lock()
			l.events = append(l.events, e)
			l.mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.s.Start(); err != nil {
		l.close()
		t.Fatal(err)
	}
	l.sup, l.clk, l.cli = l.s.Supervisor(), l.s.Clock(), l.s.JACK()
	return l
}

func (l *live) close() { l.s.Close() }

func (l *live) count(k supervisor.EventKind) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// disturbance names what the machine did that makes a live run's output
// prove nothing (a cycle the client or the recorder missed, an xrun), or "".
func disturbance(cs jack.Stats, lanes []audioclock.LaneStats, rec *jacktest.Recording) string {
	var why []string
	if cs.Discontinuities > 0 {
		why = append(why, fmt.Sprintf("understudy missed %d JACK cycles", cs.Discontinuities))
	}
	if cs.ServerXruns > 0 {
		why = append(why, fmt.Sprintf("the server reported %d xruns", cs.ServerXruns))
	}
	if rec != nil && rec.Gaps > 0 {
		why = append(why, fmt.Sprintf("the recorder missed %d cycles", rec.Gaps))
	}
	for i, ls := range lanes {
		if x := ls.Xruns; x > 0 {
			why = append(why, fmt.Sprintf("lane %d: %d blocks late (xruns)", i, x))
		}
	}
	return strings.Join(why, ", ")
}

// liveAttempts bounds the reruns of a live test that the machine disturbed.
const liveAttempts = 5

// rerunIfDisturbed runs attempt under the suite's one rerun policy
// (rttest.UnderNoise): rerun only when the problems coincide with the
// machine's disturbance, fail otherwise.
func rerunIfDisturbed(t *testing.T, attempt func(n int) (problems []string, disturbed string)) {
	t.Helper()
	rttest.UnderNoise(t, liveAttempts, func(n int) rttest.Attempt {
		problems, why := attempt(n)
		a := rttest.Attempt{Problems: problems}
		if why != "" {
			a.Disturbed = []string{why}
		}
		return a
	})
}

// frameDiff is b - a on JACK's wrapping 32-bit frame clock.
func frameDiff(a, b uint32) int64 { return int64(int32(b - a)) }

// streamPos maps the frame time a recorder heard sample i at to the stream
// position understudy played then, through both clients' gaps (a loaded
// machine makes the dummy server skip cycles). ok is false where there is
// nothing to compare: a cycle understudy missed, before block 0 came
// through, or past the gaps it kept count of.
func streamPos(st jack.Stats, got *jacktest.Recording, i, latencyFrames int) (uint64, bool) {
	t, ok := got.FrameAt(i)
	if !ok {
		return 0, false
	}
	if !st.Complete() && frameDiff(st.Gaps[len(st.Gaps)-1].Frame, t) >= 0 {
		return 0, false
	}
	return st.OutputPos(t, latencyFrames)
}

// TestPassThroughBitExact: a player's known signal goes through a lane
// (gain 0 dB, 2 channels) and back to a recorder; every sample the recorder
// heard is the one the player played latency×block frames earlier.
func TestPassThroughBitExact(t *testing.T) {
	srv := jacktest.StartServer(t, rate, period)
	prio, err := jacktest.ClientPriority(srv.Name)
	if err != nil {
		t.Fatal(err)
	}
	const channels, latency, seconds = 2, 4, 2
	rerunIfDisturbed(t, func(n int) ([]string, string) {
		playName, recName := jacktest.UniqueName("play"), jacktest.UniqueName("rec")
		play, err := jacktest.NewPlayer(srv.Name, playName, channels)
		if err != nil {
			t.Fatal(err)
		}
		defer play.Close()
		rec, err := jacktest.NewRecorder(srv.Name, recName, channels, rate*(seconds+2))
		if err != nil {
			t.Fatal(err)
		}
		defer rec.Close()
		name := jacktest.UniqueName("us")
		l := startLive(t, liveConfig{
			lanes: []engine.Lane{{Chain: "gain db=0", Channels: channels}}, latency: latency,
			fallback:   audioclock.Silence, // an xrun must show as a wrong sample
			connectIn:  []string{"^" + playName + ":out_"},
			connectOut: []string{"^" + recName + ":in_"},
			clientName: name, server: srv.Name, serverPriority: prio,
		})
		defer l.close()
		// The ports' latency ranges carry ours.
		var problems []string
		if l.cli.ReportsLatency() {
			lo, hi, err := rec.PortLatency(l.cli.Port(true, 0, 0), false)
			if err != nil || lo != uint32(latency*period) || hi != lo {
				problems = append(problems, fmt.Sprintf("capture latency of our output [%d %d] (%v), want %d", lo, hi, err, latency*period))
			}
		}
		waitFor(time.Duration(seconds+5)*time.Second, func() bool { return rec.Frames() >= seconds*rate })
		// Counters first, then the recorder, then us: a client leaving the
		// graph may cost the server a cycle, which is no fault of the run.
		st, ls := l.cli.Stats(), []audioclock.LaneStats{l.clk.Stats(0)}
		got := rec.Close()
		l.cli.Close()
		if !st.Started || len(got.Data[0]) < seconds*rate {
			t.Fatalf("ran %+v, recorded %d frames", st, len(got.Data[0]))
		}
		matched, leading := 0, 0
		for ch := 0; ch < channels; ch++ {
			started := false
			for i, v := range got.Data[ch] {
				p, ok := streamPos(st, got, i, latency*period)
				if !ok {
					continue
				}
				if v == 0 && !started {
					// Before auto-connection understudy heard silence.
					if ch == 0 {
						leading++
					}
					continue
				}
				started = true
				want := jacktest.Signal(ch, st.InputFrame(p))
				if math.Float32bits(v) != math.Float32bits(want) {
					problems = append(problems, fmt.Sprintf("ch %d frame %d (stream position %d): got %g want %g", ch, i, p, v, want))
					break
				}
				if ch == 0 {
					matched++
				}
			}
		}
		t.Logf("attempt %d: %d of %d frames compared bit-exact per channel after %d of silence before the connection; latency %d frames; callback max %v",
			n, matched, len(got.Data[0]), leading, latency*period, st.CallbackMax)
		if matched < rate {
			problems = append(problems, fmt.Sprintf("only %d frames compared", matched))
		}
		why := disturbance(st, ls, got)
		if pl := play.Close(); pl.Gaps != st.Discontinuities {
			why += fmt.Sprintf(", the player missed %d runs of cycles, understudy %d", pl.Gaps, st.Discontinuities)
		}
		return problems, why
	})
}

// offline renders a lane's chain with no clock and no JACK: the reference.
func offline(t testing.TB, lane engine.Lane, in []float32) []float32 {
	t.Helper()
	w, err := workerbin.Path()
	if err != nil {
		t.Fatal(err)
	}
	s, err := engine.New(engine.Config{Backend: engine.Offline, Worker: w, Lanes: []engine.Lane{lane}, Rate: rate, Block: period})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Render(0, in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGeneratorLiveBitExactThroughFailovers: a lane whose chain starts with
// a generator runs live, driven by JACK's callback, while its worker is
// SIGKILLed and then crashes (SIGSEGV); what a recorder hears from
// understudy's output port is, sample for sample, the offline render of the
// same chain, shifted by the latency understudy reports.
func TestGeneratorLiveBitExactThroughFailovers(t *testing.T) {
	srv := jacktest.StartServer(t, rate, period)
	prio, err := jacktest.ClientPriority(srv.Name)
	if err != nil {
		t.Fatal(err)
	}
	const latency, seconds = 8, 3
	lc := engine.Lane{Chain: "sine f=997 db=-6 | lowpass f=3000", Channels: 1}
	ref := offline(t, lc, make([]float32, (seconds+3)*rate))
	rerunIfDisturbed(t, func(n int) ([]string, string) {
		recName := jacktest.UniqueName("rec")
		rec, err := jacktest.NewRecorder(srv.Name, recName, 1, rate*(seconds+2))
		if err != nil {
			t.Fatal(err)
		}
		defer rec.Close()
		l := startLive(t, liveConfig{
			lanes: []engine.Lane{lc}, spares: 1, latency: latency, fallback: audioclock.Silence,
			connectOut: []string{"^" + recName + ":in_"},
			clientName: jacktest.UniqueName("us"), server: srv.Name, serverPriority: prio,
		})
		defer l.close()
		var problems []string
		var lastFault uint64
		for i, f := range []supervisor.Fault{supervisor.FaultKill, supervisor.FaultSegv} {
			waitFor(time.Duration(i+1)*time.Second, func() bool { return rec.Frames() >= (i+1)*rate*seconds/3 })
			lastFault = l.clk.Periods() + 2
			if _, err := l.sup.InjectFault(0, f, lastFault); err != nil {
				problems = append(problems, fmt.Sprintf("inject %v: %v", f, err))
			}
			// The failover and the new spare, before the next fault.
			waitFor(3*time.Second, func() bool { return l.count(supervisor.EvFailover) > i && l.count(supervisor.EvSpareReady) > i+2 })
		}
		waitFor(time.Duration(seconds+5)*time.Second, func() bool { return rec.Frames() >= seconds*rate })
		st, ls := l.cli.Stats(), []audioclock.LaneStats{l.clk.Stats(0)}
		got := rec.Close()
		l.cli.Close()
		if fo := l.count(supervisor.EvFailover); fo != 2 {
			problems = append(problems, fmt.Sprintf("%d failovers, want 2", fo))
		}
		if !st.Started || len(got.Data[0]) < seconds*rate {
			t.Fatalf("ran %+v, recorded %d frames", st, len(got.Data[0]))
		}
		matched, leading, reached := 0, 0, uint64(0)
		for i, v := range got.Data[0] {
			p, ok := streamPos(st, got, i, latency*period)
			if !ok {
				continue
			}
			if matched == 0 && v == 0 {
				// Before the connection was made: silence.
				leading++
				continue
			}
			if p >= uint64(len(ref)) {
				break
			}
			if math.Float32bits(v) != math.Float32bits(ref[p]) {
				problems = append(problems, fmt.Sprintf("frame %d (stream position %d): got %g, offline %g", i, p, v, ref[p]))
				break
			}
			matched++
			reached = p
		}
		t.Logf("attempt %d: %d of %d frames compared bit-exact with the offline render after %d of silence; %d failovers; callback max %v",
			n, matched, len(got.Data[0]), leading, l.count(supervisor.EvFailover), st.CallbackMax)
		// The comparison must reach well past the last failover.
		if reached < (lastFault+latency)*period+rate/10 {
			problems = append(problems, fmt.Sprintf("the comparison reached stream position %d, the last fault was at block %d", reached, lastFault))
		}
		return problems, disturbance(st, ls, got)
	})
}
