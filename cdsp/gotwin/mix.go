package gotwin

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Mirrors cdsp/mix.c; see there for the mix, the fixed sum order (with zero
// gains left out and sums started from -0) and the one-channel fold-down.

const (
	mixRamp       = 64 // US_MIX_RAMP
	mixMaxInputs  = 8  // US_MIX_MAX_INPUTS
	mixLaw        = mixMaxInputs
	mixTrim       = mixMaxInputs + 1
	mixParams     = mixMaxInputs + 2
	mixTrimMin    = -60
	mixTrimMax    = 12
	mixStateBytes = 240 // sizeof(us_mix_state)
)

// negZero is -0, where every sum starts. (A Go constant -0.0 is +0.)
var negZero = math.Float32frombits(0x80000000)

var paramsMix = func() []ParamSpec {
	ps := make([]ParamSpec, 0, mixParams)
	for i := 1; i <= mixMaxInputs; i++ {
		ps = append(ps, ParamSpec{fmt.Sprintf("p%d", i), "", -1, 1, 0, false})
	}
	return append(ps, ParamSpec{"law", "", 0, 1, 0, true}, ParamSpec{"trim", "dB", mixTrimMin, mixTrimMax, 0, false})
}()

// Mix is the twin of the C "mix" kernel. The fields up to cr are
// us_mix_state, in its order; params is what a worker passes to every call.
type Mix struct {
	channels  uint32
	ramp      uint32
	law, trim float32 // the params the targets were made from
	pos       [mixMaxInputs]float32
	tl, tr    [mixMaxInputs]float32 // target gains, trim included
	sl, sr    [mixMaxInputs]float32 // gains the current ramp left from
	cl, cr    [mixMaxInputs]float32 // gains applied to the last frame

	params [mixParams]float32
}

// MixStateBytes is mix_state_bytes: 0 beyond eight channels.
func MixStateBytes(channels int) int {
	if channels > mixMaxInputs {
		return 0
	}
	return mixStateBytes
}

// targets is mix_targets.
func (x *Mix) targets(p *[mixParams]float32, n int) {
	law, trim := p[mixLaw], p[mixTrim]
	db := float32(mixTrimMin)
	if trim >= mixTrimMin {
		db = mixTrimMax
		if trim <= mixTrimMax {
			db = trim
		}
	}
	t := detExp(float64(float64(db) * ln10_20))
	x.law, x.trim = law, trim
	for i := 0; i < n; i++ {
		x.pos[i] = p[i]
		l, r := panLaw(p[i], law)
		x.tl[i] = float32(l * t)
		x.tr[i] = float32(r * t)
	}
}

// InitMix mirrors mix_init.
func InitMix(params []float32, channels int, rate float64) (*Mix, error) {
	p, err := resolve("mix", paramsMix, params)
	if err != nil {
		return nil, err
	}
	if channels < 1 || channels > mixMaxInputs {
		return nil, fmt.Errorf("gotwin: mix: %d channels, want 1 to %d", channels, mixMaxInputs)
	}
	if _, err := abiRate("mix", rate); err != nil {
		return nil, err
	}
	x := &Mix{channels: uint32(channels), ramp: mixRamp}
	copy(x.params[:], p)
	x.targets(&x.params, channels)
	x.sl, x.cl = x.tl, x.tl
	x.sr, x.cr = x.tr, x.tr
	return x, nil
}

// SetParams sets the params later blocks see; Process ramps to them.
func (x *Mix) SetParams(params []float32) error {
	p, err := resolve("mix", paramsMix, params)
	if err != nil {
		return err
	}
	copy(x.params[:], p)
	return nil
}

// Process mirrors mix_process.
func (x *Mix) Process(buf []float32) {
	n := int(x.channels)
	frames := len(buf) / n
	if frames*n != len(buf) {
		panic("gotwin: mix: buffer length is not a whole number of frames")
	}
	p := &x.params
	changed := p[mixLaw] != x.law || p[mixTrim] != x.trim
	for i := 0; i < n; i++ {
		changed = changed || p[i] != x.pos[i]
	}
	if changed {
		x.targets(p, n)
		settled := true
		for i := 0; i < n; i++ {
			x.sl[i], x.sr[i] = x.cl[i], x.cr[i]
			settled = settled && x.tl[i] == x.cl[i] && x.tr[i] == x.cr[i]
		}
		if settled {
			x.ramp = mixRamp
		} else {
			x.ramp = 0
		}
	}

	gl, gr, ramp := x.cl, x.cr, x.ramp
	for f := 0; f < frames; f++ {
		if ramp < mixRamp {
			ramp++
			if ramp == mixRamp {
				for i := 0; i < n; i++ {
					gl[i], gr[i] = x.tl[i], x.tr[i]
				}
			} else {
				u := float32(ramp) * (1.0 / mixRamp)
				for i := 0; i < n; i++ {
					gl[i] = x.sl[i] + float32((x.tl[i]-x.sl[i])*u)
					gr[i] = x.sr[i] + float32((x.tr[i]-x.sr[i])*u)
				}
			}
		}
		fr := buf[f*n : f*n+n]
		l, r := negZero, negZero
		for i, v := range fr {
			if gl[i] != 0 {
				l = l + float32(v*gl[i])
			}
			if gr[i] != 0 {
				r = r + float32(v*gr[i])
			}
		}
		if n == 1 {
			fr[0] = (l + r) * 0.5
		} else {
			fr[0], fr[1] = l, r
			for i := 2; i < n; i++ {
				fr[i] = 0
			}
		}
	}
	x.cl, x.cr, x.ramp = gl, gr, ramp
}

// State encodes us_mix_state.
func (x *Mix) State() []byte {
	b := make([]byte, 0, mixStateBytes)
	le := binary.LittleEndian
	b = le.AppendUint32(b, x.channels)
	b = le.AppendUint32(b, x.ramp)
	b = le.AppendUint32(b, math.Float32bits(x.law))
	b = le.AppendUint32(b, math.Float32bits(x.trim))
	for _, a := range []*[mixMaxInputs]float32{&x.pos, &x.tl, &x.tr, &x.sl, &x.sr, &x.cl, &x.cr} {
		for _, f := range a {
			b = le.AppendUint32(b, math.Float32bits(f))
		}
	}
	return b
}

// SetState adopts a us_mix_state made for the same channel count.
func (x *Mix) SetState(b []byte) error {
	if len(b) != mixStateBytes {
		return fmt.Errorf("gotwin: mix state is %d bytes, got %d", mixStateBytes, len(b))
	}
	le := binary.LittleEndian
	if ch := le.Uint32(b[0:]); ch != x.channels {
		return fmt.Errorf("gotwin: mix state is for %d channels, want %d", ch, x.channels)
	}
	f := func(off int) float32 { return math.Float32frombits(le.Uint32(b[off:])) }
	x.ramp = le.Uint32(b[4:])
	x.law, x.trim = f(8), f(12)
	off := 16
	for _, a := range []*[mixMaxInputs]float32{&x.pos, &x.tl, &x.tr, &x.sl, &x.sr, &x.cl, &x.cr} {
		for i := range a {
			a[i] = f(off)
			off += 4
		}
	}
	return nil
}
