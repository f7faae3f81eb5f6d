package cdsp_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/understudy-rt/understudy/cdsp"
	"github.com/understudy-rt/understudy/cdsp/gotwin"
)

// The Go twins must reproduce the C kernels bit for bit on amd64: both sides
// compute in IEEE single (double for coefficients) with one rounding per
// operation, the same operation order, no fused multiply-add (the C files
// turn contraction off; the Go code wraps every product in a conversion) and
// no libm (us_dspmath.h and its Go copy). Elsewhere the same reasoning holds,
// but it has only been verified on amd64, so other architectures get a
// tolerance instead: 1e-4 relative to the output's peak, the level at which a
// last-bit difference in one coefficient, amplified by a high-Q pole pair,
// could still show.

type twinCase struct {
	name     string
	params   []float32
	channels int
	rate     float64
}

func twinCases() []twinCase {
	var cs []twinCase
	cs = append(cs,
		twinCase{"gain", []float32{0}, 1, 48000},
		twinCase{"gain", []float32{-120}, 2, 44100},
		twinCase{"gain", []float32{24}, 8, 96000},
		twinCase{"gain", []float32{-7.3}, 3, 48000},
	)
	for _, name := range []string{"lowpass", "highpass", "bandpass"} {
		for _, c := range []twinCase{
			{name, nil, 2, 48000},
			{name, []float32{20, 0.7071, 1}, 1, 48000},
			{name, []float32{1000, 40, 2}, 2, 44100},
			{name, []float32{12345.6, 0.1, 3}, 3, 48000},
			{name, []float32{19999, 5, 8}, 8, 96000},
			{name, []float32{10, 0.5, 4}, 16, 192000},
			{name, []float32{20000, 2, 1}, 2, 40100}, // just under rate/2: w0 near pi
		} {
			cs = append(cs, c)
		}
	}
	for _, name := range []string{"peaking", "lowshelf", "highshelf"} {
		for _, c := range []twinCase{
			{name, nil, 2, 48000},
			{name, []float32{100, 0.7071, 12, 1}, 1, 48000},
			{name, []float32{3000, 4, -48, 2}, 2, 44100},
			{name, []float32{8000, 0.3, 48, 3}, 4, 96000},
			{name, []float32{17000, 40, -6.02, 8}, 8, 48000},
			{name, []float32{30, 1.5, 0.25, 1}, 2, 32000},
		} {
			cs = append(cs, c)
		}
	}
	cs = append(cs,
		twinCase{"fir", nil, 2, 48000},
		twinCase{"fir", []float32{10, 1}, 1, 48000},
		twinCase{"fir", []float32{440, 2}, 3, 44100},
		twinCase{"fir", []float32{5000, 128}, 2, 48000},
		twinCase{"fir", []float32{12345.6, 301}, 1, 96000},
		twinCase{"fir", []float32{20000, 4096}, 2, 40100},
		twinCase{"fir", []float32{100, 4095}, 3, 8000},
		twinCase{"pan", nil, 2, 48000},
		twinCase{"pan", []float32{-1, 0}, 2, 48000},
		twinCase{"pan", []float32{0.37, 1}, 2, 44100},
		twinCase{"pan", []float32{0.9, 0}, 1, 48000},
		twinCase{"mix", nil, 1, 48000},
		twinCase{"mix", nil, 2, 48000},
		twinCase{"mix", []float32{-1, 1}, 2, 48000},
		twinCase{"mix", []float32{0.3, -0.6, 1, 0, 0, 0, 0, 0, 1, -12}, 3, 44100},
		twinCase{"mix", []float32{-1, -0.5, 0, 0.5, 1, 0.1, 0, 0, 0, 6}, 5, 48000},
		twinCase{"mix", []float32{-0.9, 0.9, -0.3, 0.3, -1, 1, 0, 0.77, 0, -60}, 8, 96000},
		twinCase{"sine", nil, 1, 48000},
		twinCase{"sine", []float32{997, -0.5}, 2, 44100},
		twinCase{"sine", []float32{19999.9, -120}, 3, 40100},
		twinCase{"sine", []float32{0.5, 0}, 16, 8000},
		twinCase{"noise", nil, 1, 48000},
		twinCase{"noise", []float32{0, 0}, 2, 48000},
		twinCase{"noise", []float32{16777215, -60}, 5, 96000},
	)
	return cs
}

// liveParams are what a host might send between blocks to the kernels that
// read their params on every call; b counts blocks.
func liveParams(name string, b int) []float32 {
	switch name {
	case "gain":
		return []float32{[]float32{-120, -20, 0, 6, 24, -3.5}[b%6]}
	case "pan":
		return []float32{[]float32{-1, -0.25, 0, 0.7, 1}[b%5], float32(b / 2 % 2)}
	case "mix":
		p := make([]float32, 10)
		for i := range 8 {
			p[i] = []float32{-1, -0.25, 0, 0.7, 1, 0.33}[(b+i)%6]
		}
		p[8] = float32(b / 2 % 2)
		p[9] = []float32{0, -60, 12, -3.5}[b%4]
		return p
	case "sine":
		return []float32{[]float32{1000, 50, 13000.5, 440}[b%4], []float32{-20, 0, -120, -6}[b%4]}
	case "noise":
		return []float32{1, []float32{-20, 0, -120, -6, -6}[b%5]}
	}
	return nil
}

type signal struct {
	name string
	make func(frames, ch int) []float32
}

var signals = []signal{
	{"impulse", impulse},
	{"sweep", sweep},
	{"noise", func(f, c int) []float32 { return noise(f, c, 42) }},
	{"dc", func(f, c int) []float32 { return dc(f, c, 0.5) }},
	{"silence", func(f, c int) []float32 { return make([]float32, f*c) }},
	{"denormal", func(f, c int) []float32 { return denormalRange(f, c, 7) }},
	{"loud", func(f, c int) []float32 { // far beyond full scale: no clipping anywhere
		b := noise(f, c, 9)
		for i := range b {
			b[i] *= 1e6
		}
		return b
	}},
}

func TestTwinsMatchC(t *testing.T) {
	exact := runtime.GOARCH == "amd64"
	const block = 256
	for _, tc := range twinCases() {
		frames := 4096
		if tc.name == "fir" && len(tc.params) == 2 {
			frames += 2 * block * (int(tc.params[1])/block + 1) // past the window's filling
		}
		for _, sig := range signals {
			t.Run(fmt.Sprintf("%s%v/ch%d/%g/%s", tc.name, tc.params, tc.channels, tc.rate, sig.name), func(t *testing.T) {
				c := newC(t, tc.name, tc.params, tc.channels, tc.rate)
				g := newTwin(t, tc.name, tc.params, tc.channels, tc.rate)
				if !bytes.Equal(c.State(), g.State()) {
					t.Fatal("initial states differ: coefficients are not bit-identical")
				}
				in := sig.make(frames, tc.channels)
				outC, outG := clone(in), clone(in)
				step := block * tc.channels
				for i, b := 0, 0; i < len(in); i, b = i+step, b+1 {
					if p := liveParams(tc.name, b); p != nil && b%3 == 1 {
						// A host changing params between blocks; ramps
						// overlap and cross block boundaries.
						if err := c.SetParams(p); err != nil {
							t.Fatal(err)
						}
						if err := g.SetParams(p); err != nil {
							t.Fatal(err)
						}
					}
					c.Process(outC[i : i+step])
					g.Process(outG[i : i+step])
				}
				if exact {
					sameBits(t, "C vs Go output", outG, outC)
					if !bytes.Equal(c.State(), g.State()) {
						t.Fatal("final states differ")
					}
					return
				}
				var peak, worst float64
				for i := range outC {
					peak = math.Max(peak, math.Abs(float64(outC[i])))
					worst = math.Max(worst, math.Abs(float64(outC[i])-float64(outG[i])))
				}
				if worst > 1e-4*peak {
					t.Fatalf("max abs error %g at peak %g", worst, peak)
				}
			})
		}
	}
}

// A spare may be a different implementation: state committed by the C kernel
// and adopted by the twin (and back) continues bit for bit.
func TestStateCrossesBetweenCAndGo(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("bit-exactness between C and Go is asserted on amd64 only")
	}
	for _, tc := range []twinCase{
		{"gain", []float32{-10}, 2, 48000},
		{"lowpass", []float32{500, 3, 2}, 2, 48000},
		{"highshelf", []float32{4000, 0.7071, -9, 3}, 3, 44100},
		{"fir", []float32{2500, 511}, 2, 48000},
		{"pan", []float32{-0.5, 1}, 2, 48000},
		{"mix", []float32{-0.5, 1, 0.25}, 3, 48000},
		{"sine", []float32{1234.5, -3}, 2, 48000},
		{"noise", []float32{99, -9}, 3, 48000},
	} {
		// The params a host sends with every block: for the kernels that read
		// them live, a change that starts a ramp at the first block.
		live := map[string][]float32{"gain": {6}, "pan": {0.25, 0}, "mix": {0.5, -1, 0, 0, 0, 0, 0, 0, 1, -9}, "sine": {1234.5, -30}, "noise": {99, -1}}[tc.name]
		setLive := func(p proc) {
			if live != nil {
				if err := p.SetParams(live); err != nil {
					t.Fatal(err)
				}
			}
		}
		in := noise(3000, tc.channels, 11)
		ref := clone(in)
		r := newC(t, tc.name, tc.params, tc.channels, tc.rate)
		cut := 1000 * tc.channels
		setLive(r)
		r.Process(ref)

		out := clone(in)
		a := newC(t, tc.name, tc.params, tc.channels, tc.rate)
		setLive(a)
		a.Process(out[:cut-30*tc.channels]) // leaves a gain ramp half done
		g := newTwin(t, tc.name, nil, tc.channels, tc.rate)
		setLive(g)
		if err := g.SetState(a.State()); err != nil {
			t.Fatal(err)
		}
		g.Process(out[cut-30*tc.channels : cut])
		b := newC(t, tc.name, nil, tc.channels, tc.rate)
		setLive(b)
		if err := b.SetState(g.State()); err != nil {
			t.Fatal(err)
		}
		b.Process(out[cut:])
		sameBits(t, tc.name+": C -> Go -> C", out, ref)
	}
}

// Coefficients are where C and Go could most easily part: any difference in
// the double-precision design that survives the rounding to float. Random
// designs over the whole param space must give identical state bytes.
func TestTwinCoefficientsMatchC(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("bit-exactness between C and Go is asserted on amd64 only")
	}
	r := rand.New(rand.NewPCG(12, 34))
	rates := []float64{8000, 22050, 32000, 44100, 48000, 88200, 96000, 192000}
	for _, name := range biquads {
		k, _ := cdsp.Lookup(name)
		for i := 0; i < 3000; i++ {
			rate := rates[r.IntN(len(rates))]
			// Log-uniform f up to the top of its range or just under rate/2.
			top := math.Min(20000, rate/2*0.9999)
			f := float32(10 * math.Pow(top/10, r.Float64()))
			q := float32(0.1 * math.Pow(400, r.Float64()))
			p := []float32{f, q}
			if len(k.Params()) == 4 {
				p = append(p, float32(96*r.Float64()-48))
			}
			p = append(p, float32(1+r.IntN(8)))
			c, err := k.New(p, 1, rate)
			if err != nil {
				t.Fatalf("%s%v at %g: %v", name, p, rate, err)
			}
			g, err := gotwin.New(name, p, 1, rate)
			if err != nil {
				t.Fatalf("twin %s%v at %g: %v", name, p, rate, err)
			}
			if !bytes.Equal(c.State(), g.State()) {
				t.Fatalf("%s%v at %g Hz: coefficients differ:\nC  %x\nGo %x", name, p, rate, c.State()[8:28], g.State()[8:28])
			}
			c.Free()
		}
	}
}

// The FIR's taps, designed in double and rounded to float, must come out the
// same in C and Go over the whole param space.
func TestTwinFIRTapsMatchC(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("bit-exactness between C and Go is asserted on amd64 only")
	}
	r := rand.New(rand.NewPCG(56, 78))
	rates := []float64{8000, 22050, 32000, 44100, 48000, 88200, 96000, 192000}
	k, _ := cdsp.Lookup("fir")
	for i := 0; i < 400; i++ {
		rate := rates[r.IntN(len(rates))]
		top := math.Min(20000, rate/2*0.9999)
		f := float32(10 * math.Pow(top/10, r.Float64()))
		taps := float32(1 + r.IntN(4096))
		if i%4 == 0 {
			taps = float32(1 + r.IntN(64))
		}
		p := []float32{f, taps}
		c, err := k.New(p, 1, rate)
		if err != nil {
			t.Fatalf("fir%v at %g: %v", p, rate, err)
		}
		g, err := gotwin.New("fir", p, 1, rate)
		if err != nil {
			t.Fatalf("twin fir%v at %g: %v", p, rate, err)
		}
		if !bytes.Equal(c.State(), g.State()) {
			t.Fatalf("fir%v at %g Hz: taps differ", p, rate)
		}
		c.Free()
	}
}
