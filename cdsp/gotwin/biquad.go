package gotwin

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Mirrors cdsp/biquad.c; see there for the design notes (Direct Form I, and
// why coefficients are fixed at init).

const (
	maxSections = 8  // US_BQ_MAX_SECTIONS
	bqHeader    = 32 // sizeof(us_bq_state) before z
)

type design int

const (
	lowpass design = iota
	highpass
	bandpass
	peaking
	lowshelf
	highshelf
)

var designNames = [...]string{"lowpass", "highpass", "bandpass", "peaking", "lowshelf", "highshelf"}

func (d design) specs() []ParamSpec {
	if d >= peaking {
		return paramsShaped
	}
	return paramsPlain
}

// Biquad is the twin of the C biquad kernels. The fields up to z are
// us_bq_state; z holds [channel][section][x1 x2 y1 y2], sized for the
// sections in use (the C state reserves room for eight).
type Biquad struct {
	channels, sections uint32
	b0, b1, b2, a1, a2 float32
	z                  []float32

	d    design
	name string
}

func (b *Biquad) specs() []ParamSpec { return b.d.specs() }

// BiquadStateBytes is bq_state_bytes.
func BiquadStateBytes(channels int) int { return bqHeader + channels*maxSections*4*4 }

func InitLowpass(params []float32, channels int, rate float64) (*Biquad, error) {
	return initBiquad(lowpass, params, channels, rate)
}

func InitHighpass(params []float32, channels int, rate float64) (*Biquad, error) {
	return initBiquad(highpass, params, channels, rate)
}

func InitBandpass(params []float32, channels int, rate float64) (*Biquad, error) {
	return initBiquad(bandpass, params, channels, rate)
}

func InitPeaking(params []float32, channels int, rate float64) (*Biquad, error) {
	return initBiquad(peaking, params, channels, rate)
}

func InitLowshelf(params []float32, channels int, rate float64) (*Biquad, error) {
	return initBiquad(lowshelf, params, channels, rate)
}

func InitHighshelf(params []float32, channels int, rate float64) (*Biquad, error) {
	return initBiquad(highshelf, params, channels, rate)
}

func initBiquad(d design, params []float32, channels int, rate float64) (*Biquad, error) {
	name := designNames[d]
	p, err := resolve(name, d.specs(), params)
	if err != nil {
		return nil, err
	}
	if channels < 1 || channels > math.MaxUint32 {
		return nil, fmt.Errorf("gotwin: %s: %d channels, want at least 1", name, channels)
	}
	r, err := abiRate(name, rate)
	if err != nil {
		return nil, err
	}
	f, q, db, sections := p[0], p[1], float32(0), p[2]
	if d >= peaking {
		db, sections = p[2], p[3]
	}
	if !(float64(f) < 0.5*float64(r)) {
		return nil, fmt.Errorf("gotwin: %s: f = %g Hz must be below rate/2 = %g Hz", name, f, 0.5*float64(r))
	}

	sn, cs := detSincos((twoPi * float64(f)) / float64(r))
	alpha := sn / (2.0 * float64(q))
	A := detExp(float64(float64(db) * ln10_40))
	sqrtA := detExp(float64(float64(db) * ln10_80))
	ap1, am1, twoSqrtAalpha := A+1.0, A-1.0, float64(2.0*sqrtA*alpha)
	amc := float64(am1 * cs)
	apc := float64(ap1 * cs)

	var b0, b1, b2, a0, a1, a2 float64
	switch d {
	case lowpass:
		b1 = 1.0 - cs
		b0 = b1 * 0.5
		b2 = b0
		a0, a1, a2 = 1.0+alpha, -2.0*cs, 1.0-alpha
	case highpass:
		b1 = -(1.0 + cs)
		b0 = (1.0 + cs) * 0.5
		b2 = b0
		a0, a1, a2 = 1.0+alpha, -2.0*cs, 1.0-alpha
	case bandpass:
		b0, b1, b2 = alpha, 0.0, -alpha
		a0, a1, a2 = 1.0+alpha, -2.0*cs, 1.0-alpha
	case peaking:
		aA := float64(alpha * A)
		b0, b1, b2 = 1.0+aA, -2.0*cs, 1.0-aA
		a0, a1, a2 = 1.0+alpha/A, -2.0*cs, 1.0-alpha/A
	case lowshelf:
		b0 = A * ((ap1 - amc) + twoSqrtAalpha)
		b1 = 2.0 * A * (am1 - apc)
		b2 = A * ((ap1 - amc) - twoSqrtAalpha)
		a0 = (ap1 + amc) + twoSqrtAalpha
		a1 = -2.0 * (am1 + apc)
		a2 = (ap1 + amc) - twoSqrtAalpha
	case highshelf:
		b0 = A * ((ap1 + amc) + twoSqrtAalpha)
		b1 = -2.0 * A * (am1 + apc)
		b2 = A * ((ap1 + amc) - twoSqrtAalpha)
		a0 = (ap1 - amc) + twoSqrtAalpha
		a1 = 2.0 * (am1 - apc)
		a2 = (ap1 - amc) - twoSqrtAalpha
	}

	return &Biquad{
		channels: uint32(channels),
		sections: uint32(sections),
		b0:       float32(b0 / a0),
		b1:       float32(b1 / a0),
		b2:       float32(b2 / a0),
		a1:       float32(a1 / a0),
		a2:       float32(a2 / a0),
		z:        make([]float32, channels*int(sections)*4),
		d:        d,
		name:     name,
	}, nil
}

// SetParams checks params and, like bq_process, otherwise ignores them: the
// coefficients belong to the state.
func (b *Biquad) SetParams(params []float32) error {
	_, err := resolve(b.name, b.specs(), params)
	return err
}

// Process mirrors bq_process, expression for expression.
func (b *Biquad) Process(buf []float32) {
	ch := int(b.channels)
	frames := len(buf) / ch
	if frames*ch != len(buf) {
		panic("gotwin: biquad: buffer length is not a whole number of frames")
	}
	b0, b1, b2, a1, a2 := b.b0, b.b1, b.b2, b.a1, b.a2
	ns := int(b.sections)
	for c := 0; c < ch; c++ {
		for s := 0; s < ns; s++ {
			z := b.z[(c*ns+s)*4 : (c*ns+s)*4+4 : (c*ns+s)*4+4]
			x1, x2, y1, y2 := z[0], z[1], z[2], z[3]
			for p := c; p < len(buf); p += ch {
				x := buf[p]
				y := float32(b0*x) + float32(b1*x1) + float32(b2*x2) - float32(a1*y1) - float32(a2*y2)
				x2, x1 = x1, x
				y2, y1 = y1, y
				buf[p] = y
			}
			z[0], z[1], z[2], z[3] = x1, x2, y1, y2
		}
	}
}

// State encodes us_bq_state, little-endian, including the zeroed room for
// sections not in use.
func (b *Biquad) State() []byte {
	out := make([]byte, BiquadStateBytes(int(b.channels)))
	le := binary.LittleEndian
	le.PutUint32(out[0:], b.channels)
	le.PutUint32(out[4:], b.sections)
	for i, f := range []float32{b.b0, b.b1, b.b2, b.a1, b.a2} {
		le.PutUint32(out[8+4*i:], math.Float32bits(f))
	}
	for i, f := range b.z {
		le.PutUint32(out[bqHeader+4*i:], math.Float32bits(f))
	}
	return out
}

// SetState adopts a us_bq_state made for the same channel count; like a C
// spare, it takes coefficients and section count from the bytes.
func (b *Biquad) SetState(in []byte) error {
	if len(in) != BiquadStateBytes(int(b.channels)) {
		return fmt.Errorf("gotwin: %s state is %d bytes, got %d", b.name, BiquadStateBytes(int(b.channels)), len(in))
	}
	le := binary.LittleEndian
	ch, ns := le.Uint32(in[0:]), le.Uint32(in[4:])
	if ch != b.channels || ns < 1 || ns > maxSections {
		return fmt.Errorf("gotwin: %s state holds %d channels x %d sections, want %d x 1..%d",
			b.name, ch, ns, b.channels, maxSections)
	}
	f := func(off int) float32 { return math.Float32frombits(le.Uint32(in[off:])) }
	b.sections = ns
	b.b0, b.b1, b.b2, b.a1, b.a2 = f(8), f(12), f(16), f(20), f(24)
	b.z = make([]float32, int(ch*ns)*4)
	for i := range b.z {
		b.z[i] = f(bqHeader + 4*i)
	}
	return nil
}
