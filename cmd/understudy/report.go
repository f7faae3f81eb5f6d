package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/internal/stats"
	"github.com/understudy-rt/understudy/supervisor"
)

type kindReport struct {
	Injected    int            `json:"injected"`
	Detected    int            `json:"detected"`
	Expected    string         `json:"expected_path"`
	Path        map[string]int `json:"path"`
	DetectionUS stats.Summary  `json:"detection_us"`
	FailoverUS  stats.Summary  `json:"failover_us"`
	FenceUS     stats.Summary  `json:"fence_us"` // detection to hand-over: the old owner made harmless
	detect      []time.Duration
	failover    []time.Duration
	fence       []time.Duration
}

type faultsReport struct {
	Injected     int                    `json:"injected"`
	Detected     int                    `json:"detected"`
	ExpectedPath int                    `json:"detected_by_expected_path"`
	NoSpare      int                    `json:"no_spare"`
	ByKind       map[string]*kindReport `json:"by_kind"`
}

type laneReport struct {
	Xruns         uint64 `json:"xruns"`
	Stale         uint64 `json:"stale_dropped"`
	InOverflows   uint64 `json:"input_overflows"`
	SrcUnderruns  uint64 `json:"source_underruns"`
	SinkOverflows uint64 `json:"sink_overflows"`
	Bypassed      uint64 `json:"bypassed"`
	Corruptions   uint64 `json:"corruptions"`
	Delivered     uint64 `json:"delivered"`
}

type report struct {
	Config            *demoConfig       `json:"config"`
	Privileged        bool              `json:"privileged"`
	RTWarnings        []string          `json:"rt_warnings,omitempty"`
	Blocks            int               `json:"blocks"`
	Xruns             uint64            `json:"xruns"`
	LostBlocks        int               `json:"lost_blocks"`
	Faults            faultsReport      `json:"faults"`
	DetectionUS       stats.Summary     `json:"detection_us"`
	FailoverUS        stats.Summary     `json:"failover_us"`
	FenceUS           stats.Summary     `json:"fence_us"`
	RespawnUS         stats.Summary     `json:"respawn_us"`
	Failovers         int               `json:"failovers"`
	BitExact          bool              `json:"bit_exact"`
	MismatchedSamples int               `json:"mismatched_samples"`
	ClockLateMaxUS    float64           `json:"clock_wake_late_max_us"`
	ClockLateHist     map[string]uint64 `json:"clock_wake_late_hist"`
	MonitorStalls     uint64            `json:"monitor_stalls"`
	EarlyFences       uint64            `json:"early_fences"` // killed owners fenced on their exit flag, before the pidfd
	Lanes             []laneReport      `json:"lanes"`
	Unplanned         []unplanned       `json:"unplanned_failovers"`
}

// unplanned is a failover no injected fault explains: a false positive or a
// real failure, worth reading either way.
type unplanned struct {
	Lane       int     `json:"lane"`
	PID        int     `json:"pid"`
	Path       string  `json:"path"`
	Block      uint64  `json:"block"`
	AtMS       float64 `json:"at_ms"`
	FailoverUS float64 `json:"failover_us"`
}

func buildReport(c *demoConfig, r *rtResult, privileged bool, mismatched int) *report {
	nBlocks := len(r.blockFlags[0])
	rep := &report{Config: c, Privileged: privileged, RTWarnings: r.rtWarnings,
		Blocks: nBlocks * len(r.out), MismatchedSamples: mismatched, BitExact: mismatched == 0,
		ClockLateMaxUS: float64(r.lateMax) / 1e3, ClockLateHist: map[string]uint64{},
		MonitorStalls: r.monStalls, EarlyFences: r.earlyFence}
	rep.LostBlocks = rep.Blocks - r.received
	for _, s := range r.stats {
		rep.Xruns += s.Xruns
		rep.Lanes = append(rep.Lanes, laneReport(s))
	}
	for b, n := range r.lateHist {
		if n == 0 {
			continue
		}
		lo := 0
		if b > 0 {
			lo = 1 << (b - 1)
		}
		rep.ClockLateHist[fmt.Sprintf("%dus+", lo)] = n
	}
	rep.Faults.ByKind = map[string]*kindReport{}
	var detAll, foAll, fence, respawn []time.Duration
	for _, in := range r.injections {
		k := in.inj.Fault.String()
		kr := rep.Faults.ByKind[k]
		if kr == nil {
			kr = &kindReport{Path: map[string]int{}, Expected: in.inj.Fault.ExpectedPath().String()}
			rep.Faults.ByKind[k] = kr
		}
		kr.Injected++
		rep.Faults.Injected++
		e := in.event
		if e == nil {
			continue
		}
		kr.Detected++
		rep.Faults.Detected++
		kr.Path[e.Path.String()]++
		if in.inj.Fault.Expects(e.Path) {
			rep.Faults.ExpectedPath++
		}
		if e.Kind == supervisor.EvNoSpare {
			rep.Faults.NoSpare++
			continue
		}
		kr.detect = append(kr.detect, e.Detection())
		kr.failover = append(kr.failover, e.Failover())
		kr.fence = append(kr.fence, e.Fence())
		detAll = append(detAll, e.Detection())
		foAll = append(foAll, e.Failover())
		fence = append(fence, e.Fence())
	}
	for _, kr := range rep.Faults.ByKind {
		kr.DetectionUS = stats.Summarize(kr.detect)
		kr.FailoverUS = stats.Summarize(kr.failover)
		kr.FenceUS = stats.Summarize(kr.fence)
	}
	planned := map[int]bool{}
	for _, in := range r.injections {
		planned[in.inj.PID] = true
	}
	for _, e := range r.events {
		switch e.Kind {
		case supervisor.EvFailover:
			rep.Failovers++
			if !planned[e.PID] {
				rep.Unplanned = append(rep.Unplanned, unplanned{Lane: e.Lane, PID: e.PID, Path: e.Path.String(), Block: e.Block,
					AtMS: float64(e.DetectNS-r.startNS) / 1e6, FailoverUS: float64(e.Failover()) / 1e3})
			}
		case supervisor.EvSpareReady:
			if e.SpawnNS >= r.startNS && r.startNS != 0 {
				respawn = append(respawn, e.Startup())
			}
		}
	}
	rep.DetectionUS = stats.Summarize(detAll)
	rep.FailoverUS = stats.Summarize(foAll)
	rep.FenceUS = stats.Summarize(fence)
	rep.RespawnUS = stats.Summarize(respawn)
	return rep
}

func printSummary(w io.Writer, c *demoConfig, r *report) {
	mode := "SCHED_FIFO, memory locked"
	if !r.Privileged {
		mode = "ordinary scheduling (not privileged)"
	}
	period := time.Duration(int64(c.Block) * int64(time.Second) / int64(c.Rate))
	fmt.Fprintf(w, "understudy demo: %.1f s at %d Hz, %d-frame blocks, %d lanes, %d spare(s), latency %d periods (%.2f ms), %s\n",
		c.Duration.Seconds(), c.Rate, c.Block, c.Lanes, c.Spares, c.Latency, float64(time.Duration(c.Latency)*period)/1e6, mode)
	exact := "yes"
	if !r.BitExact {
		exact = "NO"
	}
	fmt.Fprintf(w, "blocks %d   xruns %d   lost %d   failovers %d   bit-exact %s (%d mismatched samples)\n\n",
		r.Blocks, r.Xruns, r.LostBlocks, r.Failovers, exact, r.MismatchedSamples)
	if r.Faults.Injected > 0 {
		fmt.Fprintf(w, "%-6s %8s %8s  %-24s %-24s %s\n", "fault", "injected", "detected", "path", "detect µs p50/p99/max", "failover µs p50/p99/max")
		for _, k := range sortedKinds(r.Faults.ByKind) {
			kr := r.Faults.ByKind[k]
			var paths []string
			for p, n := range kr.Path {
				paths = append(paths, fmt.Sprintf("%s %d", p, n))
			}
			fmt.Fprintf(w, "%-6s %8d %8d  %-24s %-24s %s\n", k, kr.Injected, kr.Detected, strings.Join(paths, ", "),
				triple(kr.DetectionUS), triple(kr.FailoverUS))
		}
		fmt.Fprintf(w, "%-6s %8d %8d  %-24s %-24s %s\n\n", "all", r.Faults.Injected, r.Faults.Detected,
			fmt.Sprintf("%d by expected path", r.Faults.ExpectedPath), triple(r.DetectionUS), triple(r.FailoverUS))
		fmt.Fprintf(w, "new spare ready (spawn → handshake) µs p50/p99/max: %s over %d respawns\n", triple(r.RespawnUS), r.RespawnUS.N)
	}
	fmt.Fprintf(w, "clock wake-up lateness max %.0f µs; monitor woke from %d machine stalls\n", r.ClockLateMaxUS, r.MonitorStalls)
	periodUS := float64(c.Block) * 1e6 / float64(c.Rate)
	if r.Xruns > 0 && (r.ClockLateMaxUS > float64(c.Latency-1)*periodUS || len(r.Unplanned) > 0) {
		// Say whose xruns these are, and what to try.
		fmt.Fprintf(w, "note: this machine stalled (the clock woke %.1f ms late; %d failovers no fault explains), longer than "+
			"the %.1f ms of output latency: such xruns are the host's. Compare `cyclictest -m -p 90 -i 1000 -D 10`; "+
			"try --latency 10 --hang-timeout 5ms\n", r.ClockLateMaxUS/1e3, len(r.Unplanned), float64(c.Latency)*periodUS/1e3)
	}
	fmt.Fprintf(w, "wrote %s and %s\n", c.Out, c.Report)
}

func triple(s stats.Summary) string {
	if s.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f/%.0f/%.0f", s.P50, s.P99, s.Max)
}

// checkWritable fails early when path's directory cannot take a new file.
func checkWritable(path string) error {
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("the directory %s does not exist; create it first (mkdir -p %s) or choose another path", dir, dir)
	}
	// Written by a rename, which would replace a device node or a FIFO at
	// the path with the report: only regular files are replaced.
	if st, err := os.Stat(path); err == nil && !st.IsDir() && !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%v); give a file path", path, st.Mode().Type())
	}
	f, err := os.CreateTemp(dir, ".understudy-check-*")
	if err != nil {
		return fmt.Errorf("cannot write in %s: %v; choose another path", dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory; give a file name", path)
	}
	return nil
}

// writeJSON writes atomically: a temporary file, then rename.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".understudy-report-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func execLookPath(name string) (string, error) { return exec.LookPath(name) }

func isTerminalFD(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}
