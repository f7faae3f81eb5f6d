package main

// The isolation issue's table, run again as its user ran it: a user kernel
// built through the SDK (examples/hostile, `make user-worker`), driven by
// `understudy process` on a real file. The supervisor's own tests
// (supervisor/sandbox_test.go and friends) look inside; this one looks only
// at what a user sees: the exit status, the file, the processes left.

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/understudy-rt/understudy/internal/workerbin"
	"github.com/understudy-rt/understudy/runtime/wav"
)

const (
	hostileTriggerCLI = float32(12.345) // examples/hostile/hostile.c HOSTILE_TRIGGER
	hostileMarkCLI    = float32(4.321)  // what its thread mode writes into sample 1 of the block
	cliBlock          = 64
	cliTriggerBlock   = 7
	cliCeiling        = 15.848932 // +24 dBFS, the default ceiling
)

func buildHostileWorker(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "hostile-worker")
	if err := workerbin.BuildUser("examples/hostile/hostile.c", out); err != nil {
		t.Fatal(err)
	}
	return out
}

// What the user sees of one attack.
type outcome int

const (
	passes   outcome = iota // nothing to see: exit 0, no failover, the file is the input
	bypassed                // two owners die on the trigger block, which plays dry: exit 1 (0 and a warning with --allow-bypass)
	garbage                 // the owner's output is refused: no NaN, Inf or sample past the ceiling in the file
	failed                  // every block kills its worker: the lane is given up, exit 1, no file
	marked                  // an allowed thread marks one sample
)

var laneGivenUp = regexp.MustCompile(`lane [01]: lane failed: lane [01] \(hostile\)`)

func TestHostileKernelThroughProcess(t *testing.T) {
	worker := buildHostileWorker(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.wav")
	// Stereo over two lanes: lane 0 (channel 0) carries the trigger, lane 1
	// (channel 1) never does and must come out untouched whatever lane 0's
	// kernel did.
	const frames = 100 * cliBlock
	a := &wav.Audio{Rate: 48000, Channels: 2, Samples: make([]float32, 2*frames)}
	for i := range a.Samples {
		a.Samples[i] = float32(math.Sin(float64(i)*0.001)) * 0.5
	}
	a.Samples[2*cliTriggerBlock*cliBlock] = hostileTriggerCLI
	if err := wav.WriteFile(in, a); err != nil {
		t.Fatal(err)
	}
	rows := []struct {
		name string
		mode int
		want outcome
	}{
		{"kill(getppid(), SIGKILL)", 6, bypassed},
		{"open /proc/host/mem read-write", 11, bypassed},
		{"ptrace the host", 7, bypassed},
		{"write 1e8 over its lane's host fields", 19, passes},
		{"write 1e8 over its lane's host fields, then crash", 20, bypassed},
		{"fallocate(PUNCH_HOLE) on its region", 23, bypassed},
		{"MADV_REMOVE its own block", 21, bypassed},
		{"dup2 over its fds and print", 22, bypassed},
		{"fork", 1, bypassed},
		{"fork children, then crash", 2, bypassed},
		{"clear PR_SET_PDEATHSIG", 9, bypassed},
		{"socket", 3, bypassed},
		{"open a file", 4, bypassed},
		{"execve", 5, bypassed},
		{"SCHED_FIFO 99", 8, bypassed},
		{"mlock 2 GiB", 10, bypassed},
		{"NaN in its state", 16, garbage},
		{"+80 dB on one block", 17, garbage},
		{"_exit on one block", 13, bypassed},
		{"crash with every signal blocked", 14, bypassed},
		{"_exit on every block", 15, failed},
		{"start and join a thread", 12, marked},
		{"800 µs per block", 18, passes},
	}
	for _, row := range rows {
		t.Run(fmt.Sprintf("%02d %s", row.mode, row.name), func(t *testing.T) {
			out := filepath.Join(dir, fmt.Sprintf("out%d.wav", row.mode))
			args := []string{"process", "--worker", worker, "--lanes", "2", "--block", fmt.Sprint(cliBlock),
				"--chain", fmt.Sprintf("hostile mode=%d", row.mode), "--in", in, "--out", out}
			r := runHost(t, nil, args...)
			defer func() {
				if w := workersOf(r.pid); len(w) != 0 {
					t.Errorf("processes of the run outlived their host: %v", w)
				}
				if t.Failed() {
					t.Logf("understudy %s\nexit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
				}
			}()
			switch row.want {
			case bypassed, garbage, failed:
				if r.code != 1 {
					t.Fatalf("exit status %d, want 1 (blocks the chain did not process fail the run)", r.code)
				}
				if _, err := os.Stat(out); err == nil {
					t.Errorf("%s written although the run failed", out)
				}
				if row.want == failed {
					// Both lanes run the kernel, and either may be given up
					// first: the message names the one that was.
					if !laneGivenUp.Match(r.stderr) {
						t.Errorf("the give-up message does not name a lane and its kernel: %s", r.stderr)
					}
					return
				}
				// The same run, told to keep what it made.
				r = runHost(t, nil, append(args, "--allow-bypass")...)
				if r.code != 0 {
					t.Fatalf("with --allow-bypass: exit status %d, want 0", r.code)
				}
				var n int
				if _, err := fmt.Sscanf(string(r.stderr), "understudy process: warning: %d block", &n); err != nil {
					t.Fatalf("with --allow-bypass: no warning about the bypassed blocks: %s", r.stderr)
				}
				// Poison is bypassed within two deaths: one block. Garbage
				// plays dry until its owner is replaced and the chain starts
				// afresh: what the owner had rendered ahead by then, at most
				// the blocks in flight (two rings of 16), not the rest of
				// the file, which a poisoned state would make NaN for good.
				if max := map[outcome]int{bypassed: 1, garbage: 2 * 16}[row.want]; n < 1 || n > max {
					t.Errorf("%d blocks bypassed, want 1 to %d", n, max)
				}
			default:
				if r.code != 0 {
					t.Fatalf("exit status %d, want 0", r.code)
				}
			}
			got, err := wav.Read(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Samples) != len(a.Samples) {
				t.Fatalf("%d samples out, %d in", len(got.Samples), len(a.Samples))
			}
			diff0, diff1, bad := 0, 0, 0
			for i, x := range got.Samples {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) || math.Abs(float64(x)) > cliCeiling {
					bad++
				}
				want := a.Samples[i]
				if row.want == marked && i == 2*(cliTriggerBlock*cliBlock+1) {
					want = hostileMarkCLI
				}
				if math.Float32bits(x) != math.Float32bits(want) {
					if i%2 == 0 {
						diff0++
					} else {
						diff1++
					}
				}
			}
			if bad != 0 {
				t.Errorf("%d samples NaN, Inf or past +24 dBFS in the file", bad)
			}
			if diff1 != 0 {
				t.Errorf("the lane the kernel does not own: %d samples differ from its input (pass-through)", diff1)
			}
			// The kernel passes audio through, a bypassed or refused block
			// plays it dry, and a chain started afresh passes it through
			// again: its own lane is its input too.
			if diff0 != 0 {
				t.Errorf("the attacker's own lane: %d samples differ from its input", diff0)
			}
		})
	}
}
