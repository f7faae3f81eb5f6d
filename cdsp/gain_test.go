package cdsp_test

import (
	"fmt"
	"math"
	"testing"
)

// ulp is the gap from |x| to the next float32 up.
func ulp(x float32) float64 {
	a := float32(math.Abs(float64(x)))
	return float64(math.Nextafter32(a, float32(math.Inf(1))) - a)
}

func lin(db float64) float32 { return float32(math.Pow(10, db/20)) }

// rampOf feeds a constant 1 so that the output is the gain itself.
func rampOf(p proc, ch, frames, block int) []float32 {
	buf := dc(frames, ch, 1)
	run(p, buf, ch, block)
	out := make([]float32, frames)
	for n := range out {
		out[n] = buf[n*ch]
		for c := 1; c < ch; c++ {
			if buf[n*ch+c] != out[n] {
				panic(fmt.Sprintf("channel %d differs at frame %d", c, n))
			}
		}
	}
	return out
}

func TestGainRamp(t *testing.T) {
	for _, im := range impls {
		for _, c := range []struct{ from, to float32 }{{0, -6}, {0, 24}, {-120, 0}, {24, -120}, {-3, -3.5}} {
			t.Run(fmt.Sprintf("%s/%g->%g", im.name, c.from, c.to), func(t *testing.T) {
				const ch = 2
				p := im.make(t, "gain", []float32{c.from}, ch, 48000)
				// No fade-in: the first block already has the init gain.
				first := rampOf(p, ch, 10, 10)
				for _, g := range first {
					if math.Abs(float64(g)-float64(lin(float64(c.from)))) > 2*ulp(g) {
						t.Fatalf("before any change: gain %g, want %g", g, lin(float64(c.from)))
					}
				}
				start := first[len(first)-1]
				if err := p.SetParams([]float32{c.to}); err != nil {
					t.Fatal(err)
				}
				g := rampOf(p, ch, 200, 200)
				target := g[63]
				if math.Abs(float64(target)-float64(lin(float64(c.to)))) > 2*ulp(target) {
					t.Fatalf("gain after 64 samples %g, want %g", target, lin(float64(c.to)))
				}
				for n := 64; n < len(g); n++ {
					if g[n] != target {
						t.Fatalf("frame %d: gain %g, want the settled %g exactly", n, g[n], target)
					}
				}
				if g[62] == target {
					t.Fatal("the ramp reached its target early")
				}
				// Steps are (target-start)/64, give or take rounding; the
				// ramp never overshoots or turns back.
				step := math.Abs(float64(target)-float64(start)) / 64
				tol := 4 * math.Max(ulp(start), ulp(target))
				prev := start
				for n := 0; n < 64; n++ {
					d := float64(g[n]) - float64(prev)
					if math.Abs(d) > step+tol {
						t.Fatalf("frame %d: step %g, more than %g", n, d, step)
					}
					if (target > start && d < 0) || (target < start && d > 0) {
						t.Fatalf("frame %d: step %g goes the wrong way", n, d)
					}
					prev = g[n]
				}
			})
		}
	}
}

// Re-sending the same db, as a host does with every block, starts nothing.
func TestGainUnchangedParamsDoNotRamp(t *testing.T) {
	for _, im := range impls {
		p := im.make(t, "gain", []float32{-6}, 1, 48000)
		for i := 0; i < 3; i++ {
			if err := p.SetParams([]float32{-6}); err != nil {
				t.Fatal(err)
			}
			for n, g := range rampOf(p, 1, 100, 100) {
				if g != lin(-6) && math.Abs(float64(g-lin(-6))) > ulp(g) {
					t.Fatalf("%s: block %d frame %d gain %g", im.name, i, n, g)
				}
			}
		}
	}
}

// A change in the middle of a ramp starts a new one from wherever the gain
// is, so the output stays continuous.
func TestGainChangeMidRamp(t *testing.T) {
	for _, im := range impls {
		p := im.make(t, "gain", []float32{0}, 1, 48000)
		_ = p.SetParams([]float32{-20})
		a := rampOf(p, 1, 20, 20)
		_ = p.SetParams([]float32{6})
		b := rampOf(p, 1, 100, 100)
		from := a[len(a)-1]
		step := (float64(b[63]) - float64(from)) / 64
		if math.Abs(float64(b[0])-float64(from)-step) > 4*ulp(b[63]) {
			t.Errorf("%s: the new ramp leaves from %g with %g, want %g then steps of %g", im.name, from, b[0], from, step)
		}
		if math.Abs(float64(b[63])-float64(lin(6))) > 2*ulp(b[63]) || b[99] != b[63] {
			t.Errorf("%s: settled at %g/%g, want %g", im.name, b[63], b[99], lin(6))
		}
	}
}

// A ramp split over blocks of any size is the same ramp.
func TestGainRampAcrossBlocks(t *testing.T) {
	for _, im := range impls {
		var ref []float32
		for _, block := range []int{200, 1, 10, 63, 64} {
			p := im.make(t, "gain", []float32{0}, 3, 48000)
			_ = p.SetParams([]float32{-12})
			g := rampOf(p, 3, 200, block)
			if ref == nil {
				ref = g
				continue
			}
			sameBits(t, fmt.Sprintf("%s ramp in blocks of %d", im.name, block), g, ref)
		}
	}
}
