package gotwin

import (
	"fmt"
)

// gainRamp is US_GAIN_RAMP in cdsp/gain.c.
const gainRamp = 64

// gainStateBytes is sizeof(us_gain_state).
const gainStateBytes = 20

// Gain is the twin of the C "gain" kernel. The first five fields are
// us_gain_state; param and channels are what a worker passes to every call.
type Gain struct {
	level // the ramp: db (the param value the target was made from), target, start, cur, pos

	param    float32
	channels int
}

func dbToLinear(db float32) float32 {
	return float32(detExp(float64(float64(db) * ln10_20)))
}

// InitGain mirrors gain_init: the gain starts settled, with no fade-in.
func InitGain(params []float32, channels int, rate float64) (*Gain, error) {
	p, err := resolve("gain", paramsGain, params)
	if err != nil {
		return nil, err
	}
	if channels < 1 {
		return nil, fmt.Errorf("gotwin: gain: %d channels, want at least 1", channels)
	}
	if _, err := abiRate("gain", rate); err != nil {
		return nil, err
	}
	g := &Gain{param: p[0], channels: channels}
	g.init(p[0])
	return g, nil
}

// SetParams sets the db later blocks see; as in C, Process notices the change
// and starts the ramp.
func (g *Gain) SetParams(params []float32) error {
	p, err := resolve("gain", paramsGain, params)
	if err != nil {
		return err
	}
	g.param = p[0]
	return nil
}

// Process mirrors gain_process.
func (g *Gain) Process(buf []float32) {
	ch := g.channels
	frames := len(buf) / ch
	if frames*ch != len(buf) {
		panic("gotwin: gain: buffer length is not a whole number of frames")
	}
	g.set(g.param)

	pos, gn := g.pos, g.cur
	i, n := 0, 0
	for ; n < frames && pos < gainRamp; n++ {
		pos++
		if pos == gainRamp {
			gn = g.target
		} else {
			gn = g.start + float32((g.target-g.start)*(float32(pos)*(1.0/gainRamp)))
		}
		for c := 0; c < ch; c, i = c+1, i+1 {
			buf[i] = buf[i] * gn
		}
	}
	g.pos, g.cur = pos, gn
	for ; i < len(buf); i++ {
		buf[i] = buf[i] * gn
	}
}

// State encodes us_gain_state, little-endian as on every target we build for.
func (g *Gain) State() []byte {
	b := make([]byte, gainStateBytes)
	g.put(b)
	return b
}

// SetState adopts a us_gain_state.
func (g *Gain) SetState(b []byte) error {
	if len(b) != gainStateBytes {
		return fmt.Errorf("gotwin: gain state is %d bytes, got %d", gainStateBytes, len(b))
	}
	g.get(b)
	return nil
}
