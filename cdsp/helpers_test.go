package cdsp_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/understudy-rt/understudy/cdsp"
	"github.com/understudy-rt/understudy/cdsp/gotwin"
)

// proc is what the C instances and the Go twins have in common.
type proc interface {
	Process(buf []float32)
	SetParams(params []float32) error
	State() []byte
	SetState(b []byte) error
}

func newC(t testing.TB, name string, params []float32, channels int, rate float64) *cdsp.Instance {
	t.Helper()
	return newV(t, name, "scalar", params, channels, rate)
}

func newTwin(t testing.TB, name string, params []float32, channels int, rate float64) gotwin.Processor {
	t.Helper()
	p, err := gotwin.New(name, params, channels, rate)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// impls lets a test run against the C kernel and its twin alike.
var impls = []struct {
	name string
	make func(t testing.TB, name string, params []float32, channels int, rate float64) proc
}{
	{"C", func(t testing.TB, n string, p []float32, c int, r float64) proc { return newC(t, n, p, c, r) }},
	{"Go", func(t testing.TB, n string, p []float32, c int, r float64) proc { return newTwin(t, n, p, c, r) }},
}

// Test signals, interleaved. Channels differ so that a channel mix-up shows.

func impulse(frames, ch int) []float32 {
	b := make([]float32, frames*ch)
	for c := 0; c < ch; c++ {
		b[c] = 1 / float32(c+1)
	}
	return b
}

// sweep is an exponential sine sweep from 20 Hz to 20 kHz at 48 kHz.
func sweep(frames, ch int) []float32 {
	b := make([]float32, frames*ch)
	f0, f1, rate := 20.0, 20000.0, 48000.0
	T := float64(frames) / rate
	k := math.Log(f1 / f0)
	for n := 0; n < frames; n++ {
		tt := float64(n) / rate
		ph := 2 * math.Pi * f0 * T / k * (math.Exp(tt/T*k) - 1)
		for c := 0; c < ch; c++ {
			b[n*ch+c] = float32(0.9 * math.Sin(ph+float64(c)))
		}
	}
	return b
}

func noise(frames, ch int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]float32, frames*ch)
	for i := range b {
		b[i] = float32(2*r.Float64() - 1)
	}
	return b
}

func dc(frames, ch int, v float32) []float32 {
	b := make([]float32, frames*ch)
	for i := range b {
		b[i] = v
	}
	return b
}

// denormalRange holds subnormals of both signs with the odd smallest normal:
// the inputs where FTZ/DAZ, and any difference in how it is handled, shows.
func denormalRange(frames, ch int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0xd0d0))
	b := make([]float32, frames*ch)
	for i := range b {
		bits := r.Uint32() & 0x807fffff // sign and mantissa, exponent 0
		if r.IntN(16) == 0 {
			bits |= 1 << 23 // smallest normal exponent
		}
		b[i] = math.Float32frombits(bits)
	}
	return b
}

func isSubnormal(f float32) bool {
	u := math.Float32bits(f)
	return u&0x7f800000 == 0 && u&0x007fffff != 0
}

// run processes buf in place in blocks of the given frame count.
func run(p proc, buf []float32, ch, block int) {
	step := block * ch
	for i := 0; i < len(buf); i += step {
		p.Process(buf[i:min(i+step, len(buf))])
	}
}

func clone(b []float32) []float32 { return append([]float32(nil), b...) }

// firstBitDiff returns the first index where a and b differ in any bit, or -1.
func firstBitDiff(a, b []float32) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

func sameBits(t testing.TB, what string, got, want []float32) {
	t.Helper()
	if i := firstBitDiff(got, want); i >= 0 {
		if len(got) != len(want) {
			t.Fatalf("%s: %d samples, want %d", what, len(got), len(want))
		}
		t.Fatalf("%s: first difference at sample %d: %g (%#08x) vs %g (%#08x)", what, i,
			got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
	}
}

func float32FromBits(u uint32) float32 { return math.Float32frombits(u) }
