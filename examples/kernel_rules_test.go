// What the SDK promises a kernel author, checked through workers built from
// the example's source with one thing changed each: a name that shadows a
// built-in is refused, every error says the right thing (rebuild only for
// an ABI mismatch), a kernel that hangs cannot hang the host, and a render
// whose input kills its workers does not pass for a clean one.
package examples_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/understudy-rt/understudy/internal/workerbin"
	"github.com/understudy-rt/understudy/runtime/catalog"
	"github.com/understudy-rt/understudy/runtime/wav"
)

// variantOf builds a worker from the example kernel with each old→new
// replacement applied; every replacement must apply.
func variantOf(t *testing.T, name string, repl ...string) string {
	t.Helper()
	code, err := os.ReadFile(filepath.Join(root(t), "examples/softclip/softclip.c"))
	if err != nil {
		t.Fatal(err)
	}
	src := string(code)
	for i := 0; i < len(repl); i += 2 {
		if !strings.Contains(src, repl[i]) {
			t.Fatalf("the example has no %q to replace", repl[i])
		}
		src = strings.Replace(src, repl[i], repl[i+1], 1)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, name+".c")
	os.WriteFile(file, []byte(src), 0o644)
	worker := filepath.Join(dir, name+"-worker")
	buildUser(t, file, worker)
	return worker
}

func hostBin(t *testing.T) string {
	t.Helper()
	p, err := workerbin.HostPath()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// understudy runs bin/understudy as a process; it returns the exit status
// and stderr.
func understudy(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, hostBin(t), args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir()) // where a poison block's repro goes by default
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee) && ctx.Err() == nil:
		return ee.ExitCode(), stderr.String()
	}
	t.Fatalf("understudy %v: %v %s", args, err, stderr.Bytes())
	return 0, ""
}

func oneLine(t *testing.T, stderr string) {
	t.Helper()
	if n := strings.Count(strings.TrimSpace(stderr), "\n"); n != 0 {
		t.Errorf("want one line, got %d:\n%s", n+1, stderr)
	}
}

// A user kernel named like a built-in used to make a chain naming it run
// the built-in's AVX2 code with the user's parameters. The worker now
// refuses to start, before any kernel code runs, and the host says why.
func TestUserKernelNamedLikeABuiltinIsRefused(t *testing.T) {
	w := variantOf(t, "gain", `.name = "softclip"`, `.name = "gain"`)
	in := filepath.Join(t.TempDir(), "in.wav")
	wav.WriteFile(in, &wav.Audio{Rate: 48000, Channels: 2, Samples: make([]float32, 2*4800)})
	for _, args := range [][]string{
		{"kernels", "--worker", w},
		{"process", "--worker", w, "--in", in, "--out", filepath.Join(filepath.Dir(in), "out.wav"), "--chain", "gain db=-6"},
	} {
		code, stderr := understudy(t, args...)
		if code != 2 || !strings.Contains(stderr, `user kernel "gain" takes the name of a built-in kernel`) {
			t.Errorf("%s: exit %d, %q; want 2 and the name clash", args[0], code, stderr)
		}
		oneLine(t, stderr)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(in), "out.wav")); err == nil {
		t.Error("an output was written")
	}
}

// Each kind of broken kernel gets exit 2 and advice that fits it: only a
// kernel of another ABI is told to rebuild.
func TestKernelErrorsGiveTheRightAdvice(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.wav")
	wav.WriteFile(in, &wav.Audio{Rate: 48000, Channels: 2, Samples: make([]float32, 2*4800)})
	cases := []struct {
		name    string
		repl    []string
		chain   string
		want    string
		rebuild bool
	}{
		{"bad name", []string{`.name = "softclip"`, `.name = "soft clip"`}, "gain", "has a name a chain cannot use", false},
		{"state too big", []string{"return sizeof(softclip_state);", "return 1u << 20;"}, "softclip", "asks for 1048576 bytes of state", false},
		{"negative range", []string{`{"drive", "dB", 0.0f, 36.0f, 6.0f, 0}`, `{"drive", "dB", 36.0f, 0.0f, 6.0f, 0}`}, "softclip", "the range must be finite and hold the default", false},
		{"init refuses", []string{"s->drive = db_to_gain(params[0]);", "s->drive = db_to_gain(params[0]); if (params[0] > 30.0f) return -1;"},
			"softclip drive=33", "kernel softclip refused its parameters", false},
		{"other ABI", []string{".abi_version = US_KERNEL_ABI_VERSION", ".abi_version = 999"}, "softclip", "built for ABI 999", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := variantOf(t, "k", c.repl...)
			out := filepath.Join(dir, "out.wav")
			code, stderr := understudy(t, "process", "--worker", w, "--in", in, "--out", out, "--chain", c.chain)
			if code != 2 || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, %q; want 2 and %q", code, stderr, c.want)
			}
			if got := strings.Contains(strings.ToLower(stderr), "rebuild"); got != c.rebuild {
				t.Errorf("advises a rebuild: %v, want %v: %s", got, c.rebuild, stderr)
			}
			oneLine(t, stderr)
			if _, err := os.Stat(out); err == nil {
				t.Error("an output was written")
			}
		})
	}
}

// alive lists the processes whose command line contains s.
func alive(s string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(s)) {
			out = append(out, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

func gone(s string) []string {
	for end := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if a := alive(s); len(a) == 0 || time.Now().After(end) {
			return a
		}
	}
}

// A kernel whose state_bytes never returns used to hang every command that
// lists kernels, for ever. The query now has a deadline, the worker is
// killed with everything it started, and the error says what hung.
func TestListingKernelsHasADeadline(t *testing.T) {
	defer func(d time.Duration) { catalog.ListTimeout = d }(catalog.ListTimeout)
	catalog.ListTimeout = 500 * time.Millisecond
	hang := variantOf(t, "hang", "    (void)channels;\n    return sizeof(softclip_state);",
		"    volatile unsigned spin = channels;\n    while (spin) {}\n    return sizeof(softclip_state);")
	// A worker that leaves a child of its own running as well.
	forker := filepath.Join(t.TempDir(), "forker")
	os.WriteFile(forker, []byte("#!/bin/sh\nsleep 1000 &\nexec sleep 1001\n"), 0o755)
	for _, w := range []string{hang, forker} {
		_, err := catalog.Load(w)
		if err == nil || !strings.Contains(err.Error(), "did not list its kernels within 500ms") || !strings.Contains(err.Error(), "state_bytes") {
			t.Errorf("%s: %v; want a deadline naming state_bytes", w, err)
		}
		if a := gone(w); len(a) != 0 {
			t.Errorf("left running: %v", a)
		}
	}
	// One that answers at once, and badly, leaving a child behind.
	quick := filepath.Join(t.TempDir(), "quick")
	os.WriteFile(quick, []byte("#!/bin/sh\nsleep 1002 &\necho '{not json'\n"), 0o755)
	if _, err := catalog.Load(quick); err == nil || !strings.Contains(err.Error(), "does not read") {
		t.Errorf("%s: %v", quick, err)
	}
	if a := gone("sleep 100"); len(a) != 0 {
		t.Errorf("the worker's own children were left running: %v", a)
	}
}

// A block whose input kills every worker is bypassed (its output is the dry
// input). process used to exit 0 all the same; now it fails, saying how many
// and where, and writes nothing, unless --allow-bypass makes it a warning.
func TestProcessFailsOnBypassedBlocks(t *testing.T) {
	w := variantOf(t, "poison",
		"#include <stdint.h>\n", "#include <stdint.h>\n#include <stdlib.h>\n",
		"    const size_t n = (size_t)frames * channels;\n",
		"    const size_t n = (size_t)frames * channels;\n    if (buf[0] == 0.625f) abort();\n")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.wav"), filepath.Join(dir, "out.wav")
	const block = 256
	a := &wav.Audio{Rate: 48000, Channels: 2, Samples: make([]float32, 2*48000)}
	for i := range a.Samples {
		a.Samples[i] = float32(math.Sin(float64(i)*0.01)) * 0.1
	}
	poisoned := []int{40, 100} // at 0.213 s and 0.533 s
	for _, b := range poisoned {
		a.Samples[b*block*2] = 0.625
	}
	if err := wav.WriteFile(in, a); err != nil {
		t.Fatal(err)
	}
	args := []string{"process", "--worker", w, "--in", in, "--out", out, "--chain", "softclip drive=6", "--block", "256"}
	code, stderr := understudy(t, args...)
	if code != 1 || !strings.Contains(stderr, "2 blocks bypassed") || !strings.Contains(stderr, "at 0.213 s, 0.533 s") {
		t.Errorf("exit %d, %q; want 1 and 2 blocks bypassed at 0.213 s, 0.533 s", code, stderr)
	}
	oneLine(t, stderr)
	if _, err := os.Stat(out); err == nil {
		t.Error("the output was written although blocks were bypassed")
	}
	code, stderr = understudy(t, append(args, "--allow-bypass")...)
	if code != 0 || !strings.Contains(stderr, "warning: 2 blocks bypassed") {
		t.Fatalf("--allow-bypass: exit %d, %q; want 0 and a warning", code, stderr)
	}
	got, err := wav.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	// The bypassed blocks hold the dry input, the others the chain's output.
	for _, b := range poisoned {
		i := b * block * 2
		if got.Samples[i] != a.Samples[i] || got.Samples[i+2] != a.Samples[i+2] {
			t.Errorf("block %d: %g %g, want the dry %g %g", b, got.Samples[i], got.Samples[i+2], a.Samples[i], a.Samples[i+2])
		}
	}
	if i := 10 * block * 2; got.Samples[i+1] == a.Samples[i+1] {
		t.Errorf("block 10 is dry: %g", got.Samples[i+1])
	}
}

// A kernel that kills its worker on every block: the lane is given up
// after its restarts back off, and process stops at once with one line
// naming the lane and its kernel and quoting the last thing the kernel
// printed, exit 1, and no output, instead of
// waiting out its stall limit or writing dry audio.
func TestProcessStopsOnAGivenUpLane(t *testing.T) {
	w := variantOf(t, "dies",
		"#include <stdint.h>\n", "#include <stdint.h>\n#include <stdio.h>\n#include <unistd.h>\n",
		"    const size_t n = (size_t)frames * channels;\n",
		"    const size_t n = (size_t)frames * channels;\n    fprintf(stderr, \"softclip: cannot go on\\n\");\n    _exit(3);\n")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.wav"), filepath.Join(dir, "out.wav")
	a := &wav.Audio{Rate: 48000, Channels: 2, Samples: make([]float32, 2*48000)}
	if err := wav.WriteFile(in, a); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, stderr := understudy(t, "process", "--worker", w, "--in", in, "--out", out, "--chain", "softclip drive=6")
	if code != 1 || !strings.Contains(stderr, "lane 0 (softclip)") || !strings.Contains(stderr, "died in a row") ||
		!strings.Contains(stderr, `its last worker printed: "softclip: cannot go on"`) {
		t.Errorf("exit %d, %q; want 1 and the lane given up, with what its kernel printed", code, stderr)
	}
	oneLine(t, stderr)
	if _, err := os.Stat(out); err == nil {
		t.Error("an output was written for a lane that never worked")
	}
	t.Logf("gave up after %v", time.Since(start))
}
