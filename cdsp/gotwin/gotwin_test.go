package gotwin

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// These run without cgo; the bit-for-bit comparison with the C kernels is in
// package cdsp.

func TestDetExpAccuracy(t *testing.T) {
	// Over every exponent the kernels use: dB in -120..48 times ln10/20.
	for db := -130.0; db <= 50; db += 0.01 {
		x := db * ln10_20
		got, want := detExp(x), math.Exp(x)
		if math.Abs(got-want) > 4e-16*want {
			t.Fatalf("detExp(%g) = %v, math.Exp %v", x, got, want)
		}
	}
	if detExp(0) != 1 {
		t.Fatal("detExp(0) != 1: a 0 dB peaking filter would not be flat")
	}
}

func TestDetSincosAccuracy(t *testing.T) {
	for x := 0.0; x <= math.Pi; x += 1e-4 {
		s, c := detSincos(x)
		if math.Abs(s-math.Sin(x)) > 4e-16 || math.Abs(c-math.Cos(x)) > 4e-16 {
			t.Fatalf("detSincos(%g) = %v, %v; math: %v, %v", x, s, c, math.Sin(x), math.Cos(x))
		}
	}
}

// withF lists the kernels whose first param is a frequency that must stay
// below rate/2.
var withF = []string{"lowpass", "highpass", "bandpass", "peaking", "lowshelf", "highshelf", "fir", "sine"}

func TestNyquistRefused(t *testing.T) {
	for _, name := range withF {
		if _, err := New(name, []float32{16000}, 1, 32000); err == nil {
			t.Errorf("%s accepted f = rate/2", name)
		}
		if _, err := New(name, []float32{15999}, 1, 32000); err != nil {
			t.Errorf("%s refused f just below rate/2: %v", name, err)
		}
	}
	if _, err := New("echo", nil, 1, 48000); err == nil {
		t.Error("unknown kernel accepted")
	}
}

func noise(n int) []float32 {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]float32, n)
	for i := range b {
		b[i] = float32(2*r.Float64() - 1)
	}
	return b
}

func TestSplitAndResume(t *testing.T) {
	for _, name := range Names() {
		params := map[string][]float32{
			"gain": {-6}, "lowpass": {700, 3, 3}, "highpass": {700, 3, 3}, "bandpass": {700, 3, 3},
			"peaking": {700, 3, -4, 3}, "lowshelf": {700, 3, -4, 3}, "highshelf": {700, 3, -4, 3},
			"fir": {3000, 255}, "pan": {-0.3, 0}, "sine": {440, -3}, "noise": {77, -10},
			"mix": {-0.8, 0.4, 0, 0, 0, 0, 0, 0, 0, -2},
		}[name]
		if params == nil {
			t.Fatalf("no test params for %s", name)
		}
		in := noise(2 * 3000)
		mk := func() Processor {
			p, err := New(name, params, 2, 48000)
			if err != nil {
				t.Fatal(err)
			}
			// Change a live param so that a ramp runs from the first frame.
			switch name {
			case "gain":
				_ = p.SetParams([]float32{10})
			case "pan":
				_ = p.SetParams([]float32{0.8, 1})
			case "mix":
				_ = p.SetParams([]float32{0.6, -0.2, 0, 0, 0, 0, 0, 0, 1, 3})
			case "sine":
				_ = p.SetParams([]float32{440, -30})
			case "noise":
				_ = p.SetParams([]float32{77, 0})
			}
			return p
		}
		want := append([]float32(nil), in...)
		mk().Process(want)

		got := append([]float32(nil), in...)
		a := mk()
		for i := 0; i < 2*1000; i += 2 {
			a.Process(got[i : i+2]) // one frame at a time
		}
		b := mk()
		if err := b.SetState(a.State()); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.State(), b.State()) {
			t.Fatalf("%s: state does not round-trip", name)
		}
		for i := 2 * 1000; i < len(got); i += 2 * 64 {
			b.Process(got[i:min(i+2*64, len(got))])
		}
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: sample %d differs after a split and a resume", name, i)
			}
		}
	}
}

func TestLowpassCorner(t *testing.T) {
	// RBJ low-pass gain at f is q: -3.01 dB for q = 0.7071.
	p, err := InitLowpass([]float32{1000, 0.7071, 1}, 1, 48000)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]float32, 96000)
	for n := range buf {
		buf[n] = float32(math.Sin(2 * math.Pi * 1000 * float64(n) / 48000))
	}
	p.Process(buf)
	var re, im float64
	for n := 48000; n < len(buf); n++ {
		ph := 2 * math.Pi * 1000 * float64(n) / 48000
		re += float64(buf[n]) * math.Sin(ph)
		im += float64(buf[n]) * math.Cos(ph)
	}
	if db := 20 * math.Log10(2*math.Hypot(re, im)/48000); math.Abs(db-20*math.Log10(0.7071)) > 0.01 {
		t.Fatalf("gain at f: %.4f dB", db)
	}
}

func TestGainSettlesExactly(t *testing.T) {
	g, err := InitGain([]float32{0}, 1, 48000)
	if err != nil {
		t.Fatal(err)
	}
	_ = g.SetParams([]float32{-20})
	buf := make([]float32, 100)
	for i := range buf {
		buf[i] = 1
	}
	g.Process(buf)
	if buf[63] != dbToLinear(-20) || buf[99] != buf[63] || buf[62] == buf[63] {
		t.Fatalf("ramp ends %v, want exactly %v from frame 63", buf[60:66], dbToLinear(-20))
	}
}

func TestSinTurnsAccuracy(t *testing.T) {
	for p := 0.0; p < 1; p += 1.0 / 65536 {
		if got, want := sinTurns(p), math.Sin(2*math.Pi*p); math.Abs(got-want) > 1e-11 {
			t.Fatalf("sinTurns(%g) = %v, math.Sin %v", p, got, want)
		}
	}
	// The generator's samples are floats: the peaks round to exactly ±1.
	for _, c := range []struct{ p, want float64 }{{0, 0}, {0.25, 1}, {0.5, 0}, {0.75, -1}} {
		if got := float32(sinTurns(c.p)); got != float32(c.want) {
			t.Errorf("float32(sinTurns(%g)) = %v, want exactly %v", c.p, got, c.want)
		}
	}
}

func TestFIRTapsAreSymmetricAndNormalised(t *testing.T) {
	for _, taps := range []float32{1, 2, 3, 64, 127, 4096} {
		f, err := InitFIR([]float32{1000, taps}, 1, 48000)
		if err != nil {
			t.Fatal(err)
		}
		n := int(taps)
		buf := make([]float32, n)
		buf[0] = 1
		f.Process(buf)
		var sum float64
		for k := range buf {
			sum += float64(buf[k])
			if buf[k] != buf[n-1-k] {
				t.Fatalf("%d taps: h[%d] != h[%d]", n, k, n-1-k)
			}
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Errorf("%d taps: DC gain %g", n, sum)
		}
	}
	if _, err := InitFIR(nil, 4, 48000); err == nil {
		t.Error("4 channels accepted")
	}
}
