package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The tail keeps the last bytes, however much was written and in whatever
// pieces: the ring alone, handed more than it holds, would keep the first.
func TestOutputTailKeepsTheLastBytes(t *testing.T) {
	var all bytes.Buffer
	var tail outputTail
	for i := 0; i < 2000; i++ {
		line := fmt.Sprintf("line %d\n", i)
		all.WriteString(line)
		tail.Write([]byte(line))
	}
	big := bytes.Repeat([]byte("x"), 3*outputTailBytes)
	big = append(big, "the end\n"...)
	all.Write(big)
	tail.Write(big)
	want := all.Bytes()[all.Len()-outputTailBytes:]
	if got := tail.String(); got != string(want) {
		t.Fatalf("tail holds %d bytes ending %q; want the last %d ending %q", len(got), got[max(0, len(got)-20):], len(want), want[len(want)-20:])
	}
	if got := tailLines(tail.String(), 10, true); got != "the end" && !strings.HasSuffix(got, "the end") {
		t.Errorf("last lines %q", got)
	}
	if got := tailLines("a\nb\nc\nd\n\n", 2, false); got != "c\nd" {
		t.Errorf("tailLines: %q, want c, d", got)
	}
}

// A kernel's last words reach its failure events: the hostile kernel prints
// a line on its trigger block and crashes, twice (the block is then
// bypassed); both failovers and both deaths carry the line, taken off the
// monitor thread from the worker's ring.
func TestFailureEventCarriesWorkersLastLines(t *testing.T) {
	worker := hostileWorker(t)
	r := runHostile(t, worker, modePrintCrash, 2, Config{ReproDir: t.TempDir()})
	const said = "hostile: this block starts with 12.3 and I cannot take it"
	var failovers, exits int
	for _, e := range r.events {
		switch {
		case e.Kind == EvFailover:
			failovers++
			if !strings.Contains(e.Output, said) {
				t.Errorf("failover of pid %d (path %v): output %q; want the kernel's line", e.PID, e.Path, e.Output)
			}
		case e.Kind == EvWorkerExited && e.ExitSignal != 0:
			exits++
			if !strings.Contains(e.Output, said) {
				t.Errorf("death of pid %d by signal %d: output %q; want the kernel's line", e.PID, e.ExitSignal, e.Output)
			}
		case e.Kind == EvWorkerExited && e.Output != "":
			t.Errorf("a clean exit of pid %d carries output %q", e.PID, e.Output)
		}
	}
	if failovers != 2 || exits != 2 {
		t.Errorf("%d failovers, %d deaths by signal; want 2 each", failovers, exits)
	}
}

// Only a worker that refused the layout is told to rebuild: the same exit
// status for another reason (here, a worker whose system refused it
// something) gets its own words and no rebuild advice. Both workers are
// stand-ins that say what a real one says and exit as it does.
func TestOnlyALayoutMismatchAdvisesARebuild(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		said    string
		rebuild bool
	}{
		{"understudy-worker: slot layout differs from this worker's (layout 3, kernel ABI 1): rebuild the worker with the host", true},
		{"understudy-worker: close_range: Operation not permitted", false},
	} {
		w := filepath.Join(dir, "worker")
		os.Remove(w)
		os.WriteFile(w, []byte("#!/bin/sh\ncat >&2 <<'EOF'\n"+c.said+"\nEOF\nexit 65\n"), 0o755)
		sup, err := New(Config{Worker: w, Lanes: testLanes(t, 1, 64, 48000), WorkerCPU: -1, Handshake: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		err = sup.Start(nil)
		sup.Close()
		var se *SpawnError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), c.said) {
			t.Fatalf("%v; want the worker's failed handshake with its words", err)
		}
		if got := strings.Contains(err.Error(), "Rebuild it with `make`"); got != c.rebuild {
			t.Errorf("%q: advises a rebuild: %v, want %v", c.said, got, c.rebuild)
		}
	}
}
