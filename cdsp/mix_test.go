package cdsp_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/understudy-rt/understudy/cdsp"
	"github.com/understudy-rt/understudy/cdsp/gotwin"
)

// mixParams spells out mix's ten params: the positions given, the rest 0.
func mixParams(law, trim float32, pos ...float32) []float32 {
	p := make([]float32, 10)
	copy(p, pos)
	p[8], p[9] = law, trim
	return p
}

// mixGains probes the settled gains of each input: a unit impulse on input i
// alone makes L and R exactly gl_i and gr_i (the other terms add +0).
func mixGains(t testing.TB, mk func(testing.TB, string, []float32, int, float64) proc, params []float32, n int) (gl, gr []float32) {
	t.Helper()
	if n < 2 {
		t.Fatal("mixGains needs at least two channels")
	}
	for i := 0; i < n; i++ {
		buf := make([]float32, n)
		buf[i] = 1
		mk(t, "mix", params, n, 48000).Process(buf)
		gl, gr = append(gl, buf[0]), append(gr, buf[1])
	}
	return gl, gr
}

// Hard left and hard right at 0 dB pass a stereo lane through untouched, bit
// for bit: signed zeros, infinities and subnormals included.
func TestMixIdentity(t *testing.T) {
	id := mixParams(0, 0, -1, 1)
	specials := []float32{
		float32(math.Copysign(0, -1)), 0, float32(math.Inf(1)), float32(math.Inf(-1)),
		math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32,
		float32FromBits(0x007fffff), float32FromBits(0x80000001), 1, -1,
	}
	for _, im := range impls {
		l, r := mixGains(t, im.make, id, 2)
		if l[0] != 1 || r[0] != 0 || l[1] != 0 || r[1] != 1 {
			t.Fatalf("%s: identity gains %v %v, want exactly [1 0] [0 1]", im.name, l, r)
		}
		for _, sig := range []signal{
			{"noise", func(f, c int) []float32 { return noise(f, c, 21) }},
			{"impulse", impulse},
			{"silence", func(f, c int) []float32 { return make([]float32, f*c) }},
			{"denormal", func(f, c int) []float32 { return denormalRange(f, c, 22) }},
			{"specials", func(f, c int) []float32 { // every pairing of the specials, both ways round
				b := make([]float32, f*c)
				for n := 0; n < f; n++ {
					b[2*n] = specials[n%len(specials)]
					b[2*n+1] = specials[(n/len(specials))%len(specials)]
				}
				return b
			}},
		} {
			in := sig.make(1500, 2)
			for _, block := range []int{1, 7, 64, 1500} {
				out := clone(in)
				run(im.make(t, "mix", id, 2, 48000), out, 2, block)
				sameBits(t, fmt.Sprintf("%s identity, %s in blocks of %d", im.name, sig.name, block), out, in)
			}
		}
		// Reached by a ramp from elsewhere, it is exact once the ramp is done.
		p := im.make(t, "mix", mixParams(1, -20, 0.3, -0.9), 2, 48000)
		_ = p.SetParams(id)
		in := noise(200, 2, 23)
		out := clone(in)
		run(p, out, 2, 10)
		sameBits(t, im.name+" identity after a ramp", out[2*63:], in[2*63:])
	}
}

// Constant power: a centred input, the default, is -3 dB (cos pi/4) on each
// side; linear: exactly -6 dB (0.5).
func TestMixCentre(t *testing.T) {
	for _, im := range impls {
		for n := 2; n <= 8; n++ {
			l, r := mixGains(t, im.make, nil, n) // the defaults centre every input
			for i := range l {
				if l[i] != r[i] || math.Abs(float64(l[i])-math.Cos(math.Pi/4)) > 1e-7 {
					t.Errorf("%s %d channels, input %d centred: gains %g %g, want cos(pi/4) = %g each", im.name, n, i, l[i], r[i], math.Cos(math.Pi/4))
				}
				if db := 20 * math.Log10(float64(l[i])); math.Abs(db+3.0103) > 1e-4 {
					t.Errorf("%s %d channels, input %d centred: %g dB, want -3.01", im.name, n, i, db)
				}
			}
			l, r = mixGains(t, im.make, mixParams(1, 0), n)
			for i := range l {
				if l[i] != 0.5 || r[i] != 0.5 {
					t.Errorf("%s %d channels, input %d centred, linear: %g %g, want 0.5 each", im.name, n, i, l[i], r[i])
				}
			}
		}
	}
}

// Each input gets pan's gains for its position, bit for bit: the law is the
// same code (us_panlaw.h), and 0 dB of trim is exactly 1.
func TestMixUsesPanLaws(t *testing.T) {
	for _, im := range impls {
		for _, law := range []float32{0, 1} {
			for _, pos := range []float32{-1, -0.999, -0.5, -0.1, 0, 0.25, 0.7071, 1} {
				wl, wr := panGains(t, im.make, pos, law)
				l, r := mixGains(t, im.make, mixParams(law, 0, 0.5, pos, -0.5), 3)
				if l[1] != wl || r[1] != wr {
					t.Errorf("%s law %g pos %g: mix gains %g %g, pan's %g %g", im.name, law, pos, l[1], r[1], wl, wr)
				}
			}
		}
		// Trim scales every gain by 10^(db/20).
		for _, trim := range []float32{-60, -6, -0.5, 3, 12} {
			l, r := mixGains(t, im.make, mixParams(1, trim, -1, 1, 0), 3)
			g := math.Pow(10, float64(trim)/20)
			for i, w := range [][2]float64{{1, 0}, {0, 1}, {0.5, 0.5}} {
				if math.Abs(float64(l[i])-w[0]*g) > 1e-7*g || math.Abs(float64(r[i])-w[1]*g) > 1e-7*g {
					t.Errorf("%s trim %g input %d: %g %g, want %g %g", im.name, trim, i, l[i], r[i], w[0]*g, w[1]*g)
				}
			}
		}
	}
}

// L = ((x0*gl0 + x1*gl1) + x2*gl2) + ..., left to right in float32, with
// zero gains left out and the sum started from -0; R alike; channels 2..N-1
// zero.
func TestMixSumOrderAndZeroedChannels(t *testing.T) {
	negZero := float32(math.Copysign(0, -1))
	r := rand.New(rand.NewPCG(31, 32))
	for _, im := range impls {
		for n := 2; n <= 8; n++ {
			for trial := 0; trial < 4; trial++ {
				pos := make([]float32, n)
				for i := range pos {
					pos[i] = []float32{-1, 1, float32(2*r.Float64() - 1)}[r.IntN(3)]
				}
				params := mixParams(float32(trial%2), float32(-20*r.Float64()), pos...)
				gl, gr := mixGains(t, im.make, params, n)
				in := noise(300, n, uint64(100*n+trial))
				out := clone(in)
				run(im.make(t, "mix", params, n, 48000), out, n, 64)
				for f := 0; f < 300; f++ {
					x := in[f*n : f*n+n]
					l, rr := negZero, negZero
					for i := range x {
						if gl[i] != 0 {
							l = l + float32(x[i]*gl[i])
						}
						if gr[i] != 0 {
							rr = rr + float32(x[i]*gr[i])
						}
					}
					y := out[f*n : f*n+n]
					if math.Float32bits(y[0]) != math.Float32bits(l) || math.Float32bits(y[1]) != math.Float32bits(rr) {
						t.Fatalf("%s %d channels %v frame %d: %g %g, want %g %g", im.name, n, params, f, y[0], y[1], l, rr)
					}
					for c := 2; c < n; c++ {
						if math.Float32bits(y[c]) != 0 {
							t.Fatalf("%s %d channels frame %d: channel %d is %g, want +0", im.name, n, f, c, y[c])
						}
					}
				}
			}
		}
	}
}

// One channel: the mono fold-down (L + R) * 0.5 of what the stereo mix would
// make of it, which for trim 0 is exactly pan's one-channel output.
func TestMixMonoFoldsDown(t *testing.T) {
	for _, im := range impls {
		for _, law := range []float32{0, 1} {
			for _, pos := range []float32{-1, -0.4, 0, 0.8, 1} {
				for _, trim := range []float32{0, -9.5, 12} {
					mono := noise(500, 1, 41)
					one := clone(mono)
					im.make(t, "mix", mixParams(law, trim, pos), 1, 48000).Process(one)
					// The stereo mix of the same input, alone on a lane of two.
					st := make([]float32, 1000)
					for n, v := range mono {
						st[2*n] = v
					}
					im.make(t, "mix", mixParams(law, trim, pos), 2, 48000).Process(st)
					for n := range one {
						if fold := (st[2*n] + st[2*n+1]) * 0.5; math.Float32bits(one[n]) != math.Float32bits(fold) {
							t.Fatalf("%s pos %g law %g trim %g: mono frame %d is %g, fold-down of stereo %g", im.name, pos, law, trim, n, one[n], fold)
						}
					}
					if trim == 0 {
						pan := clone(mono)
						im.make(t, "pan", []float32{pos, law}, 1, 48000).Process(pan)
						sameBits(t, fmt.Sprintf("%s mix vs pan, 1 channel, pos %g law %g", im.name, pos, law), one, pan)
					}
				}
			}
		}
	}
}

// A change of any param ramps every gain over 64 frames from where it is.
func TestMixRamp(t *testing.T) {
	for _, im := range impls {
		p := im.make(t, "mix", mixParams(0, 0, -1, 1), 2, 48000)
		_ = p.SetParams(mixParams(0, 0, 1, 1)) // input 0 moves from left to right
		buf := make([]float32, 2*200)
		for n := 0; n < 200; n++ {
			buf[2*n] = 1 // input 1 silent
		}
		p.Process(buf[:2*10])
		_ = p.SetParams(mixParams(0, 0, 1, 1)) // the same params again start nothing
		p.Process(buf[2*10 : 2*100])
		_ = p.SetParams(mixParams(0, -6.0206, 1, 1)) // trim: to a half
		p.Process(buf[2*100:])
		for n := 0; n < 200; n++ {
			l, r := buf[2*n], buf[2*n+1]
			var wl, wr float64
			switch {
			case n < 63:
				u := float64(n+1) / 64
				wl, wr = 1-u, u
			case n < 100:
				wl, wr = 0, 1
			case n < 163:
				wl, wr = 0, 1-0.5*float64(n-99)/64
			default:
				wl, wr = 0, 0.5
			}
			if math.Abs(float64(l)-wl) > 1e-6 || math.Abs(float64(r)-wr) > 1e-6 {
				t.Fatalf("%s frame %d: %g %g, want %g %g", im.name, n, l, r, wl, wr)
			}
			if n >= 63 && n < 100 && (l != 0 || r != 1) {
				t.Fatalf("%s frame %d: %g %g, want settled exactly 0 1", im.name, n, l, r)
			}
		}

		// A change that leaves every gain where it is (hard pans are 1 and 0
		// under both laws) starts no ramp: the state says settled at once.
		q := im.make(t, "mix", mixParams(0, 0, -1, 1, 1), 3, 48000)
		_ = q.SetParams(mixParams(1, 0, -1, 1, 1))
		q.Process(make([]float32, 3))
		if ramp := binary.LittleEndian.Uint32(q.State()[4:]); ramp != 64 {
			t.Errorf("%s: a change to the same gains left the ramp at %d, want 64 (settled)", im.name, ramp)
		}
	}
}

// mixChanges makes a host's param changes between blocks: hard and random
// positions, both laws, the trim's extremes; now and then the same params
// again (which must start nothing).
func mixChanges(r *rand.Rand, prev []float32) []float32 {
	if prev != nil && r.IntN(5) == 0 {
		return prev
	}
	p := make([]float32, 10)
	for i := 0; i < 8; i++ {
		p[i] = []float32{-1, 1, 0, float32(2*r.Float64() - 1)}[r.IntN(4)]
	}
	p[8] = float32(r.IntN(2))
	p[9] = []float32{0, -60, 12, float32(72*r.Float64() - 60)}[r.IntN(4)]
	return p
}

// The twin gives the C kernel's bits and state on every channel count and
// block size, with params changing mid-stream and mid-ramp.
func TestMixTwinMatchesC(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("bit-exactness between C and Go is asserted on amd64 only")
	}
	sigs := []signal{
		{"noise", func(f, c int) []float32 { return noise(f, c, 51) }},
		{"impulse", impulse},
		{"silence", func(f, c int) []float32 { return make([]float32, f*c) }},
		{"denormal", func(f, c int) []float32 { return denormalRange(f, c, 52) }},
		{"dc", func(f, c int) []float32 { return dc(f, c, -0.25) }},
	}
	for n := 1; n <= 8; n++ {
		for _, block := range []int{1, 7, 64, 100, 256} {
			for si, sig := range sigs {
				r := rand.New(rand.NewPCG(uint64(n), uint64(100*block+si)))
				params := mixChanges(r, nil)
				c := newC(t, "mix", params, n, 48000)
				g := newTwin(t, "mix", params, n, 48000)
				if !bytes.Equal(c.State(), g.State()) {
					t.Fatalf("ch%d %v: initial states differ", n, params)
				}
				frames := 1200
				in := sig.make(frames, n)
				outC, outG := clone(in), clone(in)
				for f, b := 0, 0; f < frames; f, b = f+block, b+1 {
					if b%3 == 1 || (block >= 64 && b%2 == 1) {
						params = mixChanges(r, params)
						if err := c.SetParams(params); err != nil {
							t.Fatal(err)
						}
						if err := g.SetParams(params); err != nil {
							t.Fatal(err)
						}
					}
					end := min(f+block, frames)
					c.Process(outC[f*n : end*n])
					g.Process(outG[f*n : end*n])
					if !bytes.Equal(c.State(), g.State()) {
						t.Fatalf("mix ch%d blocks of %d, %s: states differ after frame %d", n, block, sig.name, end)
					}
				}
				sameBits(t, fmt.Sprintf("mix ch%d blocks of %d, %s: C vs Go", n, block, sig.name), outG, outC)
			}
		}
	}
}

func TestMixRefusesWhatItCannotDo(t *testing.T) {
	k, _ := cdsp.Lookup("mix")
	nan := float32FromBits(0x7fc00000)
	for _, p := range [][]float32{
		{1.5},
		{0, 0, 0, 0, -1.01},
		{0, 0, 0, 0, 0, 0, 0, nan},
		mixParams(0.5, 0),
		mixParams(2, 0),
		mixParams(0, 12.5),
		mixParams(0, -61),
		mixParams(0, nan),
		append(mixParams(0, 0), 0), // an eleventh param
	} {
		if inst, err := k.New(p, 2, 48000); err == nil {
			inst.Free()
			t.Errorf("mix%v accepted", p)
		}
		if _, err := gotwin.New("mix", p, 2, 48000); err == nil {
			t.Errorf("twin mix%v accepted", p)
		}
		for _, im := range impls {
			if err := im.make(t, "mix", nil, 2, 48000).SetParams(p); err == nil {
				t.Errorf("%s: SetParams(%v) accepted", im.name, p)
			}
		}
	}
	for _, ch := range []int{9, 10, 16} {
		if k.StateBytes(ch) != 0 {
			t.Errorf("mix StateBytes(%d) = %d, want 0", ch, k.StateBytes(ch))
		}
		if inst, err := k.New(nil, ch, 48000); err == nil || !strings.Contains(err.Error(), "channels") {
			if inst != nil {
				inst.Free()
			}
			t.Errorf("mix at %d channels: %v, want a refusal naming the channels", ch, err)
		}
		if _, err := gotwin.New("mix", nil, ch, 48000); err == nil {
			t.Errorf("twin mix accepted %d channels", ch)
		}
	}
	for ch := 1; ch <= 8; ch++ {
		inst, err := k.New(nil, ch, 48000)
		if err != nil {
			t.Errorf("mix refused %d channels: %v", ch, err)
			continue
		}
		inst.Free()
	}
	// A state made for another channel count: the twin refuses it. The C
	// instance checks only the size, which is the same for every count, so
	// the kernel sees calls whose channel count is not init's: it leaves
	// those blocks alone.
	three := newC(t, "mix", nil, 3, 48000).State()
	if err := newTwin(t, "mix", nil, 2, 48000).SetState(three); err == nil {
		t.Error("twin: a 3-channel mix state was adopted by a 2-channel instance")
	}
	c := newC(t, "mix", nil, 2, 48000)
	if err := c.SetState(three); err != nil {
		t.Fatal(err)
	}
	in := noise(100, 2, 61)
	out := clone(in)
	c.Process(out)
	sameBits(t, "a 2-channel call on a 3-channel state", out, in)
}
