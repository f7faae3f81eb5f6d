package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/understudy-rt/understudy/internal/jacktest"
	"github.com/understudy-rt/understudy/internal/rttest"
	"github.com/understudy-rt/understudy/runtime/wav"
)

// The README's new-user flow, against a dummy server, through the CLI: a
// user runs `understudy run --backend jack --connect ... --connect-out ...`,
// records its output, and kills workers with SIGKILL from another shell;
// the recording has no gap.
//
// Lane 0 runs a generator chain: what the recorder heard from it is, sample
// for sample, `understudy process` of the same chain, through every kill.
// Its onset (the first block through the latency) fixes where the render
// starts in the recording. Lane 1 passes a player's signal through (gain
// 0 dB): every sample it played is the player's from exactly the latency
// understudy reports in its ports (read from the recorder's side) earlier,
// which checks that report against the audio. The events list every kill as a SIGKILL of
// that pid. The fallback is silence, so a late or missing block cannot pass
// for a right one.
func TestRunCaptureBitExactThroughKills(t *testing.T) {
	const (
		rate, period, block = 48000, 64, 64
		latency             = 16 // blocks: the connections are made well within it
		seconds             = 4
		chain               = "sine f=997 db=-6 | lowpass f=3000"
	)
	// Four seconds of live audio without a gap, through a server, a player
	// and a recorder that all keep real time: without the privilege the
	// unprivileged server and clients miss cycles (measured as uid 65534:
	// 5 attempts of 5 disturbed, 2 to 13 server xruns each), and nothing is
	// left to compare.
	rttest.RequireRT(t)
	srv := jacktest.StartServer(t, rate, period)
	ref := processRef(t, chain, (seconds+2)*rate)

	rttest.UnderNoise(t, 5, func(n int) rttest.Attempt {
		dir := t.TempDir()
		rep, evs := filepath.Join(dir, "run.json"), filepath.Join(dir, "events.jsonl")
		playName, recName, name := jacktest.UniqueName("play"), jacktest.UniqueName("rec"), jacktest.UniqueName("usrun")
		play, err := jacktest.NewPlayer(srv.Name, playName, 2)
		require.NoError(t, err)
		defer play.Close()
		rec, err := jacktest.NewRecorder(srv.Name, recName, 2, rate*(seconds+2))
		require.NoError(t, err)
		defer rec.Close()
		// The player's out_1 goes to lane 0's input (a generator ignores
		// it), out_2 to lane 1's.
		done := runAsync("run", "--backend", "jack", "--server", srv.Name, "--worker", worker(t), "--name", name,
			"--duration", fmt.Sprintf("%ds", seconds), "--channels", "1", "--lane", "0="+chain, "--lane", "1=gain db=0",
			"--latency", strconv.Itoa(latency), "--block", strconv.Itoa(block), "--fallback", "silence", "--spares", "1",
			"--connect", "^"+playName+":out_", "--connect-out", "^"+recName+":in_",
			"--events", evs, "--report", rep)

		require.Eventually(t, func() bool { return len(workerPIDs()) >= 3 }, 10*time.Second, 10*time.Millisecond, "workers never came up")
		// Three kills of a live worker, as a user would from another shell.
		var killed []int
		for k := 0; k < 3; k++ {
			time.Sleep(700 * time.Millisecond)
			for _, pid := range workerPIDs() {
				// Not one killed already (a zombie not yet reaped), nor
				// one the supervisor replaced meanwhile.
				if !slices.Contains(killed, pid) && syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed = append(killed, pid)
					break
				}
			}
		}
		// The latency understudy reports, as the recorder's input sees it
		// (its capture latency), read while the graph is whole.
		lo, hi, err := rec.PortLatency(rec.Port(1), false)
		require.NoError(t, err)
		require.Equal(t, lo, hi)
		L := int(lo)
		runOK(t, done)
		got := rec.Close()
		pl := play.Close()
		require.Empty(t, workerPIDs(), "workers left after the run")

		var report struct {
			ServerXruns uint64 `json:"server_xruns"`
			Failovers   int    `json:"failovers"`
			Lanes       []struct {
				Xruns uint64 `json:"xruns"`
			} `json:"lanes"`
		}
		b, err := os.ReadFile(rep)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &report))

		var a rttest.Attempt
		// Every kill is an event: a worker that exited on SIGKILL, by pid.
		exited := map[int]bool{}
		f, err := os.Open(evs)
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var e struct {
				Kind       string `json:"kind"`
				PID        int    `json:"pid"`
				ExitSignal int    `json:"exit_signal"`
			}
			require.NoError(t, json.Unmarshal(sc.Bytes(), &e), "%s", sc.Text())
			if e.Kind == "worker_exited" && e.ExitSignal == int(syscall.SIGKILL) {
				exited[e.PID] = true
			}
		}
		f.Close()
		for _, pid := range killed {
			if !exited[pid] {
				a.Problems = append(a.Problems, fmt.Sprintf("no worker_exited event for the SIGKILL of %d", pid))
			}
		}
		if L != latency*block {
			a.Problems = append(a.Problems, fmt.Sprintf("understudy reports %d frames of latency, runs with %d", L, latency*block))
		}
		if len(killed) < 3 {
			a.Problems = append(a.Problems, fmt.Sprintf("killed only %v", killed))
		}
		if report.Failovers < 1 {
			a.Problems = append(a.Problems, fmt.Sprintf("%d failovers for 3 kills", report.Failovers))
		}

		// Lane 1: the player's signal, exactly L frames later, from the
		// connections to the end of the run (the recorder hears silence
		// before and after).
		// Where the server skipped cycles (the recorder's gaps), the blocks
		// still inside the latency were pushed before the skip and come out
		// after it: there the player's signal is from further back, and
		// those L frames are not compared.
		passed, skipped := 0, 0
		for i := firstSound(got.Data[1]); i >= 0 && i <= lastSound(got.Data[1]); i++ {
			t0, ok := got.FrameAt(i)
			if !ok {
				break
			}
			if afterGap(got, i, L) {
				skipped++
				continue
			}
			want := jacktest.Signal(1, t0-uint32(L))
			if v := got.Data[1][i]; math.Float32bits(v) != math.Float32bits(want) {
				a.Problems = append(a.Problems, fmt.Sprintf("lane 1 at frame %d: got %g, the player's from %d frames before %g", t0, v, L, want))
				break
			}
			passed++
		}
		// Lane 0: the offline render, from wherever the recorder's
		// connection came in (its first block fixes where that is in the
		// render) to the end, with no sample missing, repeated or changed.
		matched, at := 0, -1
		if i0 := firstSound(got.Data[0]); i0 >= 0 && i0+block <= len(got.Data[0]) {
			at = find(ref, got.Data[0][i0:i0+block])
			if at < 0 {
				a.Problems = append(a.Problems, fmt.Sprintf("lane 0's first block heard (frame %d on) is nowhere in process's render", i0))
			}
			for i := i0; at >= 0 && i <= lastSound(got.Data[0]); i++ {
				p := at + (i - i0)
				if p >= len(ref) {
					break
				}
				if v := got.Data[0][i]; math.Float32bits(v) != math.Float32bits(ref[p]) {
					a.Problems = append(a.Problems, fmt.Sprintf("lane 0 at stream position %d: got %g, process rendered %g", p, v, ref[p]))
					break
				}
				matched++
			}
		}
		t.Logf("attempt %d: lane 0 %d frames bit-exact with process from its position %d, lane 1 %d frames = the player's %d frames before (%d after server gaps not compared); %d kills, %d failovers; lane xruns %v, server xruns %d",
			n, matched, at, passed, L, skipped, len(killed), report.Failovers, report.Lanes, report.ServerXruns)
		if matched < (seconds-1)*rate || passed < (seconds-1)*rate {
			a.Problems = append(a.Problems, fmt.Sprintf("compared only %d (lane 0) and %d (lane 1) frames of %d", matched, passed, len(got.Data[0])))
		}
		// What the machine did that breaks the frame mapping or the audio
		// without any fault of understudy's.
		if report.ServerXruns > 0 {
			a.Disturbed = append(a.Disturbed, fmt.Sprintf("%d server xruns", report.ServerXruns))
		}
		for l, ls := range report.Lanes {
			if ls.Xruns > 0 {
				a.Disturbed = append(a.Disturbed, fmt.Sprintf("lane %d: %d blocks late", l, ls.Xruns))
			}
		}
		if got.Gaps > 0 || pl.Gaps > 0 {
			a.Disturbed = append(a.Disturbed, fmt.Sprintf("the recorder missed %d runs of cycles, the player %d", got.Gaps, pl.Gaps))
		}
		return a
	})
}

// afterGap says whether sample i is within n frames after a gap of the
// recording.
func afterGap(r *jacktest.Recording, i, n int) bool {
	for _, g := range r.GapPos {
		if g <= i && i < g+n {
			return true
		}
	}
	return false
}

// runOK waits for an `understudy run --duration` started with runAsync and
// requires that it stopped on its own, with exit status 0.
func runOK(t *testing.T, done chan runResult) {
	t.Helper()
	select {
	case r := <-done:
		require.Equal(t, 0, r.code, "stdout %s\nstderr %s", r.stdout, r.stderr)
	case <-time.After(30 * time.Second):
		t.Fatal("understudy run did not stop after its --duration")
	}
}

func firstSound(x []float32) int {
	for i, v := range x {
		if v != 0 {
			return i
		}
	}
	return -1
}

func lastSound(x []float32) int {
	for i := len(x) - 1; i >= 0; i-- {
		if x[i] != 0 {
			return i
		}
	}
	return -1
}

// find is the first index of ref that starts a bit-exact copy of x, or -1.
func find(ref, x []float32) int {
	for at := 0; at+len(x) <= len(ref); at++ {
		k := 0
		for k < len(x) && math.Float32bits(ref[at+k]) == math.Float32bits(x[k]) {
			k++
		}
		if k == len(x) {
			return at
		}
	}
	return -1
}

// processRef is `understudy process` of chain over frames of silence: mono,
// 48 kHz, blocks of 64.
func processRef(t *testing.T, chain string, frames int) []float32 {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "silence.wav"), filepath.Join(dir, "ref.wav")
	require.NoError(t, wav.WriteFile(in, &wav.Audio{Rate: 48000, Channels: 1, Samples: make([]float32, frames)}))
	code, stdout, stderr := runCLI("process", "--worker", worker(t), "--in", in, "--out", out, "--chain", chain, "--block", "64")
	require.Equal(t, 0, code, "process: %s %s", stdout, stderr)
	a, err := wav.Read(out)
	require.NoError(t, err)
	return a.Samples
}
