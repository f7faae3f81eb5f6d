package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/understudy-rt/understudy/internal/rttest"
	"github.com/understudy-rt/understudy/internal/workerbin"
	"github.com/understudy-rt/understudy/runtime/wav"
)

func worker(t *testing.T) string {
	p, err := workerbin.Path()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// children counts this process's child processes.
func children(t *testing.T) int { return len(childPIDs("")) }

// childPIDs lists this process's children whose command name starts with
// prefix ("" for all).
func childPIDs(prefix string) []int {
	me := strconv.Itoa(os.Getpid())
	var out []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < 0 {
			continue
		}
		f := strings.Fields(s[close+2:])
		if len(f) > 1 && f[1] == me && strings.HasPrefix(s[open+1:close], prefix) {
			pid, _ := strconv.Atoi(strings.Fields(s)[0])
			out = append(out, pid)
		}
	}
	return out
}

func TestBadInputExitsTwoAndLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	w := worker(t)
	notExec := filepath.Join(dir, "not-exec")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	failing := filepath.Join(dir, "failing-worker")
	os.WriteFile(failing, []byte("#!/bin/sh\necho 'I am not a worker' >&2\nexit 3\n"), 0o755)
	bad := filepath.Join(dir, "bad.wav")
	os.WriteFile(bad, []byte("ID3\x03 definitely not a wav file"), 0o644)
	other := filepath.Join(dir, "44k.wav")
	if err := wav.WriteFile(other, &wav.Audio{Rate: 44100, Channels: 2, Samples: make([]float32, 2*4410)}); err != nil {
		t.Fatal(err)
	}
	three := filepath.Join(dir, "3ch.wav")
	if err := wav.WriteFile(three, &wav.Audio{Rate: 48000, Channels: 3, Samples: make([]float32, 3*4800)}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.wav")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"block too big", []string{"--block", "5000"}, "--block 5000 is out of range"},
		{"block too small", []string{"--block", "4"}, "--block 4 is out of range"},
		{"rate", []string{"--rate", "1000"}, "--rate 1000 is out of range"},
		{"too many lanes", []string{"--lanes", "99"}, "--lanes 99"},
		{"missing worker", []string{"--worker", filepath.Join(dir, "nope")}, "build it with `make`"},
		{"worker not executable", []string{"--worker", notExec}, "not executable"},
		{"worker fails handshake", []string{"--worker", failing}, "I am not a worker"},
		{"malformed wav", []string{"--in", bad}, "not a WAV file"},
		{"wav of another rate", []string{"--in", other}, "44100 Hz but --rate is 48000"},
		{"channels do not split", []string{"--in", three}, "3 channels"},
		{"unwritable output", []string{"--out", filepath.Join(notExec, "x.wav")}, "--out"},
		{"zero spares with faults", []string{"--spares", "0"}, "--spares 0"},
		{"unknown fault", []string{"--faults", "segv,melt"}, "unknown fault kind \"melt\""},
		{"bad chain", []string{"--chain", "lowpass f=99999"}, "f=99999 is out of range"},
		{"unknown flag", []string{"--frobnicate"}, "frobnicate"},
		{"plot of another format", []string{"--plot", filepath.Join(dir, "p.gif")}, "--plot"},
		{"no repro directory", []string{"--repro-dir", filepath.Join(dir, "nope")}, "--repro-dir"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"demo", "--duration", "200ms", "--out", out, "--report", filepath.Join(dir, "r.json")}, c.args...)
			if !contains(c.args, "--worker") {
				args = append(args, "--worker", w)
			}
			code, _, stderr := runCLI(args...)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr: %s", code, stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr %q does not say %q", stderr, c.want)
			}
			if strings.Count(strings.TrimSpace(stderr), "\n") > 2 {
				t.Errorf("want one clear error, got:\n%s", stderr)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%s was left behind", out)
			}
			if n := children(t); n != 0 {
				t.Errorf("%d child processes left behind", n)
			}
			left, _ := filepath.Glob(filepath.Join(dir, ".*"))
			if len(left) != 0 {
				t.Errorf("temporary files left behind: %v", left)
			}
		})
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestHelpAndVersion(t *testing.T) {
	if code, out, _ := runCLI("version"); code != 0 || !strings.Contains(out, "understudy") {
		t.Errorf("version: exit %d, %q", code, out)
	}
	if code, out, _ := runCLI("demo", "--help"); code != 0 || !strings.Contains(out, "-fault-every") {
		t.Errorf("demo --help: exit %d, %q", code, out)
	}
	if code, _, _ := runCLI("frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

type demoReport struct {
	Privileged        bool    `json:"privileged"`
	Blocks            int     `json:"blocks"`
	Xruns             int     `json:"xruns"`
	LostBlocks        int     `json:"lost_blocks"`
	BitExact          bool    `json:"bit_exact"`
	MismatchedSamples int     `json:"mismatched_samples"`
	ClockLateMaxUS    float64 `json:"clock_wake_late_max_us"`
	Unplanned         []struct {
		PID   int    `json:"pid"`
		Path  string `json:"path"`
		Block uint64 `json:"block"`
	} `json:"unplanned_failovers"`
	Faults struct {
		Injected     int `json:"injected"`
		Detected     int `json:"detected"`
		ExpectedPath int `json:"detected_by_expected_path"`
		ByKind       map[string]struct {
			Injected int            `json:"injected"`
			Detected int            `json:"detected"`
			Path     map[string]int `json:"path"`
		} `json:"by_kind"`
	} `json:"faults"`
}

// The demo end to end, shortened: every fault kind injected while audio
// plays, every one detected by its expected path, nothing lost, bit-exact.
func TestDemoEndToEnd(t *testing.T) {
	rttest.UseRT(t) // the demo itself falls back to ordinary scheduling
	dir := t.TempDir()
	in := filepath.Join(dir, "in.wav")
	// A 4-channel file over 2 lanes, to exercise --in and the channel split.
	frames := 48000 * 3
	a := &wav.Audio{Rate: 48000, Channels: 4, Samples: make([]float32, 4*frames)}
	for i := range a.Samples {
		a.Samples[i] = float32((i*7919)%2000-1000) / 2000
	}
	if err := wav.WriteFile(in, a); err != nil {
		t.Fatal(err)
	}
	out, rep := filepath.Join(dir, "out.wav"), filepath.Join(dir, "report.json")
	// 10 periods of output latency and a 5 ms hang timeout, not the demo's
	// 2 and max(P/2, 500 µs), for the reason the supervisor's tests give:
	// this test judges paths and bits, and a shared machine's stalls are not
	// the code's. A run the machine disturbed (a failover nobody injected,
	// or a clock wake-up later than the headroom) and that failed a check
	// proves nothing and is run again, at most 4 times in all
	// (rttest.UnderNoise).
	const latency, period = 10, 1333.3 // µs at 64 frames, 48 kHz
	rttest.UnderNoise(t, 4, func(int) rttest.Attempt {
		code, stdout, stderr := runCLI("demo", "--in", in, "--fault-every", "100ms", "--out", out, "--report", rep,
			"--latency", fmt.Sprint(latency), "--hang-timeout", "5ms", "--worker", worker(t))
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		var r demoReport
		b, err := os.ReadFile(rep)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		a := rttest.Attempt{Report: func() { t.Log(stdout) }}
		if r.LostBlocks != 0 {
			a.Problems = append(a.Problems, fmt.Sprintf("lost %d blocks", r.LostBlocks))
		}
		if !r.BitExact {
			a.Problems = append(a.Problems, fmt.Sprintf("not bit-exact: %d samples differ (%d xruns)", r.MismatchedSamples, r.Xruns))
		}
		if r.Faults.Injected < 16 || r.Faults.Detected != r.Faults.Injected || r.Faults.ExpectedPath != r.Faults.Injected {
			a.Problems = append(a.Problems, fmt.Sprintf("faults: %d injected, %d detected, %d by the expected path", r.Faults.Injected, r.Faults.Detected, r.Faults.ExpectedPath))
		}
		if len(r.Faults.ByKind) != 8 {
			a.Problems = append(a.Problems, fmt.Sprintf("%d fault kinds injected, want all 8", len(r.Faults.ByKind)))
		}
		for _, u := range r.Unplanned {
			a.Disturbed = append(a.Disturbed, fmt.Sprintf("unplanned %s failover of pid %d at block %d", u.Path, u.PID, u.Block))
		}
		if r.ClockLateMaxUS > (latency-1)*period {
			a.Disturbed = append(a.Disturbed, fmt.Sprintf("clock woke %.0f µs late", r.ClockLateMaxUS))
		}
		return a
	})
	got, err := wav.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	if got.Channels != 4 || got.Rate != 48000 || got.Frames() != frames {
		t.Errorf("output %d ch %d Hz %d frames, want the input's 4 ch 48000 Hz %d frames", got.Channels, got.Rate, got.Frames(), frames)
	}
	if n := children(t); n != 0 {
		t.Errorf("%d child processes left behind", n)
	}
}

// process renders a file through supervised workers: a unity chain gives the
// input back bit for bit, a real chain equals the in-process reference, and
// the output keeps the input's rate, channels and length.
func TestProcessRendersFiles(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.wav")
	frames := 48000/2 + 17 // not a whole number of blocks
	a := &wav.Audio{Rate: 44100, Channels: 2, Samples: make([]float32, 2*frames)}
	for i := range a.Samples {
		a.Samples[i] = float32((i*7919)%2000-1000) / 2000
	}
	if err := wav.WriteFile(in, a); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.wav")
	code, stdout, stderr := runCLI("process", "--in", in, "--out", out, "--chain", "gain db=0", "--lanes", "2", "--worker", worker(t))
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout, stderr)
	}
	got, err := wav.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	if got.Rate != 44100 || got.Channels != 2 || got.Frames() != frames {
		t.Fatalf("output %d Hz %d ch %d frames", got.Rate, got.Channels, got.Frames())
	}
	for i := range a.Samples {
		if got.Samples[i] != a.Samples[i] {
			t.Fatalf("sample %d: %g, want %g (unity chain)", i, got.Samples[i], a.Samples[i])
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--chain", "gain db=0"}, "--in, --out and --chain are required"},
		{[]string{"--in", in, "--out", out, "--chain", "lowpass f=30000"}, "f=30000 is out of range"},
		{[]string{"--in", in, "--out", out, "--chain", "gain", "--lanes", "3"}, "cannot split evenly"},
		{[]string{"--in", in, "--out", out, "--chain", "gain", "--variant", "avx9000"}, "no avx9000 variant"},
	} {
		code, _, stderr := runCLI(append([]string{"process", "--worker", worker(t)}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("process %v: exit %d, %q; want 2 and %q", c.args, code, stderr, c.want)
		}
	}
}

func TestKernelsListsSchemaAndVariants(t *testing.T) {
	code, out, stderr := runCLI("kernels", "--worker", worker(t))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"lowpass", "gain", "f         number  10..20000 Hz, default 1000", "sections  integer 1..8, default 1\n", "db        number  -120..24 dB, default 0, live", ">*scalar"} {
		if !strings.Contains(out, want) {
			t.Errorf("kernels output lacks %q:\n%s", want, out)
		}
	}
}
