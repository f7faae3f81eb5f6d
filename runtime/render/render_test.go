package render_test

import (
	"errors"
	"io"
	"math"
	"testing"

	"github.com/understudy-rt/understudy/internal/workerbin"
	"github.com/understudy-rt/understudy/runtime/catalog"
	"github.com/understudy-rt/understudy/runtime/chain"
	"github.com/understudy-rt/understudy/runtime/render"
	"github.com/understudy-rt/understudy/runtime/shm"
	"github.com/understudy-rt/understudy/supervisor"
)

// A source that is often not ready (as a lane fed in step with others is)
// gets the same bits as one that always is, in the same order, with every
// block's length right to the last, short one.
func TestStreamWithASourceThatIsOftenNotReady(t *testing.T) {
	const ch, frames = 2, 64
	sup := twoLanes(t, "lowpass f=1500 | gain db=-3", ch, frames)
	in := make([]float32, ch*(frames*500+37))
	for i := range in {
		in[i] = float32(math.Sin(float64(i) * 0.002))
	}
	want, err := render.Lane(sup.Region().Lane(0), in, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []float32
	rest, calls, notReady := in, 0, 0
	var lens []int
	stats, err := render.Stream(sup.Region().Lane(1),
		func(p []float32, wait bool) (int, error) {
			calls++
			if !wait && calls%3 != 0 {
				notReady++
				return 0, render.ErrNotReady
			}
			if len(rest) == 0 {
				return 0, io.EOF
			}
			// Odd-sized pieces, a whole number of frames each.
			n := copy(p[:min(len(p), ch*(1+calls%50))], rest)
			rest = rest[n:]
			return n, nil
		},
		func(p []float32, _ uint32) error {
			got = append(got, p...)
			lens = append(lens, len(p))
			return nil
		}, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if notReady == 0 {
		t.Fatal("the source was never asked without waiting: the test proves nothing")
	}
	if len(got) != len(want) || stats.Blocks != 501 || stats.Bypassed != 0 {
		t.Fatalf("%d samples in %d blocks (%d bypassed), want %d in 501", len(got), stats.Blocks, stats.Bypassed, len(want))
	}
	if last := lens[len(lens)-1]; last != ch*37 {
		t.Errorf("last block %d samples, want %d", last, ch*37)
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("sample %d: %g, want %g", i, got[i], want[i])
		}
	}
}

// An error from the source ends the render with that error.
func TestStreamSourceErrorEndsTheRender(t *testing.T) {
	w, err := workerbin.Path()
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Load(w)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := chain.Parse("gain", cat)
	lc, _ := chain.LaneConfig(st, 1, 32, 48000, "auto")
	sup, err := supervisor.New(supervisor.Config{Worker: w, Lanes: []shm.LaneConfig{lc}, WorkerCPU: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	if err := sup.Start(nil); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	n := 0
	_, err = render.Stream(sup.Region().Lane(0),
		func(p []float32, _ bool) (int, error) {
			if n++; n > 40 {
				return 0, boom
			}
			return len(p), nil
		},
		func([]float32, uint32) error { return nil }, render.Options{})
	if !errors.Is(err, boom) {
		t.Errorf("%v, want the source's error", err)
	}
}

// Output past the ceiling never reaches the caller: each such block is
// replaced by its dry input, flagged bypassed and counted as garbage, and
// the refusal is reported with the block's number; under a ceiling that
// allows it, the same output passes untouched.
func TestGarbageIsReplacedByTheDryInput(t *testing.T) {
	const frames, blocks = 64, 50
	sup := twoLanes(t, "gain db=24", 1, frames) // 1.5 × 15.85: past the +24 dBFS ceiling
	in := make([]float32, frames*blocks)
	for i := range in {
		in[i] = 0.01 // under the ceiling after the gain, but for the loud blocks
	}
	loud := map[int]bool{3: true, 17: true, 49: true}
	for b := range loud {
		in[b*frames+5] = 1.5
	}
	render1 := func(lane int, ceiling float32) ([]float32, render.Stats, []uint64) {
		var refused []uint64
		out, stats, err := render.Slice(sup.Region().Lane(lane), in,
			render.Options{Ceiling: ceiling, Refuse: func(b, _ uint64) { refused = append(refused, b) }})
		if err != nil {
			t.Fatal(err)
		}
		return out, stats, refused
	}
	out, stats, refused := render1(0, 0)
	if stats.Garbage != uint64(len(loud)) || stats.Bypassed != stats.Garbage || len(refused) != len(loud) {
		t.Fatalf("garbage %d, bypassed %d, refused %v; want %d blocks refused", stats.Garbage, stats.Bypassed, refused, len(loud))
	}
	for _, b := range refused {
		if !loud[int(b)] {
			t.Errorf("block %d refused, but it was not loud", b)
		}
	}
	for i, x := range out {
		b := i / frames
		if loud[b] && math.Float32bits(x) != math.Float32bits(in[i]) {
			t.Fatalf("sample %d of refused block %d is %v, not its dry input %v", i, b, x, in[i])
		}
		if !loud[b] && x == in[i] {
			t.Fatalf("sample %d of block %d is dry: the chain's output was refused too", i, b)
		}
	}
	out, stats, refused = render1(1, 100)
	if stats.Garbage != 0 || len(refused) != 0 {
		t.Fatalf("under a ceiling of 100: garbage %d, refused %v; want none", stats.Garbage, refused)
	}
	if x := out[3*frames+5]; x < 23 {
		t.Errorf("loud sample is %v, want the chain's 1.5 × 15.85", x)
	}
}

// twoLanes starts a supervisor of two lanes running spec, with no spare;
// Close is the test's cleanup.
func twoLanes(t *testing.T, spec string, ch, frames int) *supervisor.Supervisor {
	t.Helper()
	w, err := workerbin.Path()
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Load(w)
	if err != nil {
		t.Fatal(err)
	}
	st, err := chain.Parse(spec, cat)
	if err != nil {
		t.Fatal(err)
	}
	lc, err := chain.LaneConfig(st, ch, frames, 48000, "scalar")
	if err != nil {
		t.Fatal(err)
	}
	sup, err := supervisor.New(supervisor.Config{Worker: w, Lanes: []shm.LaneConfig{lc, lc}, Spares: 0, WorkerCPU: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sup.Close() })
	if err := sup.Start(nil); err != nil {
		t.Fatal(err)
	}
	return sup
}
