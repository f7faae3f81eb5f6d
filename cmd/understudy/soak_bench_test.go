package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/understudy-rt/understudy/internal/jacktest"
	"github.com/understudy-rt/understudy/internal/workerbin"
)

// BenchmarkRunSoak runs `understudy run --backend jack` (2 stereo lanes,
// 1 spare, events to a file, metrics served) against a dummy server for
// UNDERSTUDY_SOAK_SECONDS (default 300), SIGKILLs one of its workers every
// UNDERSTUDY_SOAK_FAULT_EVERY (default 250ms), and samples the host's RSS
// once a second. It reports the RSS after the warm-up (the first fifth of
// the run, at least 20 s), at the end, the largest, and the slope of a
// least-squares line through the samples after the warm-up (kB per
// minute): flat memory is a slope near 0 against thousands of faults. One
// run whatever b.N:
//
//	UNDERSTUDY_WORKER=$PWD/bin/understudy-worker go test -run '^$' -bench RunSoak -benchtime 1x -timeout 30m ./cmd/understudy/
func BenchmarkRunSoak(b *testing.B) {
	seconds := 300
	if s, err := strconv.Atoi(os.Getenv("UNDERSTUDY_SOAK_SECONDS")); err == nil && s > 0 {
		seconds = s
	}
	every := 250 * time.Millisecond
	if d, err := time.ParseDuration(os.Getenv("UNDERSTUDY_SOAK_FAULT_EVERY")); err == nil && d > 0 {
		every = d
	}
	srv := jacktest.StartServer(b, 48000, 64)
	bin, err := workerbin.HostPath()
	if err != nil {
		b.Fatal(err)
	}
	w, err := workerbin.Path()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	evs := filepath.Join(dir, "events.jsonl")
	cmd := exec.Command(bin, "run", "--backend", "jack", "--server", srv.Name, "--worker", w, "--name", jacktest.UniqueName("soak"),
		"--lanes", "2", "--channels", "2", "--chain", "lowpass f=3000 | gain db=-6", "--latency", "4", "--spares", "1",
		"--duration", fmt.Sprintf("%ds", seconds), "--events", evs, "--metrics", "127.0.0.1:0", "--report", filepath.Join(dir, "run.json"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	pid := cmd.Process.Pid

	b.ResetTimer()
	var rss []float64 // kB, one a second
	faults := 0
	tick, fault := time.NewTicker(time.Second), time.NewTicker(every)
	defer tick.Stop()
	defer fault.Stop()
	var runErr error
loop:
	for {
		select {
		case runErr = <-exited:
			break loop
		case <-tick.C:
			if kb, ok := vmRSS(pid); ok {
				rss = append(rss, kb)
			}
		case <-fault.C:
			if ws := workersNow(pid); len(ws) > 0 {
				if syscall.Kill(ws[faults%len(ws)], syscall.SIGKILL) == nil {
					faults++
				}
			}
		}
	}
	b.StopTimer()
	if runErr != nil {
		b.Fatalf("understudy run: %v\n%s", runErr, lastLines(out.String(), 5))
	}
	warm := max(20, len(rss)/5)
	if len(rss) < warm+10 {
		b.Fatalf("%d RSS samples: too short a run to judge", len(rss))
	}
	after := rss[warm:]
	// Least squares: slope of RSS against seconds.
	var sx, sy, sxx, sxy float64
	for i, v := range after {
		x := float64(i)
		sx, sy, sxx, sxy = sx+x, sy+v, sxx+x*x, sxy+x*v
	}
	n := float64(len(after))
	slope := (n*sxy - sx*sy) / (n*sxx - sx*sx) * 60
	peak := 0.0
	for _, v := range rss {
		peak = max(peak, v)
	}
	fi, _ := os.Stat(evs)
	b.ReportMetric(rss[warm]/1024, "rss-after-warmup-MB")
	b.ReportMetric(rss[len(rss)-1]/1024, "rss-end-MB")
	b.ReportMetric(peak/1024, "rss-max-MB")
	b.ReportMetric(slope, "rss-slope-kB/min")
	b.ReportMetric(float64(faults), "faults")
	b.Logf("%d s, %d SIGKILLs (one per %v); host RSS: %.1f MB at %d s, %.1f MB at the end, max %.1f MB, slope after warm-up %+.1f kB/min; events file %d bytes; %s",
		len(rss), faults, every, rss[warm]/1024, warm, rss[len(rss)-1]/1024, peak/1024, slope, fi.Size(), lastLines(out.String(), 1))
	if s := os.Getenv("UNDERSTUDY_SOAK_RSS"); s != "" {
		var sb strings.Builder
		for i, v := range rss {
			fmt.Fprintf(&sb, "%d %.0f\n", i+1, v)
		}
		os.WriteFile(s, []byte(sb.String()), 0o644)
	}
}

// vmRSS is a process's resident set in kB.
func vmRSS(pid int) (float64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			v, err := strconv.ParseFloat(f[1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// workersNow lists the workers a host runs now (started with --parent pid),
// in one look.
func workersNow(pid int) []int {
	var ws []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte("\x00--parent\x00"+strconv.Itoa(pid)+"\x00")) {
			n, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			ws = append(ws, n)
		}
	}
	return ws
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}
