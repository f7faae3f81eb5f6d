package gotwin

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Mirrors cdsp/gen.c: the generators, which replace the block with their
// signal and keep their whole position in the state.

const (
	sineStateBytes  = 40 // sizeof(us_sine_state)
	noiseStateBytes = 24 // sizeof(us_noise_state)
)

// Sine is the twin of the C "sine" kernel. phase, rate and lvl are
// us_sine_state; f and db are what a worker passes to every call.
type Sine struct {
	phase, rate float64
	lvl         level

	f, db    float32
	channels int
}

// InitSine mirrors sine_init.
func InitSine(params []float32, channels int, rate float64) (*Sine, error) {
	p, err := resolve("sine", paramsSine, params)
	if err != nil {
		return nil, err
	}
	if channels < 1 {
		return nil, fmt.Errorf("gotwin: sine: %d channels, want at least 1", channels)
	}
	r, err := abiRate("sine", rate)
	if err != nil {
		return nil, err
	}
	if !(float64(p[0]) < 0.5*float64(r)) {
		return nil, fmt.Errorf("gotwin: sine: f = %g Hz must be below rate/2 = %g Hz", p[0], 0.5*float64(r))
	}
	s := &Sine{rate: float64(r), f: p[0], db: p[1], channels: channels}
	s.lvl.init(p[1])
	return s, nil
}

// SetParams sets the f and db later blocks see.
func (s *Sine) SetParams(params []float32) error {
	p, err := resolve("sine", paramsSine, params)
	if err != nil {
		return err
	}
	s.f, s.db = p[0], p[1]
	return nil
}

// Process mirrors sine_process.
func (s *Sine) Process(buf []float32) {
	ch := s.channels
	frames := len(buf) / ch
	if frames*ch != len(buf) {
		panic("gotwin: sine: buffer length is not a whole number of frames")
	}
	inc := float64(s.f) / s.rate
	s.lvl.set(s.db)
	ph := s.phase
	for n := 0; n < frames; n++ {
		g := s.lvl.next()
		v := float32(sinTurns(ph)) * g
		for c := 0; c < ch; c++ {
			buf[n*ch+c] = v
		}
		ph = ph + inc
		if ph >= 1.0 {
			ph = ph - float64(int64(ph))
		}
	}
	s.phase = ph
}

// State encodes us_sine_state.
func (s *Sine) State() []byte {
	b := make([]byte, sineStateBytes)
	le := binary.LittleEndian
	le.PutUint64(b[0:], math.Float64bits(s.phase))
	le.PutUint64(b[8:], math.Float64bits(s.rate))
	s.lvl.put(b[16:])
	return b
}

// SetState adopts a us_sine_state.
func (s *Sine) SetState(b []byte) error {
	if len(b) != sineStateBytes {
		return fmt.Errorf("gotwin: sine state is %d bytes, got %d", sineStateBytes, len(b))
	}
	le := binary.LittleEndian
	s.phase = math.Float64frombits(le.Uint64(b[0:]))
	s.rate = math.Float64frombits(le.Uint64(b[8:]))
	s.lvl.get(b[16:])
	return nil
}

// Noise is the twin of the C "noise" kernel. x and lvl are us_noise_state;
// db is what a worker passes to every call (the seed is read at init only).
type Noise struct {
	x   uint32
	lvl level

	db       float32
	channels int
}

// noiseMix is noise_mix: MurmurHash3's finaliser, never 0.
func noiseMix(h uint32) uint32 {
	h += 0x9e3779b9
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	if h == 0 {
		return 0x6d2b79f5
	}
	return h
}

// InitNoise mirrors noise_init.
func InitNoise(params []float32, channels int, rate float64) (*Noise, error) {
	p, err := resolve("noise", paramsNoise, params)
	if err != nil {
		return nil, err
	}
	if channels < 1 {
		return nil, fmt.Errorf("gotwin: noise: %d channels, want at least 1", channels)
	}
	if _, err := abiRate("noise", rate); err != nil {
		return nil, err
	}
	x := &Noise{x: noiseMix(uint32(p[0])), db: p[1], channels: channels}
	x.lvl.init(p[1])
	return x, nil
}

// SetParams sets the db later blocks see; a new seed is ignored, as in C.
func (x *Noise) SetParams(params []float32) error {
	p, err := resolve("noise", paramsNoise, params)
	if err != nil {
		return err
	}
	x.db = p[1]
	return nil
}

// Process mirrors noise_process.
func (x *Noise) Process(buf []float32) {
	ch := x.channels
	frames := len(buf) / ch
	if frames*ch != len(buf) {
		panic("gotwin: noise: buffer length is not a whole number of frames")
	}
	x.lvl.set(x.db)
	s := x.x
	for n := 0; n < frames; n++ {
		g := x.lvl.next()
		for c := 0; c < ch; c++ {
			s ^= s << 13
			s ^= s >> 17
			s ^= s << 5
			buf[n*ch+c] = float32(float32(int32(s))*0x1p-31) * g
		}
	}
	x.x = s
}

// State encodes us_noise_state.
func (x *Noise) State() []byte {
	b := make([]byte, noiseStateBytes)
	binary.LittleEndian.PutUint32(b[0:], x.x)
	x.lvl.put(b[4:])
	return b
}

// SetState adopts a us_noise_state.
func (x *Noise) SetState(b []byte) error {
	if len(b) != noiseStateBytes {
		return fmt.Errorf("gotwin: noise state is %d bytes, got %d", noiseStateBytes, len(b))
	}
	x.x = binary.LittleEndian.Uint32(b[0:])
	x.lvl.get(b[4:])
	return nil
}
