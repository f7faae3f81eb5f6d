package cdsp_test

import (
	"fmt"
	"math"
	"math/cmplx"
	"strings"
	"testing"

	"github.com/understudy-rt/understudy/cdsp"
)

// firTaps reads a FIR's taps back as its impulse response, from the C kernel.
func firTaps(t testing.TB, f float32, taps int, rate float64) []float32 {
	t.Helper()
	p := newC(t, "fir", []float32{f, float32(taps)}, 1, rate)
	h := make([]float32, taps)
	h[0] = 1
	p.Process(h)
	return h
}

// response is the taps' gain at hz, in dB, evaluated in double.
func response(h []float32, hz, rate float64) float64 {
	var s complex128
	for n, v := range h {
		s += complex(float64(v), 0) * cmplx.Exp(complex(0, -2*math.Pi*hz/rate*float64(n)))
	}
	return 20 * math.Log10(cmplx.Abs(s))
}

func TestFIRDesign(t *testing.T) {
	const rate = 48000.0
	for _, taps := range []int{127, 128, 255, 511, 1023, 2047, 4095, 4096} {
		for _, f := range []float64{100, 300, 1000, 3000, 6000, 11000} {
			if f < 2*rate/float64(taps) {
				continue // a transition narrower than the window can make (see fir.c)
			}
			t.Run(fmt.Sprintf("taps%d/f%g", taps, f), func(t *testing.T) {
				h := firTaps(t, float32(f), taps, rate)
				// Linear phase: symmetric taps, bit for bit.
				for k := range h {
					if math.Float32bits(h[k]) != math.Float32bits(h[taps-1-k]) {
						t.Fatalf("h[%d] = %g, h[%d] = %g: not symmetric", k, h[k], taps-1-k, h[taps-1-k])
					}
				}
				var dcGain float64
				for _, v := range h {
					dcGain += float64(v)
				}
				if math.Abs(dcGain-1) > 1e-3 {
					t.Errorf("DC gain %.6f, want 1 within 1e-3", dcGain)
				}
				if db := response(h, 2*f, rate); db > -40 {
					t.Errorf("at 2f = %g Hz: %.1f dB, want below -40 dB", 2*f, db)
				}
				// Flat below the transition, -6 dB (half amplitude) at f.
				if pass := f - 2*rate/float64(taps); pass > 0 {
					if db := response(h, pass, rate); math.Abs(db) > 0.05 {
						t.Errorf("at %g Hz, below the transition: %.3f dB, want 0 ± 0.05", pass, db)
					}
				}
				if db := response(h, f, rate); math.Abs(db+6.02) > 0.3 {
					t.Errorf("at f: %.2f dB, want -6.02 ± 0.3", db)
				}
			})
		}
	}
}

// A tone through the kernel itself, not just its taps: attenuation at 2f
// for the default-ish design used in chains.
func TestFIRToneAttenuation(t *testing.T) {
	for _, im := range impls {
		p := im.make(t, "fir", []float32{1000, 255}, 1, designRate)
		if db := toneDB(t, p, 2000); db > -40 {
			t.Errorf("%s: 2 kHz through a 1 kHz, 255-tap FIR: %.1f dB", im.name, db)
		}
		p = im.make(t, "fir", []float32{1000, 255}, 1, designRate)
		if db := toneDB(t, p, 200); math.Abs(db) > 0.05 {
			t.Errorf("%s: 200 Hz through a 1 kHz FIR: %.3f dB, want 0", im.name, db)
		}
	}
}

// One tap is the identity, and a short FIR's DC gain is still 1.
func TestFIRShortDesigns(t *testing.T) {
	in := noise(500, 2, 3)
	out := clone(in)
	run(newC(t, "fir", []float32{5000, 1}, 2, 48000), out, 2, 64)
	for i := range in {
		if out[i] != in[i] {
			t.Fatalf("1 tap: sample %d is %g, input %g", i, out[i], in[i])
		}
	}
	for _, taps := range []int{2, 3, 4, 5, 16, 63} {
		var sum float64
		for _, v := range firTaps(t, 3000, taps, 48000) {
			sum += float64(v)
		}
		if math.Abs(sum-1) > 1e-6 {
			t.Errorf("%d taps: DC gain %.8f", taps, sum)
		}
	}
}

// The state holds 4096 taps' worth for every channel count, whatever taps
// is: a lane can always take 4096 taps at up to three channels, never four.
func TestFIRChannelLimit(t *testing.T) {
	k, _ := cdsp.Lookup("fir")
	for ch := 1; ch <= 3; ch++ {
		if n := k.StateBytes(ch); n == 0 || n > cdsp.LaneStateBytes {
			t.Errorf("StateBytes(%d) = %d, want 1..%d", ch, n, cdsp.LaneStateBytes)
		}
		inst, err := k.New([]float32{1000, 4096}, ch, 48000)
		if err != nil {
			t.Fatalf("4096 taps at %d channels: %v", ch, err)
		}
		inst.Free()
	}
	if k.StateBytes(2)+4096*4 > cdsp.LaneStateBytes {
		t.Error("at two channels the FIR should leave room for other kernels")
	}
	for _, ch := range []int{4, 5, 8, cdsp.MaxChannels} {
		if n := k.StateBytes(ch); n != 0 {
			t.Errorf("StateBytes(%d) = %d, want 0 (cannot run)", ch, n)
		}
		_, err := k.New([]float32{1000, 3}, ch, 48000)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d channels", ch)) {
			t.Errorf("%d channels: New error %v", ch, err)
		}
	}
}

// fir.c promises at least 40 dB at 2f for taps >= 127 whenever f >= 2 rate/N
// (the window's transition fits between f and 2f); over a dense grid the
// worst case is near -50 dB.
func TestFIRStopbandClaim(t *testing.T) {
	const rate = 48000.0
	for _, taps := range []int{127, 128, 200, 255, 1000, 4096} {
		for f := math.Ceil(2 * rate / float64(taps)); 2*f < rate/2; f *= 1.07 {
			h := firTaps(t, float32(f), taps, rate)
			if db := response(h, 2*f, rate); db > -40 {
				t.Errorf("taps %d, f %g: %.1f dB at 2f", taps, f, db)
			}
		}
	}
}
