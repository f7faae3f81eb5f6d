package cdsp_test

import (
	"math"
	"testing"

	"github.com/understudy-rt/understudy/cdsp"
)

// panGains feeds L = R = 1 (a mono sum of 1) and reads the settled gains.
func panGains(t testing.TB, mk func(testing.TB, string, []float32, int, float64) proc, pos, law float32) (float32, float32) {
	t.Helper()
	p := mk(t, "pan", []float32{pos, law}, 2, 48000)
	buf := dc(4, 2, 1)
	p.Process(buf)
	return buf[0], buf[1]
}

func TestPanLaws(t *testing.T) {
	for _, im := range impls {
		for _, law := range []float32{0, 1} {
			if l, r := panGains(t, im.make, -1, law); l != 1 || r != 0 {
				t.Errorf("%s law %g hard left: %g %g, want exactly 1 0", im.name, law, l, r)
			}
			if l, r := panGains(t, im.make, 1, law); l != 0 || r != 1 {
				t.Errorf("%s law %g hard right: %g %g, want exactly 0 1", im.name, law, l, r)
			}
			for pos := float32(-1); pos <= 1; pos += 0.05 {
				l, r := panGains(t, im.make, pos, law)
				ml, mr := panGains(t, im.make, -pos, law)
				if l != mr || r != ml {
					t.Errorf("%s law %g: pos %g gives %g %g, -pos %g %g: not mirrored", im.name, law, pos, l, r, ml, mr)
				}
				if law == 0 {
					want := (float64(pos) + 1) * math.Pi / 4
					if math.Abs(float64(l)-math.Cos(want)) > 1e-7 || math.Abs(float64(r)-math.Sin(want)) > 1e-7 {
						t.Errorf("%s constant power at %g: %g %g", im.name, pos, l, r)
					}
					if p := float64(l)*float64(l) + float64(r)*float64(r); math.Abs(p-1) > 1e-6 {
						t.Errorf("%s constant power at %g: power %g", im.name, pos, p)
					}
				} else if math.Abs(float64(l)+float64(r)-1) > 1e-7 || math.Abs(float64(r)-float64(1+pos)/2) > 1e-7 {
					t.Errorf("%s linear at %g: %g %g", im.name, pos, l, r)
				}
			}
		}
		if l, r := panGains(t, im.make, 0, 0); l != r || math.Abs(float64(l)-math.Sqrt(0.5)) > 1e-7 {
			t.Errorf("%s constant power centre: %g %g, want -3 dB each", im.name, l, r)
		}
		if l, r := panGains(t, im.make, 0, 1); l != 0.5 || r != 0.5 {
			t.Errorf("%s linear centre: %g %g, want 0.5 each", im.name, l, r)
		}
	}
}

// Stereo in, the mono sum panned out; one channel in, exactly the mono
// fold-down of what two identical channels would give.
func TestPanMixesAndFoldsDown(t *testing.T) {
	for _, im := range impls {
		for _, law := range []float32{0, 1} {
			for _, pos := range []float32{-0.8, 0, 0.3, 1} {
				st := noise(1000, 2, 5)
				out := clone(st)
				im.make(t, "pan", []float32{pos, law}, 2, 48000).Process(out)
				l, r := panGains(t, im.make, pos, law)
				for n := 0; n < 1000; n++ {
					m := (st[2*n] + st[2*n+1]) * 0.5
					if out[2*n] != m*l || out[2*n+1] != m*r {
						t.Fatalf("%s pos %g law %g frame %d: %g %g, want %g %g", im.name, pos, law, n, out[2*n], out[2*n+1], m*l, m*r)
					}
				}

				mono := noise(1000, 1, 6)
				dup := make([]float32, 2000)
				for n, v := range mono {
					dup[2*n], dup[2*n+1] = v, v
				}
				one := clone(mono)
				im.make(t, "pan", []float32{pos, law}, 1, 48000).Process(one)
				im.make(t, "pan", []float32{pos, law}, 2, 48000).Process(dup)
				for n := range one {
					if fold := (dup[2*n] + dup[2*n+1]) * 0.5; math.Float32bits(one[n]) != math.Float32bits(fold) {
						t.Fatalf("%s pos %g law %g: mono frame %d is %g, fold-down of stereo %g", im.name, pos, law, n, one[n], fold)
					}
				}
			}
		}
	}
}

// A move ramps both gains over 64 frames from where they are, as gain does.
func TestPanRamp(t *testing.T) {
	for _, im := range impls {
		p := im.make(t, "pan", []float32{-1, 0}, 2, 48000)
		_ = p.SetParams([]float32{1, 0})
		buf := dc(100, 2, 1)
		p.Process(buf[:2*10])
		_ = p.SetParams([]float32{1, 0}) // the same params again start nothing
		p.Process(buf[2*10:])
		for n := 0; n < 100; n++ {
			l, r := buf[2*n], buf[2*n+1]
			switch {
			case n >= 63:
				if l != 0 || r != 1 {
					t.Fatalf("%s frame %d: %g %g, want settled 0 1", im.name, n, l, r)
				}
			default:
				u := float64(n+1) / 64
				if math.Abs(float64(l)-(1-u)) > 1e-6 || math.Abs(float64(r)-u) > 1e-6 {
					t.Fatalf("%s frame %d: %g %g, want %g %g", im.name, n, l, r, 1-u, u)
				}
			}
		}
	}
}

func TestPanRefusesWhatItCannotDo(t *testing.T) {
	k, _ := cdsp.Lookup("pan")
	for _, p := range [][]float32{{1.5}, {0, 0.5}, {0, 2}} {
		if inst, err := k.New(p, 2, 48000); err == nil {
			inst.Free()
			t.Errorf("pan%v accepted", p)
		}
	}
	for _, ch := range []int{3, 4, 16} {
		if _, err := k.New(nil, ch, 48000); err == nil {
			t.Errorf("pan accepted %d channels", ch)
		}
	}
}
