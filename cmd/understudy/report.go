package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/internal/stats"
	"github.com/understudy-rt/understudy/supervisor"
)

type kindReport struct {
	Injected    int            `json:"injected"`
	Detected    int            `json:"detected"`
	Expected    string         `json:"expected_path"`
	Path        map[string]int `json:"path"`
	Unexpected  map[string]int `json:"unexpected_path,omitempty"` // detections by a path the fault does not expect
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
	Garbage       uint64 `json:"garbage"` // blocks with NaN, Inf or samples past the ceiling, replaced by the fallback
	Fenced        uint64 `json:"fenced"`  // output blocks of a fenced owner (another epoch), dropped
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
	EarlyFences       uint64            `json:"early_fences"`      // killed owners fenced on their exit flag, before the pidfd
	WordDeaths        uint64            `json:"death_word_deaths"` // worker deaths learnt from their death word
	Lanes             []laneReport      `json:"lanes"`
	Unplanned         []unplanned       `json:"unplanned_failovers"`
	FailedLanes       []string          `json:"failed_lanes,omitempty"` // lanes the restart policy gave up, and why
	Repros            []reproReport     `json:"repros,omitempty"`       // poison blocks saved for understudy replay
	Deadlines         []laneDeadline    `json:"deadlines"`              // each lane's hang deadline at the end, and which bound set it
	Overruns          uint64            `json:"overruns"`               // blocks whose chain took longer than a period (slow, not hung)
	// Per-event data for pictures (--plot) and anyone reading the JSON;
	// built by timelineOf and detectionsOf (plot.go).
	Timeline   []timelineEvent   `json:"timeline"`
	Detections []detectionSample `json:"detections"`
}

// laneDeadline is a lane's hang deadline and the bound that set it: the
// hang timeout, the measured block time plus the machine's lateness, or the
// output's headroom.
type laneDeadline struct {
	Lane  int     `json:"lane"`
	US    float64 `json:"us"`
	Bound string  `json:"bound"`
}

// reproReport is a poison block saved for `understudy replay`.
type reproReport struct {
	Lane  int    `json:"lane"`
	Block uint64 `json:"block"`
	File  string `json:"file,omitempty"`
	Error string `json:"error,omitempty"` // why it could not be saved
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
	Output     string  `json:"worker_output,omitempty"` // the failed worker's last lines on stderr/stdout
}

func buildReport(c *demoConfig, r *rtResult, privileged bool, mismatched int) *report {
	nBlocks := len(r.blockFlags[0])
	rep := &report{Config: c, Privileged: privileged, RTWarnings: r.rtWarnings,
		Blocks: nBlocks * len(r.out), MismatchedSamples: mismatched, BitExact: mismatched == 0,
		ClockLateMaxUS: float64(r.lateMax) / 1e3, ClockLateHist: map[string]uint64{},
		MonitorStalls: r.monStalls, EarlyFences: r.earlyFence, WordDeaths: r.wordDeaths,
		Deadlines: r.deadlines, Overruns: r.overruns}
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
		} else {
			if kr.Unexpected == nil {
				kr.Unexpected = map[string]int{}
			}
			kr.Unexpected[e.Path.String()]++
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
					AtMS: float64(e.DetectNS-r.startNS) / 1e6, FailoverUS: float64(e.Failover()) / 1e3, Output: e.Output})
			}
			if e.Poisoned {
				rr := reproReport{Lane: e.Lane, Block: e.Block, File: e.Repro}
				if e.ReproErr != nil {
					rr.Error = e.ReproErr.Error()
				}
				rep.Repros = append(rep.Repros, rr)
			}
		case supervisor.EvLaneFailed:
			rep.FailedLanes = append(rep.FailedLanes, e.Err.Error())
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
	rep.Timeline = timelineOf(c, r)
	rep.Detections = detectionsOf(r)
	return rep
}

// cyclictestCmd is the one command the demo and the README give for
// measuring the machine's own wake-up latency at the clock's priority and
// period, to compare with the clock's lateness.
func cyclictestCmd(c *demoConfig) string {
	return fmt.Sprintf("cyclictest -m -p %d -i %d -D 10 -q", clockPrio, int64(c.Block)*1_000_000/int64(c.Rate))
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
		printFaultTable(w, r)
		fmt.Fprintf(w, "new spare ready (spawn → handshake) µs p50/p99/max: %s over %d respawns\n", triple(r.RespawnUS), r.RespawnUS.N)
	}
	fmt.Fprintf(w, "clock wake-up lateness max %.0f µs; monitor woke from %d machine stalls\n", r.ClockLateMaxUS, r.MonitorStalls)
	if len(r.Deadlines) > 0 {
		var ds []string
		for _, d := range r.Deadlines {
			ds = append(ds, fmt.Sprintf("lane %d %.0f µs (%s)", d.Lane, d.US, d.Bound))
		}
		fmt.Fprintf(w, "hang deadlines: %s; %s over a period\n", strings.Join(ds, ", "), count(int(r.Overruns), "block"))
	}
	for _, f := range r.FailedLanes {
		fmt.Fprintf(w, "LANE GIVEN UP: %s\n", f)
	}
	for _, u := range r.Unplanned {
		if u.Output != "" {
			fmt.Fprintf(w, "lane %d's worker %d (%s at block %d) printed last: %q\n", u.Lane, u.PID, u.Path, u.Block, supervisor.FoldLines(u.Output))
		}
	}
	for _, p := range r.Repros {
		if p.File == "" {
			fmt.Fprintf(w, "lane %d block %d was bypassed as poison and not saved: %s\n", p.Lane, p.Block, p.Error)
			continue
		}
		fmt.Fprintf(w, "lane %d block %d was bypassed as poison; run it again: understudy replay %s --worker %s\n", p.Lane, p.Block, p.File, c.Worker)
	}
	printNote(w, c, r)
	fmt.Fprintf(w, "wrote %s and %s\n", c.Out, c.Report)
}

// printFaultTable prints one row per fault kind and a total, its columns as
// wide as their widest cell, then what was missed, if anything.
func printFaultTable(w io.Writer, r *report) {
	rows := [][]string{{"fault", "injected", "detected", "path", "detect µs p50/p99/max", "failover µs p50/p99/max"}}
	var missed []string
	for _, k := range sortedKinds(r.Faults.ByKind) {
		kr := r.Faults.ByKind[k]
		rows = append(rows, []string{k, fmt.Sprint(kr.Injected), fmt.Sprint(kr.Detected), pathCounts(kr.Path),
			triple(kr.DetectionUS), triple(kr.FailoverUS)})
		if n := kr.Injected - kr.Detected; n > 0 {
			missed = append(missed, fmt.Sprintf("%s: %d of %d not detected", k, n, kr.Injected))
		}
		if len(kr.Unexpected) > 0 {
			missed = append(missed, fmt.Sprintf("%s: expected %s, got %s", k, kr.Expected, pathCounts(kr.Unexpected)))
		}
	}
	all := fmt.Sprintf("%d by expected path", r.Faults.ExpectedPath)
	rows = append(rows, []string{"all", fmt.Sprint(r.Faults.Injected), fmt.Sprint(r.Faults.Detected), all,
		triple(r.DetectionUS), triple(r.FailoverUS)})
	width := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, cell := range row {
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, cell := range row {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell))
			switch {
			case i == 1 || i == 2: // counts, right-aligned
				b.WriteString(pad + cell)
			case i == len(row)-1:
				b.WriteString(cell)
			default:
				b.WriteString(cell + pad)
			}
			if i < len(row)-1 {
				b.WriteString("  ")
			}
		}
		fmt.Fprintln(w, b.String())
	}
	if r.Faults.NoSpare > 0 {
		missed = append(missed, fmt.Sprintf("%d detected while no spare was ready: the lane played its fallback until one was (no failover time)", r.Faults.NoSpare))
	}
	for _, m := range missed {
		fmt.Fprintf(w, "  %s\n", m)
	}
	fmt.Fprintln(w)
}

func pathCounts(m map[string]int) string {
	var out []string
	for _, p := range sortedPaths(m) {
		out = append(out, fmt.Sprintf("%s %d", p, m[p]))
	}
	return strings.Join(out, ", ")
}

func sortedPaths(m map[string]int) []string {
	var ps []string
	for p := range m {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// printNote says whose xruns and unexplained failovers these were: the
// machine's only when the clock itself woke later than the output latency
// could absorb; otherwise not the machine's, and what to look at.
func printNote(w io.Writer, c *demoConfig, r *report) {
	if r.Xruns == 0 && len(r.Unplanned) == 0 {
		return
	}
	periodUS := float64(c.Block) * 1e6 / float64(c.Rate)
	headroomUS := float64(c.Latency-1) * periodUS
	what := fmt.Sprintf("%s and %s that no fault explains", count(int(r.Xruns), "xrun"), count(len(r.Unplanned), "failover"))
	if r.ClockLateMaxUS > headroomUS {
		fmt.Fprintf(w, "note: %s. The machine stalled: the clock woke %.1f ms late, more than the %.1f ms of headroom "+
			"that --latency %d leaves. Measure the machine with `%s`; more headroom: --latency %d --hang-timeout %v\n",
			what, r.ClockLateMaxUS/1e3, headroomUS/1e3, c.Latency, cyclictestCmd(c),
			min(int(r.ClockLateMaxUS/periodUS)+2, 63), max(c.HangTimeout, time.Duration(r.ClockLateMaxUS)*time.Microsecond).Round(time.Millisecond))
		return
	}
	fmt.Fprintf(w, "note: %s, while the clock never woke later than its %.1f ms of headroom (worst %.0f µs): "+
		"not the machine's stalls. Look at the kernels' time per block against the %.0f µs period and the %.0f µs hang timeout, "+
		"and at whether the workers got real-time priority.\n", what, headroomUS/1e3, r.ClockLateMaxUS, periodUS, float64(c.HangTimeout)/1e3)
}

// count says n words: "1 xrun", "7 xruns".
func count(n int, word string) string {
	return fmt.Sprintf("%d %s", n, plural(uint64(n), word, word+"s"))
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

func isTerminalFD(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}
