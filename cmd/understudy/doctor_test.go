package main

import (
	"strings"
	"testing"

	"github.com/understudy-rt/understudy/internal/doctor"
)

// TestDoctorRealRun runs the command on this machine: a line for every
// check, and an exit status that agrees with its fail lines.
func TestDoctorRealRun(t *testing.T) {
	code, out, errOut := runCLI("doctor", "--worker", worker(t))
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(doctor.Names) {
		t.Errorf("%d lines for %d checks:\n%s", len(lines), len(doctor.Names), out)
	}
	fails := 0
	for i, name := range doctor.Names {
		if i >= len(lines) {
			break
		}
		f := strings.Fields(lines[i])
		if len(f) < 3 || f[1] != name || (f[0] != "ok" && f[0] != "warn" && f[0] != "fail") {
			t.Errorf("line %d is not `ok|warn|fail %s finding`: %q", i, name, lines[i])
			continue
		}
		if f[0] == "fail" {
			fails++
		}
	}
	switch {
	case fails == 0 && code != 0:
		t.Errorf("no fail line but exit %d: %s", code, errOut)
	case fails > 0 && (code != 1 || !strings.Contains(errOut, "checks failed")):
		t.Errorf("%d fail lines but exit %d, stderr %q", fails, code, errOut)
	}
	if n := children(t); n != 0 {
		t.Errorf("doctor left %d children", n)
	}
}

func TestDoctorBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--latency", "-1s"}, "--latency -1s is out of range"},
		{[]string{"--latency", "11m"}, "--latency 11m0s is out of range"},
		{[]string{"--block", "4"}, "--block 4 is out of range"},
		{[]string{"--rate", "1"}, "--rate 1 is out of range"},
		{[]string{"--periods", "0"}, "--periods 0 is out of range"},
		{[]string{"--lanes", "0"}, "--lanes 0"},
		{[]string{"--nope"}, "flag provided but not defined"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		code, out, errOut := runCLI(append([]string{"doctor"}, c.args...)...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("doctor %v: exit %d, stdout %q, stderr %q; want 2, nothing, one line with %q", c.args, code, out, errOut, c.want)
		}
	}
}

// TestDoctorLatencyProbe: the probe prints its histogram, the worst case
// against the configured headroom, and its own check line.
func TestDoctorLatencyProbe(t *testing.T) {
	code, out, errOut := runCLI("doctor", "--worker", worker(t), "--latency", "200ms", "--periods", "4")
	for _, want := range []string{"latency probe: 150 wake-ups every 1.33 ms", "worst case", "configured --latency 4 (5.33 ms of headroom"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	last := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	f := strings.Fields(last[len(last)-1])
	if len(f) < 2 || f[1] != "latency" {
		t.Fatalf("last line is not the latency check: %q", last[len(last)-1])
	}
	if fails := strings.Count("\n"+out, "\nfail "); (fails == 0) != (code == 0) {
		t.Errorf("%d fail lines, exit %d: %s", fails, code, errOut)
	}
}
