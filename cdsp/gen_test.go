package cdsp_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// The generators replace their input: the same state gives the same block
// whatever came in.
func TestGeneratorsIgnoreInput(t *testing.T) {
	for _, im := range impls {
		for _, name := range []string{"sine", "noise"} {
			a, b := im.make(t, name, nil, 3, 48000), im.make(t, name, nil, 3, 48000)
			x, y := noise(700, 3, 1), sweep(700, 3)
			a.Process(x)
			b.Process(y)
			sameBits(t, im.name+" "+name+" with different inputs", x, y)
		}
	}
}

// Bit-exact across block splits, including single frames and splits inside
// a level ramp, at several channel counts.
func TestGeneratorsAcrossBlockSplits(t *testing.T) {
	for _, im := range impls {
		for _, c := range []struct {
			name   string
			params []float32
		}{{"sine", []float32{1234.567, -3}}, {"sine", []float32{19000, 0}}, {"noise", []float32{4242, -6}}} {
			for _, ch := range []int{1, 2, 5} {
				const frames = 20000
				mk := func() proc {
					p := im.make(t, c.name, c.params, ch, 48000)
					_ = p.SetParams([]float32{c.params[0], -40}) // a ramp from the first frame
					return p
				}
				want := make([]float32, frames*ch)
				mk().Process(want)
				r := rand.New(rand.NewPCG(uint64(ch), 1))
				got := make([]float32, frames*ch)
				p := mk()
				for n := 0; n < frames; {
					b := min(1+r.IntN(100), frames-n)
					if r.IntN(10) == 0 {
						b = 1
					}
					p.Process(got[n*ch : (n+b)*ch])
					n += b
				}
				sameBits(t, fmt.Sprintf("%s %s%v ch%d in random blocks", im.name, c.name, c.params, ch), got, want)
			}
		}
	}
}

func TestSineIsASine(t *testing.T) {
	for _, im := range impls {
		for _, c := range []struct{ f, db, rate float64 }{{1000, -20, 48000}, {997, 0, 44100}, {15000.5, -6, 48000}, {3, -1, 8000}} {
			const n = 96000
			p := im.make(t, "sine", []float32{float32(c.f), float32(c.db)}, 2, c.rate)
			buf := make([]float32, 2*n)
			run(p, buf, 2, 333)
			amp := math.Pow(10, c.db/20)
			if buf[0] != 0 || buf[1] != 0 {
				t.Errorf("%s %v: first frame %g %g, want 0 (phase 0: no click)", im.name, c, buf[0], buf[1])
			}
			for i := 0; i < n; i++ {
				want := amp * math.Sin(2*math.Pi*c.f*float64(i)/float32Rate(c.rate))
				// float32 output, and the double phase's tiny drift
				if math.Abs(float64(buf[2*i])-want) > 2e-7*amp+1e-9 || buf[2*i+1] != buf[2*i] {
					t.Fatalf("%s %v: sample %d is %g, want %g", im.name, c, i, buf[2*i], want)
				}
			}
		}
	}
}

// float32Rate is the rate a kernel sees: the ABI carries a float.
func float32Rate(r float64) float64 { return float64(float32(r)) }

// A new f keeps the phase: no jump between blocks, only a new step.
func TestSineFrequencyChangeIsContinuous(t *testing.T) {
	for _, im := range impls {
		p := im.make(t, "sine", []float32{440, 0}, 1, 48000)
		buf := make([]float32, 4800)
		for b := 0; b < 10; b++ {
			f := float32([]float64{440, 5000, 50, 12000.5}[b%4])
			_ = p.SetParams([]float32{f, 0})
			p.Process(buf[b*480 : (b+1)*480])
		}
		// The largest step a 12 kHz full-scale sine can take per sample.
		maxStep := 2 * math.Sin(math.Pi*12000.5/48000)
		for i := 1; i < len(buf); i++ {
			if d := math.Abs(float64(buf[i] - buf[i-1])); d > maxStep+1e-6 {
				t.Fatalf("%s: step %g at sample %d (block edge %v)", im.name, d, i, i%480 == 0)
			}
		}
	}
}

func TestNoiseStatistics(t *testing.T) {
	for _, im := range impls {
		const n, ch = 200000, 2
		p := im.make(t, "noise", []float32{7, -6}, ch, 48000)
		buf := make([]float32, n*ch)
		run(p, buf, ch, 256)
		amp := math.Pow(10, -6.0/20)
		var sum, sq, lag, cross float64
		for i, v := range buf {
			x := float64(v)
			if x < -amp*(1+1e-6) || x > amp*(1+1e-6) {
				t.Fatalf("%s: sample %d = %g outside ±%g", im.name, i, x, amp)
			}
			sum += x
			sq += x * x
			if i >= ch {
				lag += x * float64(buf[i-ch])
			}
			if i%ch == 0 {
				cross += x * float64(buf[i+1])
			}
		}
		count := float64(len(buf))
		rms := math.Sqrt(sq / count)
		if math.Abs(sum/count) > 0.005*amp || math.Abs(rms/(amp/math.Sqrt(3))-1) > 0.01 {
			t.Errorf("%s: mean %g, rms %g; want 0 and %g (uniform)", im.name, sum/count, rms, amp/math.Sqrt(3))
		}
		// White, and the channels independent.
		if r := lag / sq; math.Abs(r) > 0.01 {
			t.Errorf("%s: lag-1 correlation %g", im.name, r)
		}
		if r := cross / (sq / 2); math.Abs(r) > 0.01 {
			t.Errorf("%s: correlation between channels %g", im.name, r)
		}
	}
}

func TestNoiseSeeds(t *testing.T) {
	for _, im := range impls {
		outs := map[float32][]float32{}
		for _, seed := range []float32{0, 1, 2, 16777215} {
			buf := make([]float32, 1000)
			im.make(t, "noise", []float32{seed, 0}, 1, 48000).Process(buf)
			again := make([]float32, 1000)
			im.make(t, "noise", []float32{seed, 0}, 1, 48000).Process(again)
			sameBits(t, fmt.Sprintf("%s noise seed %g twice", im.name, seed), again, buf)
			for s, o := range outs {
				if firstBitDiff(o, buf) < 0 {
					t.Errorf("%s: seeds %g and %g give the same noise", im.name, s, seed)
				}
			}
			outs[seed] = buf
		}
	}
}

// A level change ramps over 64 samples, as the gain kernel does: the ratio to
// the same noise at the final level traces the ramp.
func TestNoiseLevelRamp(t *testing.T) {
	for _, im := range impls {
		a := im.make(t, "noise", []float32{3, -20}, 1, 48000)
		b := im.make(t, "noise", []float32{3, 0}, 1, 48000)
		_ = a.SetParams([]float32{3, 0})
		x, y := make([]float32, 100), make([]float32, 100)
		a.Process(x)
		b.Process(y)
		prev := 0.1
		for n := 0; n < 100; n++ {
			g := float64(x[n]) / float64(y[n])
			switch {
			case n >= 63:
				if x[n] != y[n] {
					t.Fatalf("%s: frame %d not settled", im.name, n)
				}
			case g <= prev-1e-6 || g > 1:
				t.Fatalf("%s: frame %d gain %g after %g", im.name, n, g, prev)
			}
			if n < 63 {
				want := 0.1 + 0.9*float64(n+1)/64
				if math.Abs(g-want) > 1e-5 {
					t.Fatalf("%s: frame %d gain %g, want %g", im.name, n, g, want)
				}
			}
			prev = g
		}
	}
}
