package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
cpu: AMD EPYC
BenchmarkTransport/go/scalar/frames=64-2         	    2000	       294.0 ns/op	       231.0 ns-p50	       241.0 ns-p99	         3.609 ns/sample
BenchmarkTransport/shm-spin/scalar/frames=64-2   	    2000	     21949 ns/op	       521.0 ns-p50	    407872 ns-p99	         8.141 ns/sample
BenchmarkKernels/fir/avx2/frames=256/taps=512-2   	  10000	      1200 ns/op	         2.3 ns/sample
BenchmarkKernels/fir/go/frames=256/taps=512-2     	  10000	      9200 ns/op	        17.9 ns/sample
BenchmarkFutexPingPong-2                         	    2000	     35561 ns/op	     31978 ns-p50	     51237 ns-p99
PASS
`

func TestParseAndTables(t *testing.T) {
	recs, env := parse(strings.NewReader(sample))
	if len(recs) != 5 || len(env) != 3 {
		t.Fatalf("%d records, %d env lines", len(recs), len(env))
	}
	r := recs[1]
	if r.Group != "Transport" || r.Name != "shm-spin" || r.Variant != "scalar" || r.Frames != 64 ||
		r.NsP50 != 521 || r.NsP99 != 407872 || r.NsPerSample != 8.141 || r.Iterations != 2000 {
		t.Errorf("record %+v", r)
	}
	if k := recs[2]; k.Group != "Kernels" || k.Name != "fir" || k.Variant != "avx2" || k.Frames != 256 || k.Extra != "taps=512" {
		t.Errorf("kernel record %+v", k)
	}
	if f := recs[4]; f.Group != "FutexPingPong" || f.NsP50 != 31978 {
		t.Errorf("ping-pong record %+v", f)
	}
	var md bytes.Buffer
	markdown(&md, recs, env, "make bench", "A note on the run.")
	out := md.String()
	for _, want := range []string{"## Transport", "| shm-spin | scalar |  | 8.14 (0.44x) |", "| fir | avx2 | taps=512 | 2.3 (7.78x) |", "3.2e+04 ns p50", "\nA note on the run.\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
}

// -plots draws both pictures from the records: the kernel picture names each
// kernel with a pure Go twin at the block size, its variants and the twin;
// the percentile picture names each detection and wake-up benchmark.
func TestPlots(t *testing.T) {
	recs, env := parse(strings.NewReader(sample + `BenchmarkKillToDetection-2   100   3426470 ns/op   317528 ns-p50   454123 ns-p99   52583 failover-ns-p50   125990 failover-ns-p99   454123 ns-max
`))
	dir := t.TempDir()
	if err := drawAll(dir, recs, 256, cpuOf(env)); err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile(filepath.Join(dir, kernelsPlot))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Kernel speed against the pure Go twin, 256-frame blocks, AMD EPYC", "fir taps=512", "avx2", "pure Go twin"} {
		if !strings.Contains(string(k), want) {
			t.Errorf("%s lacks %q", kernelsPlot, want)
		}
	}
	d, err := os.ReadFile(filepath.Join(dir, detectionPlot))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kill → detection", "detection → failover", "futex ping-pong", "p99"} {
		if !strings.Contains(string(d), want) {
			t.Errorf("%s lacks %q", detectionPlot, want)
		}
	}
	// No kernel with a Go twin at this block size: say so, draw nothing.
	if err := drawAll(t.TempDir(), recs, 64, ""); err == nil || !strings.Contains(err.Error(), "64 frames") {
		t.Errorf("drawAll at a block size with no kernels = %v; want an error naming it", err)
	}
}

// Each table says which CPU and FP mode its figures came from: the model
// name from go test's header of that package, and FTZ+DAZ only where every
// row reported it (ftz-daz=1), naming the rows that did not.
func TestTablesSayCPUAndMode(t *testing.T) {
	const in = `goos: linux
pkg: example/cdsp
cpu: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
BenchmarkKernels/gain/avx2/frames=64-2   	 1000	 100.0 ns/op	 1.000 ftz-daz	 0.78 ns/sample
BenchmarkKernels/gain/go/frames=64-2     	 1000	 200.0 ns/op	 1.000 ftz-daz	 1.56 ns/sample
pkg: example/bench
cpu: AMD EPYC
BenchmarkTransport/go/scalar/frames=64-2 	 2000	 294.0 ns/op	 1.000 ftz-daz	 231.0 ns-p50	 3.609 ns/sample
BenchmarkTransport/pipe/scalar/frames=64-2	 2000	 9000 ns/op	 800.0 ns-p50	 12.5 ns/sample
BenchmarkFutexPingPong-2                 	 2000	 35561 ns/op	 31978 ns-p50	 51237 ns-p99
`
	recs, env := parse(strings.NewReader(in))
	if r := recs[0]; !r.FTZDAZ || r.CPU != "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz" || r.Package != "example/cdsp" || r.Metrics != nil {
		t.Fatalf("kernel record %+v: want FTZ+DAZ, its package's CPU and no ftz-daz among the metrics", r)
	}
	if r := recs[2]; r.CPU != "AMD EPYC" || r.Package != "example/bench" {
		t.Fatalf("transport record %+v: want the second package's CPU", r)
	}
	var md bytes.Buffer
	markdown(&md, recs, env, "make bench", "")
	sections := strings.Split(md.String(), "\n## ")
	if len(sections) != 4 {
		t.Fatalf("%d tables, want 3:\n%s", len(sections)-1, md.String())
	}
	for i, want := range [][]string{
		{"Kernels", "CPU: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", "FP mode: FTZ+DAZ on the benchmark thread"},
		{"Transport", "CPU: AMD EPYC", "FTZ+DAZ (the workers' mode) in every row but pipe/scalar"},
		{"FutexPingPong", "CPU: AMD EPYC", "FP mode: not set by the benchmark"},
	} {
		for _, w := range want {
			if !strings.Contains(sections[i+1], w) {
				t.Errorf("table %d lacks %q:\n%s", i+1, w, sections[i+1])
			}
		}
	}
}

// The detection table judges every path against the floor of the same run
// and says how the 64 MiB p50 compares to the 1 MiB one; a run without a
// floor gets no table (no ratio to a floor measured elsewhere).
func TestDetectionTable(t *testing.T) {
	const run = `BenchmarkKillToDetection/death_word-2   300   2900000 ns/op   100 %-by-death_word   30000 ns-p50   120000 ns-p99
BenchmarkKillToDetection/pidfd-2   300   2900000 ns/op   200000 ns-p50   300000 ns-p99
BenchmarkKillToDetection/floor-2   300   80000 ns/op   60000 ns-p50   150000 ns-p99
BenchmarkDetection/death_word/1MiB-2   300   90000 ns/op   20000 ns-p50   60000 ns-p99
BenchmarkDetection/pidfd/1MiB-2   300   190000 ns/op   180000 ns-p50   300000 ns-p99
BenchmarkDetection/death_word/64MiB-2   300   1400000 ns/op   30000 ns-p50   120000 ns-p99
BenchmarkDetection/pidfd/64MiB-2   300   6000000 ns/op   5800000 ns-p50   7800000 ns-p99
BenchmarkFaultDetection/segv-2   300   7000000 ns/op   100 %-by-last_gasp   0 %-by-death_word   110000 failover-ns-p50   160000 failover-ns-p99   32000 ns-p50   67000 ns-p99
`
	recs, _ := parse(strings.NewReader(run))
	var md bytes.Buffer
	detection(&md, recs)
	out := md.String()
	for _, want := range []string{
		"## Detection against the floor", "p50 60, p99 150",
		"| a lane's owner (supervisor, clock running) | death_word | the worker's | 300 | 30 | 120 | 0.50 | 0.80 |",
		"| bare child, pidfd in epoll | pidfd | 64 MiB | 300 | 5800 | 7800 | 96.67 | 52.00 |",
		"death_word 1.5x, pidfd 32.2x",
		"| segv | 300 | last_gasp 100% | 32 | 67 | 0.53 | 110 | 160 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("detection table lacks %q:\n%s", want, out)
		}
	}
	md.Reset()
	detection(&md, recs[:2])
	if md.Len() != 0 {
		t.Errorf("a run without a floor got a table:\n%s", md.String())
	}
}
