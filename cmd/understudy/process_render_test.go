package main

import (
	"path/filepath"
	"testing"

	"github.com/understudy-rt/understudy/cdsp"
	"github.com/understudy-rt/understudy/runtime/wav"
)

// The default single lane streams its output through the encoder in
// chunks: the file must hold every frame once, in order, with the bits the
// in-process kernels give, whatever the block and across chunk boundaries;
// and two lanes, which gather and scatter instead, must write the same file.
func TestProcessStreamsOneLane(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.wav")
	// Not a whole number of blocks (256 or 1024 frames) nor of encoder
	// chunks (65536 samples), and more than three chunks.
	frames := 3*(1<<16)/2 + 1000 + 7
	a := &wav.Audio{Rate: 48000, Channels: 2, Samples: make([]float32, 2*frames)}
	for i := range a.Samples {
		a.Samples[i] = float32((i*7919)%2000-1000) / 2000
	}
	if err := wav.WriteFile(in, a); err != nil {
		t.Fatal(err)
	}
	ref := append([]float32(nil), a.Samples...)
	for _, st := range []struct {
		name   string
		params []float32
	}{{"lowpass", []float32{1000, 0.7071, 3}}, {"gain", []float32{-6}}} {
		k, err := cdsp.Lookup(st.name)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := k.New(st.params, 2, 48000)
		if err != nil {
			t.Fatal(err)
		}
		inst.Process(ref)
		inst.Free()
	}
	chain := "lowpass f=1000 q=0.7071 sections=3 | gain db=-6"
	for _, c := range []struct {
		name string
		args []string
	}{
		{"default", nil},
		{"block 1024", []string{"--block", "1024"}},
		{"block 1", []string{"--block", "1"}},
		{"two lanes", []string{"--lanes", "2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, "out.wav")
			args := append([]string{"process", "--in", in, "--out", out, "--chain", chain, "--worker", worker(t)}, c.args...)
			if code, stdout, stderr := runCLI(args...); code != 0 {
				t.Fatalf("exit %d: %s %s", code, stdout, stderr)
			}
			got, err := wav.Read(out)
			if err != nil {
				t.Fatal(err)
			}
			if got.Channels != 2 || got.Frames() != frames {
				t.Fatalf("output %d ch %d frames, want 2 ch %d frames", got.Channels, got.Frames(), frames)
			}
			bad, first := 0, -1
			for i := range ref {
				if got.Samples[i] != ref[i] {
					if first < 0 {
						first = i
					}
					bad++
				}
			}
			if bad > 0 {
				t.Fatalf("%d of %d samples differ from the in-process kernels, the first at frame %d channel %d: %g, want %g",
					bad, len(ref), first/2, first%2, got.Samples[first], ref[first])
			}
		})
	}
}
