package examples_test

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/understudy-rt/understudy/runtime/wav"
	"github.com/understudy-rt/understudy/supervisor"
)

// The hostile kernel (examples/hostile) in the mode that prints a line and
// crashes on a block starting with its trigger.
const (
	hostileTrigger    = 12.345
	hostilePrintCrash = 24
)

// A kernel that crashes on one input block, as its author meets it:
// `understudy process` bypasses the block after two deaths, fails, and
// names the repro file it saved; `understudy replay` runs that block again
// in the author's worker and dies of the same signal, exit 1, saying how to
// debug it. The same block with the trigger taken out replays to the very
// bits `process` computes for it in a clean render: the file holds the right
// block, the right chain and the committed state that block started from
// (the low-pass after the hostile kernel carries state from block to
// block, so a state one block off would differ).
func TestPoisonBlockReplaysTheCrashAndTheCleanBlockBitExact(t *testing.T) {
	dir := t.TempDir()
	worker := filepath.Join(dir, "hostile-worker")
	buildUser(t, "examples/hostile/hostile.c", worker)
	const block, poison = 256, 10
	mkInput := func(name string, first float32) string {
		a := &wav.Audio{Rate: 48000, Channels: 2, Samples: make([]float32, 2*48000)}
		for i := range a.Samples {
			a.Samples[i] = float32(math.Sin(float64(i)*0.01)) * 0.3
		}
		a.Samples[poison*block*2] = first
		p := filepath.Join(dir, name)
		if err := wav.WriteFile(p, a); err != nil {
			t.Fatal(err)
		}
		return p
	}
	chain := "hostile mode=24 | lowpass f=3000 q=0.7071"
	repros := filepath.Join(dir, "repros")
	os.Mkdir(repros, 0o755)

	code, stderr := understudy(t, "process", "--worker", worker, "--in", mkInput("poison.wav", hostileTrigger),
		"--out", filepath.Join(dir, "out.wav"), "--chain", chain, "--block", "256", "--repro-dir", repros)
	files, _ := filepath.Glob(filepath.Join(repros, "*"))
	if code != 1 || len(files) != 1 || !strings.Contains(stderr, files[0]) || !strings.Contains(stderr, "understudy replay FILE --worker "+worker) {
		t.Fatalf("process: exit %d, repro files %v, %q; want 1 and the one repro file named", code, files, stderr)
	}
	oneLine(t, stderr)
	repro := files[0]

	code, stderr = understudy(t, "replay", repro, "--worker", worker)
	if code != 1 || !strings.Contains(stderr, "crashed: killed by SIGSEGV") || !strings.Contains(stderr, "gdb --args "+worker+" --replay "+repro) ||
		!strings.Contains(stderr, "hostile: this block starts with 12.3 and I cannot take it") {
		t.Errorf("replay: exit %d, %q; want 1, the kernel's last line, the signal and the gdb command", code, stderr)
	}

	// The clean twin: the trigger replaced by an ordinary sample, in the
	// repro and in the input.
	rp, err := supervisor.ReadRepro(repro)
	if err != nil {
		t.Fatal(err)
	}
	if rp.Block != poison || rp.Input[0] != hostileTrigger {
		t.Fatalf("the repro holds block %d starting %g; want block %d starting with the trigger", rp.Block, rp.Input[0], poison)
	}
	rp.Input[0] = 0.5
	clean := filepath.Join(dir, "clean.bin")
	if err := rp.WriteFile(clean); err != nil {
		t.Fatal(err)
	}
	cleanOut := filepath.Join(dir, "clean-out.wav")
	code, stderr = understudy(t, "process", "--worker", worker, "--in", mkInput("clean.wav", 0.5), "--out", cleanOut, "--chain", chain, "--block", "256")
	if code != 0 {
		t.Fatalf("clean process: exit %d, %s", code, stderr)
	}
	replayOut := filepath.Join(dir, "replay.wav")
	if code, stderr = understudy(t, "replay", clean, "--worker", worker, "--out", replayOut); code != 0 {
		t.Fatalf("clean replay: exit %d, %s", code, stderr)
	}
	want, err := wav.Read(cleanOut)
	if err != nil {
		t.Fatal(err)
	}
	got, err := wav.Read(replayOut)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Samples) != block*2 {
		t.Fatalf("the replay wrote %d samples, want one block of %d", len(got.Samples), block*2)
	}
	differ := 0
	for i, v := range got.Samples {
		if math.Float32bits(v) != math.Float32bits(want.Samples[poison*block*2+i]) {
			differ++
		}
	}
	if differ != 0 {
		t.Errorf("the replayed block differs from process's in %d of %d samples", differ, len(got.Samples))
	}

	// Not a repro file, or a worker without the chain's kernel: exit 2.
	if code, stderr = understudy(t, "replay", cleanOut, "--worker", worker); code != 2 || !strings.Contains(stderr, "not an understudy repro file") {
		t.Errorf("replay of a WAV: exit %d, %q; want 2", code, stderr)
	}
	oneLine(t, stderr)
	if code, stderr = understudy(t, "replay", clean, "--worker", buildWithMake(t)); code != 2 || !strings.Contains(stderr, "kernel hostile (variant scalar) is not built into this worker") {
		t.Errorf("replay in a worker without the kernel: exit %d, %q; want 2", code, stderr)
	}
	oneLine(t, stderr)
}
