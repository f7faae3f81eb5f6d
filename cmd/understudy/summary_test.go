package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/understudy-rt/understudy/internal/stats"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// fixedReport has what made the summary mislead before: a kind detected by
// two paths, one of them unexpected, a missed injection, an outage with no
// spare, a percentile that rounds up to its maximum, and xruns.
func fixedReport(lateUS float64) (*demoConfig, *report) {
	c := &demoConfig{Duration: 10 * time.Second, Rate: 48000, Block: 64, Lanes: 2, Spares: 1, Latency: 2,
		HangTimeout: 666 * time.Microsecond, Out: "out/demo.wav", Report: "out/demo-report.json"}
	sum := func(n int, p50, p99, max float64) stats.Summary {
		return stats.Summary{N: n, P50: p50, P99: p99, Max: max}
	}
	r := &report{Privileged: true, Blocks: 15000, Xruns: 7, LostBlocks: 0, Failovers: 40, BitExact: false,
		MismatchedSamples: 448, ClockLateMaxUS: lateUS, MonitorStalls: 2,
		DetectionUS: sum(38, 172, 664, 664), FailoverUS: sum(37, 79, 163.4, 163.4), RespawnUS: sum(39, 1386, 1760, 1760)}
	r.Faults = faultsReport{Injected: 39, Detected: 38, ExpectedPath: 37, NoSpare: 1, ByKind: map[string]*kindReport{
		"segv": {Injected: 5, Detected: 5, Expected: "last_gasp", Path: map[string]int{"last_gasp": 5},
			DetectionUS: sum(5, 37, 44, 44), FailoverUS: sum(5, 46, 53, 53)},
		"stop": {Injected: 5, Detected: 5, Expected: "deadline", Path: map[string]int{"deadline": 4, "exiting": 1},
			Unexpected: map[string]int{"exiting": 1}, DetectionUS: sum(5, 645, 662, 662), FailoverUS: sum(5, 425, 478, 478)},
		"kill": {Injected: 5, Detected: 4, Expected: "pidfd", Path: map[string]int{"pidfd": 3, "exiting": 1},
			DetectionUS: sum(4, 399, 503, 503), FailoverUS: sum(3, 31, 64, 64)},
	}}
	r.Unplanned = []unplanned{{Lane: 1, PID: 4242, Path: "deadline", Block: 900, AtMS: 1200},
		{Lane: 0, PID: 4343, Path: "last_gasp", Block: 1200, AtMS: 1600, Output: "mykernel: state went bad\nmykernel: giving up"}}
	r.Repros = []reproReport{{Lane: 0, Block: 1200, File: "out/understudy-repro-lane0-block1200-1.bin"},
		{Lane: 1, Block: 77, Error: "the block was not saved"}}
	c.Worker = "./my-worker"
	r.Deadlines = []laneDeadline{{Lane: 0, US: 666.7, Bound: "hang timeout"}, {Lane: 1, US: 1333.3, Bound: "headroom"}}
	r.Overruns = 3
	return c, r
}

func TestSummaryGolden(t *testing.T) {
	for _, c := range []struct {
		name   string
		lateUS float64
	}{
		{"stalled", 7364}, // the machine's: later than the 1.3 ms headroom
		{"calm", 212},     // not the machine's
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, r := fixedReport(c.lateUS)
			var b bytes.Buffer
			printSummary(&b, cfg, r)
			golden := filepath.Join("testdata", "summary-"+c.name+".golden")
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestSummaryGolden -update to create it)", err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("summary differs from %s:\n--- got\n%s--- want\n%s", golden, b.String(), want)
			}
		})
	}
}

// Nearest-rank percentiles and the maximum are rounded alike, so no p99
// prints above its max.
func TestPercentileNeverAboveMax(t *testing.T) {
	s := stats.Summarize([]time.Duration{237450 * time.Nanosecond, 84000 * time.Nanosecond})
	if got := triple(s); got != "237/237/237" && s.P99 > s.Max {
		t.Errorf("p99 %v above max %v (%s)", s.P99, s.Max, got)
	}
	if s.P99 > s.Max {
		t.Errorf("p99 %v above max %v", s.P99, s.Max)
	}
}
