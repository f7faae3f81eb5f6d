package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/understudy-rt/understudy/internal/jacktest"
)

func TestParseControl(t *testing.T) {
	ok := []struct {
		line string
		want controlCmd
	}{
		{"", controlCmd{}},
		{"   # a comment", controlCmd{}},
		{"set 0 1 f=2000", controlCmd{0, 1, []controlSet{{"f", 2000}}}},
		{"  set\t2 0 db=-6.5 q=0.5  # two at once", controlCmd{2, 0, []controlSet{{"db", -6.5}, {"q", 0.5}}}},
		{"set 0 0 f=1e3", controlCmd{0, 0, []controlSet{{"f", 1000}}}},
	}
	for _, c := range ok {
		got, err := parseControl(c.line)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("parseControl(%q) = %v, %v; want %v", c.line, got, err, c.want)
		}
	}
	bad := []struct{ line, want string }{
		{"sett 0 1 f=1", `unknown command "sett"`},
		{"set 0 1", "set wants a lane, a kernel and at least one NAME=VALUE"},
		{"set x 1 f=1", `lane "x" is not a lane number`},
		{"set -1 1 f=1", `lane "-1" is not a lane number`},
		{"set 0 one f=1", `kernel "one" is not a kernel's place`},
		{"set 0 1 f", `"f": want NAME=VALUE`},
		{"set 0 1 =3", `"=3": want NAME=VALUE`},
		{"set 0 1 f=loud", `"f=loud": f wants a number, got "loud"`},
	}
	for _, c := range bad {
		_, err := parseControl(c.line)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("parseControl(%q): %v; want one line with %q", c.line, err, c.want)
		}
	}
}

// Every line gets one answer line; a refused change does not stop the
// control, but stops the rest of its own line; the end of the run ends it.
func TestRunControlAnswersEveryLine(t *testing.T) {
	in := strings.Join([]string{
		"set 0 1 db=-3",
		"# nothing",
		"bogus",
		"set 0 0 f=100000 q=1",
		"set 1 0 f=500 q=2",
		"set 0 1 db=-1",
		"set 0 1 db=0",
	}, "\n")
	var calls []string
	var out strings.Builder
	runControl(strings.NewReader(in), &out, func(lane, kernel int, name string, v float64) (uint64, error) {
		if lane == 0 && kernel == 1 && v == 0 {
			return 0, errControlStopped
		}
		calls = append(calls, fmt.Sprintf("%d %d %s=%g", lane, kernel, name, v))
		if v > 20000 {
			return 0, errors.New("lane 0 kernel 0: lowpass: f=100000 is out of range 10..20000 Hz")
		}
		return uint64(40 + len(calls)), nil
	})
	wantCalls := "[0 1 db=-3 0 0 f=100000 1 0 f=500 1 0 q=2 0 1 db=-1]"
	if fmt.Sprint(calls) != wantCalls {
		t.Errorf("calls %v, want %s", calls, wantCalls)
	}
	want := `understudy: lane 0 kernel 1: db=-3 from block 41
understudy: control line 3: unknown command "bogus"; write: set LANE KERNEL NAME=VALUE
understudy: control line 4: lane 0 kernel 0: lowpass: f=100000 is out of range 10..20000 Hz
understudy: lane 1 kernel 0: f=500 from block 43
understudy: lane 1 kernel 0: q=2 from block 44
understudy: lane 0 kernel 1: db=-1 from block 45
`
	if out.String() != want {
		t.Errorf("answers:\n%s\nwant:\n%s", out.String(), want)
	}
}

// understudy run reads its live control from stdin: a change is answered
// with the block it applies from, a refused one with one line, and the run
// goes on to its end.
func TestRunControlOnStdin(t *testing.T) {
	srv := jacktest.StartServer(t, 48000, 64)
	in := strings.NewReader("set 0 1 db=-3\nset 0 0 f=880 db=-12\nset 0 0 sections=2\nset 0 7 db=0\n")
	r := runHost(t, in, "run", "--backend", "jack", "--server", srv.Name, "--worker", worker(t), "--duration", "2s",
		"--lanes", "1", "--channels", "1", "--chain", "sine f=440 | gain db=-6", "--latency", "8", "--name", "ustest_ctl")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{
		"understudy: lane 0 kernel 1: db=-3 from block ",
		"understudy: lane 0 kernel 0: f=880 from block ",
		"understudy: lane 0 kernel 0: db=-12 from block ",
		`understudy: control line 3: lane 0 kernel 0: sine has no parameter "sections"`,
		"understudy: control line 4: lane 0: kernel 7: its chain has kernels 0..1",
	} {
		if !strings.Contains(string(r.stderr), want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}
