package gotwin

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Mirrors cdsp/pan.c; see there for what the kernel does with one and with
// two channels, and the two laws.

const (
	panRamp        = 64 // US_PAN_RAMP
	panMaxChannels = 2
	panStateBytes  = 40 // sizeof(us_pan_state)
)

// Pan is the twin of the C "pan" kernel. The fields up to ramp are
// us_pan_state; pos and law below are what a worker passes to every call.
type Pan struct {
	channels       uint32
	statePos, law  float32 // the params the targets were made from
	tl, tr, sl, sr float32
	cl, cr         float32
	ramp           uint32

	pos, lawParam float32
}

// PanStateBytes is pan_state_bytes: 0 beyond two channels.
func PanStateBytes(channels int) int {
	if channels > panMaxChannels {
		return 0
	}
	return panStateBytes
}

// panLaw is us_pan_law (cdsp/us_panlaw.h), shared with mix: the gains in
// double, before any rounding to float.
func panLaw(pos, law float32) (gl, gr float64) {
	if law != 0 {
		return float64(1.0-float64(pos)) * 0.5, float64(1.0+float64(pos)) * 0.5
	}
	ap := float64(pos)
	if pos < 0 {
		ap = -float64(pos)
	}
	a := float64((1.0 - ap) * (pi * 0.25))
	s, c := detSincos(a)
	if pos > 0 {
		return s, c
	}
	return c, s
}

// panGains is pan_gains.
func panGains(pos, law float32) (gl, gr float32) {
	l, r := panLaw(pos, law)
	return float32(l), float32(r)
}

// InitPan mirrors pan_init.
func InitPan(params []float32, channels int, rate float64) (*Pan, error) {
	p, err := resolve("pan", paramsPan, params)
	if err != nil {
		return nil, err
	}
	if channels < 1 || channels > panMaxChannels {
		return nil, fmt.Errorf("gotwin: pan: %d channels, want 1 or 2", channels)
	}
	if _, err := abiRate("pan", rate); err != nil {
		return nil, err
	}
	x := &Pan{channels: uint32(channels), statePos: p[0], law: p[1], ramp: panRamp, pos: p[0], lawParam: p[1]}
	x.tl, x.tr = panGains(p[0], p[1])
	x.sl, x.cl = x.tl, x.tl
	x.sr, x.cr = x.tr, x.tr
	return x, nil
}

// SetParams sets the pos and law later blocks see; Process ramps to them.
func (x *Pan) SetParams(params []float32) error {
	p, err := resolve("pan", paramsPan, params)
	if err != nil {
		return err
	}
	x.pos, x.lawParam = p[0], p[1]
	return nil
}

// Process mirrors pan_process.
func (x *Pan) Process(buf []float32) {
	ch := int(x.channels)
	frames := len(buf) / ch
	if frames*ch != len(buf) {
		panic("gotwin: pan: buffer length is not a whole number of frames")
	}
	if x.pos != x.statePos || x.lawParam != x.law {
		x.statePos, x.law = x.pos, x.lawParam
		x.tl, x.tr = panGains(x.pos, x.lawParam)
		x.sl, x.sr = x.cl, x.cr
		if x.tl == x.cl && x.tr == x.cr {
			x.ramp = panRamp
		} else {
			x.ramp = 0
		}
	}
	gl, gr, ramp := x.cl, x.cr, x.ramp
	for n := 0; n < frames; n++ {
		if ramp < panRamp {
			ramp++
			if ramp == panRamp {
				gl, gr = x.tl, x.tr
			} else {
				u := float32(ramp) * (1.0 / panRamp)
				gl = x.sl + float32((x.tl-x.sl)*u)
				gr = x.sr + float32((x.tr-x.sr)*u)
			}
		}
		if ch == 2 {
			m := (buf[2*n] + buf[2*n+1]) * 0.5
			buf[2*n] = m * gl
			buf[2*n+1] = m * gr
		} else {
			v := buf[n]
			buf[n] = (float32(v*gl) + float32(v*gr)) * 0.5
		}
	}
	x.cl, x.cr, x.ramp = gl, gr, ramp
}

// State encodes us_pan_state.
func (x *Pan) State() []byte {
	b := make([]byte, panStateBytes)
	le := binary.LittleEndian
	le.PutUint32(b[0:], x.channels)
	for i, f := range []float32{x.statePos, x.law, x.tl, x.tr, x.sl, x.sr, x.cl, x.cr} {
		le.PutUint32(b[4+4*i:], math.Float32bits(f))
	}
	le.PutUint32(b[36:], x.ramp)
	return b
}

// SetState adopts a us_pan_state made for the same channel count.
func (x *Pan) SetState(b []byte) error {
	if len(b) != panStateBytes {
		return fmt.Errorf("gotwin: pan state is %d bytes, got %d", panStateBytes, len(b))
	}
	le := binary.LittleEndian
	if ch := le.Uint32(b[0:]); ch != x.channels {
		return fmt.Errorf("gotwin: pan state is for %d channels, want %d", ch, x.channels)
	}
	f := func(i int) float32 { return math.Float32frombits(le.Uint32(b[4+4*i:])) }
	x.statePos, x.law, x.tl, x.tr, x.sl, x.sr, x.cl, x.cr = f(0), f(1), f(2), f(3), f(4), f(5), f(6), f(7)
	x.ramp = le.Uint32(b[36:])
	return nil
}
