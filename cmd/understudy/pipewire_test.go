package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/understudy-rt/understudy/internal/jacktest"
)

// `pw-jack understudy run` against a headless PipeWire of the test's own (no
// session bus, no session manager: its dummy driver runs the graph): a lane
// runs at the 64-frame quantum the test asks for, its workers sit one
// priority below the callback thread PipeWire made real-time, and a worker
// killed with SIGKILL is replaced with no late block.
//
// PipeWire's libjack (0.3.65) says -6 when asked the process thread's
// priority (jack_client_real_time_priority) while running it at FIFO 88;
// understudy asks the kernel instead, or its workers would run on ordinary
// scheduling under a real-time callback.
func TestRunUnderPipeWire(t *testing.T) {
	jacktest.RequirePipeWire(t)
	dir := t.TempDir()
	rt := filepath.Join(dir, "xdg")
	require.NoError(t, os.Mkdir(rt, 0o700))
	env := append(os.Environ(), "XDG_RUNTIME_DIR="+rt, "PIPEWIRE_QUANTUM=64/48000")

	start := time.Now()
	pw := exec.Command("pipewire")
	pw.Env = env
	var pwLog bytes.Buffer
	pw.Stdout, pw.Stderr = &pwLog, &pwLog
	pw.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	require.NoError(t, pw.Start())
	t.Cleanup(func() {
		syscall.Kill(-pw.Process.Pid, syscall.SIGKILL)
		pw.Wait()
	})
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(rt, "pipewire-0"))
		return err == nil
	}, 10*time.Second, 5*time.Millisecond, "pipewire never made its socket: %s", &pwLog)
	t.Logf("headless pipewire up in %v", time.Since(start).Round(time.Millisecond))

	rep, evs := filepath.Join(dir, "run.json"), filepath.Join(dir, "events.jsonl")
	run := exec.Command("pw-jack", host(t), "run", "--backend", "jack", "--worker", worker(t), "--name", "ustest_pw",
		"--duration", "6s", "--lanes", "1", "--channels", "1", "--chain", "sine f=997 db=-6 | lowpass f=3000",
		"--latency", "8", "--report", rep, "--events", evs)
	run.Env = env
	var out bytes.Buffer
	run.Stdout, run.Stderr = &out, &out
	run.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, run.Start())
	// pw-jack execs understudy: the same pid. One of its workers is
	// killed a second in; the checks of the report come first, so that a
	// run whose workers never settled says why.
	killed := 0
	for deadline := time.Now().Add(4 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if w := workersNow(run.Process.Pid); len(w) >= 2 {
			time.Sleep(time.Second)
			if syscall.Kill(w[0], syscall.SIGKILL) == nil {
				killed = w[0]
			}
			break
		}
	}
	err := run.Wait()
	require.NoError(t, err, "%s", &out)

	var report struct {
		ServerPeriod int      `json:"server_period_frames"`
		CallbackPrio int      `json:"callback_priority"`
		WorkerPrio   int      `json:"worker_priority"`
		MonitorPrio  int      `json:"monitor_priority"`
		Callbacks    uint64   `json:"callbacks"`
		Failovers    int      `json:"failovers"`
		FailedLanes  []string `json:"failed_lanes"`
		Lanes        []struct {
			Delivered uint64 `json:"delivered"`
			Xruns     uint64 `json:"xruns"`
		} `json:"lanes"`
	}
	b, err := os.ReadFile(rep)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &report))
	t.Logf("under PipeWire: period %d, %d callbacks, callback FIFO %d, workers FIFO %d, %d failovers, lane xruns %d",
		report.ServerPeriod, report.Callbacks, report.CallbackPrio, report.WorkerPrio, report.Failovers, report.Lanes[0].Xruns)
	require.Equal(t, 64, report.ServerPeriod)
	require.Greater(t, report.Callbacks, uint64(48000/64), "fewer than a second of callbacks in 6 s")
	// PipeWire makes its data thread real-time when it may (as root here):
	// the workers belong just below it.
	if pwRT(pw.Process.Pid) {
		require.Positive(t, report.CallbackPrio, "PipeWire runs the callback real-time, understudy did not see it")
		require.Equal(t, report.CallbackPrio-1, report.WorkerPrio)
		// The monitor above the callback (PipeWire's 88 is above the
		// monitor's usual 80), or a hung worker could starve it.
		require.Greater(t, report.MonitorPrio, report.CallbackPrio, "the monitor must run above the callback")
	}
	require.Empty(t, report.FailedLanes)
	require.Positive(t, report.Lanes[0].Delivered)
	require.NotZero(t, killed, "no worker to kill: %s", &out)
	ev, err := os.ReadFile(evs)
	require.NoError(t, err)
	require.Contains(t, string(ev), `"exit_signal":9,"kind":"worker_exited","lane":-1,"pid":`+strconv.Itoa(killed))
	require.Empty(t, workersOf(run.Process.Pid), "workers left after the run")
}

// pwRT says whether one of pipewire's threads runs SCHED_FIFO.
func pwRT(pid int) bool {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/stat")
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		// Field 41 of stat (policy) is the 39th after the command name.
		if len(f) > 38 && f[38] == "1" {
			return true
		}
	}
	return false
}
