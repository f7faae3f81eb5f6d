package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/understudy-rt/understudy/internal/jacktest"
)

// workerPIDs lists this process's children that are workers (their
// command name, cut to 15 bytes by the kernel).
func workerPIDs() []int { return childPIDs("understudy-wor") }

type runResult struct {
	code           int
	stdout, stderr string
}

func runAsync(args ...string) chan runResult {
	ch := make(chan runResult, 1)
	go func() {
		code, o, e := runCLI(args...)
		ch <- runResult{code, o, e}
	}()
	return ch
}

// understudy run as a JACK client of a real (dummy-backend) server: it runs,
// workers killed with SIGKILL from outside are replaced, and it stops on
// its own with a report and nothing left behind.
func TestRunJACKSurvivesKills(t *testing.T) {
	srv := jacktest.StartServer(t, 48000, 64)
	dir := t.TempDir()
	rep, evs := filepath.Join(dir, "run.json"), filepath.Join(dir, "events.jsonl")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	metricsAddr := ln.Addr().String()
	ln.Close()
	done := runAsync("run", "--backend", "jack", "--server", srv.Name, "--worker", worker(t), "--duration", "3s",
		"--lanes", "2", "--chain", "sine f=440 | gain db=-6", "--latency", "8", "--hang-timeout", "5ms",
		"--report", rep, "--events", evs, "--name", "ustest_run", "--metrics", metricsAddr)
	var killed []int
	require.Eventually(t, func() bool { return len(workerPIDs()) >= 3 }, 10*time.Second, 10*time.Millisecond, "workers never came up")
	time.Sleep(500 * time.Millisecond)
	// Two of the three workers: at least one owns a lane.
	for _, pid := range workerPIDs()[:2] {
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		killed = append(killed, pid)
		time.Sleep(300 * time.Millisecond)
	}
	// Prometheus's view while it runs: the kills are counted, read from
	// the supervisor's events and the clock's counters at scrape time.
	var scraped string
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		scraped = string(b)
		return strings.Contains(scraped, "understudy_worker_restarts_total 2")
	}, 5*time.Second, 50*time.Millisecond, "metrics never showed the two kills")
	for _, want := range []string{`understudy_delivered_blocks_total{lane="1"}`, `understudy_xruns_total{lane="0"}`,
		`understudy_workers{state="owner"} 2`, "understudy_dsp_load_percent", "understudy_failovers_total{path="} {
		require.Contains(t, scraped, want)
	}
	var r runResult
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("understudy run did not stop after its --duration")
	}
	require.Equal(t, 0, r.code, "stdout %s\nstderr %s", r.stdout, r.stderr)
	b, err := os.ReadFile(rep)
	require.NoError(t, err)
	var report struct {
		Callbacks uint64         `json:"callbacks"`
		Failovers int            `json:"failovers"`
		ByPath    map[string]int `json:"failovers_by_path"`
		Stopped   string         `json:"stopped"`
		Lanes     []struct {
			Delivered uint64 `json:"delivered"`
		} `json:"lanes"`
	}
	require.NoError(t, json.Unmarshal(b, &report))
	require.Positive(t, report.Callbacks)
	require.GreaterOrEqual(t, report.Failovers, 1, "a killed owner was not replaced: %s", b)
	require.Equal(t, "duration", report.Stopped)
	require.Len(t, report.Lanes, 2)
	for l, lane := range report.Lanes {
		require.Positive(t, lane.Delivered, "lane %d delivered nothing", l)
	}
	// Every kill is in the events, as an exit by SIGKILL of that pid.
	ev, err := os.ReadFile(evs)
	require.NoError(t, err)
	for _, pid := range killed {
		require.Contains(t, string(ev), `"exit_signal":9,"kind":"worker_exited","lane":-1,"pid":`+strconv.Itoa(pid))
	}
	require.Empty(t, workerPIDs(), "workers left after the run")
}

// No server: one line that says so and how to fix it, exit 2, at once.
func TestRunWithoutServer(t *testing.T) {
	jacktest.RequireJACK(t)
	start := time.Now()
	code, _, stderr := runCLI("run", "--backend", "jack", "--server", "ustest_nobody_here", "--worker", worker(t), "--duration", "1s")
	require.Equal(t, 2, code, stderr)
	require.Equal(t, 1, strings.Count(strings.TrimSpace(stderr), "\n")+1, "more than one line: %q", stderr)
	require.Contains(t, stderr, "jackd")
	t.Logf("%v: %s", time.Since(start), stderr)
	require.Empty(t, workerPIDs())
}

// The server dies mid-run: understudy says so, exits non-zero and leaves no
// worker behind.
func TestRunServerDies(t *testing.T) {
	srv := jacktest.StartServer(t, 48000, 64)
	done := runAsync("run", "--backend", "jack", "--server", srv.Name, "--worker", worker(t), "--name", "ustest_dies")
	require.Eventually(t, func() bool { return len(workerPIDs()) >= 2 }, 10*time.Second, 10*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	srv.Kill()
	var r runResult
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("understudy run did not notice its server died")
	}
	require.Equal(t, 1, r.code, "stdout %s\nstderr %s", r.stdout, r.stderr)
	require.Contains(t, r.stderr, "server")
	require.Empty(t, workerPIDs(), "workers left after the server died")
}

func TestRunBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{}, "--backend is required"},
		{[]string{"--backend", "alsa"}, "the one backend is jack"},
		{[]string{"--backend", "jack", "--lane", "1=gain"}, "--lane"},
		{[]string{"--backend", "jack", "--lane", "0=gain", "--lane", "0=gain"}, "--lane"},
		{[]string{"--backend", "jack", "--lane", "0=nosuchkernel"}, "lane 0"},
		{[]string{"--backend", "jack", "--block", "8"}, "--block 8"},
	} {
		code, _, stderr := runCLI(append([]string{"run", "--worker", worker(t)}, c.args...)...)
		require.Equal(t, 2, code, "%v: %s", c.args, stderr)
		require.Contains(t, stderr, c.want, "%v", c.args)
	}
}
