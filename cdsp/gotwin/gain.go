package gotwin

import (
	"encoding/binary"
	"fmt"
	"math"
)

// gainRamp is US_GAIN_RAMP in cdsp/gain.c.
const gainRamp = 64

// gainStateBytes is sizeof(us_gain_state).
const gainStateBytes = 20

// Gain is the twin of the C "gain" kernel. The first five fields are
// us_gain_state; param and channels are what a worker passes to every call.
type Gain struct {
	db     float32 // the param value the target was made from
	target float32
	start  float32
	cur    float32
	pos    uint32

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
	g := &Gain{db: p[0], pos: gainRamp, param: p[0], channels: channels}
	g.target = dbToLinear(p[0])
	g.start, g.cur = g.target, g.target
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
	if db := g.param; db != g.db {
		g.db = db
		g.target = dbToLinear(db)
		g.start = g.cur
		if g.target == g.cur {
			g.pos = gainRamp
		} else {
			g.pos = 0
		}
	}

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
	b := make([]byte, 0, gainStateBytes)
	for _, f := range []float32{g.db, g.target, g.start, g.cur} {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return binary.LittleEndian.AppendUint32(b, g.pos)
}

// SetState adopts a us_gain_state.
func (g *Gain) SetState(b []byte) error {
	if len(b) != gainStateBytes {
		return fmt.Errorf("gotwin: gain state is %d bytes, got %d", gainStateBytes, len(b))
	}
	f := func(i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])) }
	g.db, g.target, g.start, g.cur = f(0), f(1), f(2), f(3)
	g.pos = binary.LittleEndian.Uint32(b[16:])
	return nil
}
