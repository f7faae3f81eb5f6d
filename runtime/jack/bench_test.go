package jack_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/understudy-rt/understudy/engine"
	"github.com/understudy-rt/understudy/internal/jacktest"
	"github.com/understudy-rt/understudy/runtime/audioclock"
	"github.com/understudy-rt/understudy/supervisor"
)

// BenchmarkLiveTwoLanes runs 2 stereo lanes (and 1 spare) live under
// `jackd -d dummy -r 48000 -p 64`, fed by a player, for
// UNDERSTUDY_JACK_SECONDS (default 60), SIGKILLing a lane's worker every
// UNDERSTUDY_JACK_FAULT_EVERY (default none, e.g. 250ms), and reports the
// callback's own time per period (its C histogram: p50, p99, max) against
// the period, and JACK's DSP load sampled once a second. UNDERSTUDY_JACK_LOG
// names a file for the server's log. One run whatever
// b.N: run it with -benchtime 1x.
//
//	UNDERSTUDY_WORKER=$PWD/bin/understudy-worker go test -run '^$' -bench LiveTwoLanes -benchtime 1x ./runtime/jack/
func BenchmarkLiveTwoLanes(b *testing.B) {
	seconds := 60
	if s, err := strconv.Atoi(os.Getenv("UNDERSTUDY_JACK_SECONDS")); err == nil && s > 0 {
		seconds = s
	}
	var faultEvery time.Duration
	if d, err := time.ParseDuration(os.Getenv("UNDERSTUDY_JACK_FAULT_EVERY")); err == nil {
		faultEvery = d
	}
	srv := jacktest.StartServer(b, rate, period)
	prio, err := jacktest.ClientPriority(srv.Name)
	if err != nil {
		b.Fatal(err)
	}
	playName := jacktest.UniqueName("play")
	play, err := jacktest.NewPlayer(srv.Name, playName, 2)
	if err != nil {
		b.Fatal(err)
	}
	defer play.Close()
	lc := engine.Lane{Chain: "lowpass f=3000 | gain db=-6", Channels: 2}
	l := startLive(b, liveConfig{
		lanes: []engine.Lane{lc, lc}, spares: 1, latency: 4, fallback: audioclock.Dry,
		connectIn:  []string{"^" + playName + ":out_", "^" + playName + ":out_"},
		clientName: jacktest.UniqueName("understudy"), server: srv.Name, serverPriority: prio,
	})
	defer l.close()
	b.ResetTimer()
	var loads []float64
	faults := 0
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var faultC <-chan time.Time
	if faultEvery > 0 {
		ft := time.NewTicker(faultEvery)
		defer ft.Stop()
		faultC = ft.C
	}
	for time.Since(start) < time.Duration(seconds)*time.Second {
		select {
		case <-tick.C:
			loads = append(loads, l.cli.CPULoad())
		case <-faultC:
			if _, err := l.sup.InjectFault(faults%2, supervisor.FaultKill, 0); err == nil {
				faults++
			}
		}
	}
	b.StopTimer()
	st := l.cli.Stats()
	h := l.cli.CallbackTimes()
	if f := os.Getenv("UNDERSTUDY_JACK_LOG"); f != "" {
		os.WriteFile(f, []byte(srv.Log()), 0o644)
	}
	xr := l.clk.Stats(0).Xruns + l.clk.Stats(1).Xruns
	l.cli.Close()
	periodDur := time.Duration(period) * time.Second / rate
	p50, p99 := h.Quantile(0.5), h.Quantile(0.99)
	var loadMax, loadSum float64
	for _, v := range loads {
		loadSum += v
		loadMax = max(loadMax, v)
	}
	// jackd logs "JackEngine::XRun: client = NAME was not finished, state =
	// Triggered" when a client was still running at the cycle's end.
	notFinished, ours := 0, 0
	for _, line := range strings.Split(srv.Log(), "\n") {
		if strings.Contains(line, "was not finished") {
			notFinished++
			if strings.Contains(line, "client = "+l.cli.Name()+" ") {
				ours++
			}
		}
	}
	b.ReportMetric(float64(p50.Nanoseconds())/1e3, "cb-p50-µs")
	b.ReportMetric(float64(p99.Nanoseconds())/1e3, "cb-p99-µs")
	b.ReportMetric(float64(st.CallbackMax.Nanoseconds())/1e3, "cb-max-µs")
	b.ReportMetric(100*float64(p99)/float64(periodDur), "cb-p99-%period")
	b.ReportMetric(loadSum/float64(max(len(loads), 1)), "jack-load-mean-%")
	b.ReportMetric(loadMax, "jack-load-max-%")
	b.ReportMetric(float64(xr), "lane-xruns")
	b.ReportMetric(float64(faults), "faults")
	b.ReportMetric(float64(l.count(supervisor.EvFailover)), "failovers")
	b.ReportMetric(float64(st.ServerXruns), "server-xruns")
	b.ReportMetric(float64(notFinished), "not-finished-lines")
	b.ReportMetric(float64(ours), "understudy-not-finished")
	b.Logf("%d s, %d callbacks of %v, callback p50 %v p99 %v max %v; JACK DSP load mean %.1f%% max %.1f%%; lane xruns %d; %d faults, %d failovers; server xruns %d, %q lines %d (understudy's %d); callback thread FIFO %d",
		seconds, st.Callbacks, periodDur, p50, p99, st.CallbackMax, loadSum/float64(max(len(loads), 1)), loadMax, xr,
		faults, l.count(supervisor.EvFailover), st.ServerXruns, "was not finished", notFinished, ours, prio)
}
