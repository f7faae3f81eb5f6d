package render_test

import (
	"errors"
	"testing"

	"github.com/understudy-rt/understudy/internal/workerbin"
	"github.com/understudy-rt/understudy/runtime/catalog"
	"github.com/understudy-rt/understudy/runtime/chain"
	"github.com/understudy-rt/understudy/runtime/render"
	"github.com/understudy-rt/understudy/runtime/shm"
	"github.com/understudy-rt/understudy/supervisor"
)

// startLane runs a real worker on one lane of channels x frames through a
// unity gain, so the output must be the input bit for bit.
func startLane(t *testing.T, channels, frames int) *shm.Lane {
	t.Helper()
	worker, err := workerbin.Path()
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Load(worker)
	if err != nil {
		t.Fatal(err)
	}
	st, err := chain.Parse("gain db=0", cat)
	if err != nil {
		t.Fatal(err)
	}
	lc, err := chain.LaneConfig(st, channels, frames, 48000, "auto")
	if err != nil {
		t.Fatal(err)
	}
	s, err := supervisor.New(supervisor.Config{Worker: worker, Lanes: []shm.LaneConfig{lc}, Spares: 0, WorkerCPU: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Start(nil); err != nil {
		t.Fatal(err)
	}
	return s.Region().Lane(0)
}

// Stream asks its source for every frame once, in order, in block-sized
// pieces with the last one cut to what remains, and hands the sink the
// rendered frames the same way.
func TestStreamVisitsEveryFrameOnceInOrder(t *testing.T) {
	const ch, bf = 2, 64
	lane := startLane(t, ch, bf)
	frames := 40*bf + 13 // more blocks than the ring holds, and a short last one
	in := make([]float32, frames*ch)
	for i := range in {
		in[i] = float32(i%1000) / 1000
	}
	var srcAt, sinkAt []int
	var out []float32
	err := render.Stream(lane, frames,
		func(dst []float32, frame int) {
			srcAt = append(srcAt, frame)
			if want := min(bf, frames-frame) * ch; len(dst) != want {
				t.Errorf("source at frame %d got %d samples, want %d", frame, len(dst), want)
			}
			copy(dst, in[frame*ch:])
		},
		func(src []float32, frame int) error {
			sinkAt = append(sinkAt, frame)
			if frame*ch != len(out) {
				t.Errorf("sink at frame %d after %d frames", frame, len(out)/ch)
			}
			out = append(out, src...)
			return nil
		}, 0)
	if err != nil {
		t.Fatal(err)
	}
	blocks := (frames + bf - 1) / bf
	if len(srcAt) != blocks || len(sinkAt) != blocks {
		t.Fatalf("source called %d times, sink %d, want %d each", len(srcAt), len(sinkAt), blocks)
	}
	for i := range blocks {
		if srcAt[i] != i*bf || sinkAt[i] != i*bf {
			t.Fatalf("block %d: source at frame %d, sink at %d, want %d", i, srcAt[i], sinkAt[i], i*bf)
		}
	}
	if len(out) != len(in) {
		t.Fatalf("%d samples out, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i] != in[i] {
			t.Fatalf("sample %d: %g, want %g (unity chain)", i, out[i], in[i])
		}
	}
}

// A sink's error ends the render at once and is what Stream returns.
func TestStreamStopsOnSinkError(t *testing.T) {
	const ch, bf = 1, 32
	lane := startLane(t, ch, bf)
	boom := errors.New("disk full")
	calls := 0
	err := render.Stream(lane, 100*bf,
		func(dst []float32, frame int) { clear(dst) },
		func(src []float32, frame int) error {
			calls++
			if calls == 3 {
				return boom
			}
			return nil
		}, 0)
	if !errors.Is(err, boom) {
		t.Fatalf("Stream returned %v, want the sink's error", err)
	}
	if calls != 3 {
		t.Fatalf("sink called %d times, want 3: the render must stop at the error", calls)
	}
}
