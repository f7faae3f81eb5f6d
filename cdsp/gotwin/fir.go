package gotwin

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Mirrors cdsp/fir.c; see there for the design (Hamming-windowed sinc,
// folded direct form, why not FFT) and the channel limit.

const (
	firMaxTaps     = 4096 // US_FIR_MAX_TAPS
	firHalfMax     = firMaxTaps / 2
	firHist        = firMaxTaps // US_FIR_HIST, floats of history per channel
	firMaxChannels = 3          // US_FIR_MAX_CHANNELS
	firHeader      = 16         // sizeof(us_fir_state) before h
	firChunk       = 256
)

// FIR is the twin of the C "fir" kernel. h and d are us_fir_state's arrays,
// at their full C sizes, so that State is a plain encoding.
type FIR struct {
	channels, taps uint32
	h              [firHalfMax]float32
	d              []float32 // [channel][firHist], the last taps-1 inputs oldest first

	w []float32 // scratch: history then a chunk of input
}

// FIRStateBytes is fir_state_bytes: 0 beyond three channels, where the state
// for 4096 taps does not fit a lane.
func FIRStateBytes(channels int) int {
	if channels > firMaxChannels {
		return 0
	}
	return firHeader + 4*firHalfMax + 4*channels*firHist
}

// firTap is fir_tap: the unnormalised, windowed tap k of n.
func firTap(n, k uint32, fc float64) float64 {
	m := float64(n-1-2*k) * 0.5
	var s float64
	if m == 0 {
		s = 2.0 * fc
	} else {
		ph := float64(fc * m)
		r := ph - float64(int64(ph+0.5))
		ar := r
		if r < 0 {
			ar = -r
		}
		sn, _ := detSincos(float64(twoPi * ar))
		if r < 0 {
			sn = -sn
		}
		s = sn / float64(pi*m)
	}
	w := 1.0
	if n > 1 {
		_, cs := detSincos(float64(twoPi*float64(k)) / float64(n-1))
		w = 0.54 - float64(0.46*cs)
	}
	return float64(s * w)
}

// InitFIR mirrors fir_init.
func InitFIR(params []float32, channels int, rate float64) (*FIR, error) {
	p, err := resolve("fir", paramsFIR, params)
	if err != nil {
		return nil, err
	}
	if channels < 1 || channels > firMaxChannels {
		return nil, fmt.Errorf("gotwin: fir: %d channels, want 1..%d (the state for %d taps must fit a lane)",
			channels, firMaxChannels, firMaxTaps)
	}
	r, err := abiRate("fir", rate)
	if err != nil {
		return nil, err
	}
	f := p[0]
	if !(float64(f) < 0.5*float64(r)) {
		return nil, fmt.Errorf("gotwin: fir: f = %g Hz must be below rate/2 = %g Hz", f, 0.5*float64(r))
	}
	n := uint32(p[1])
	half, kept := n/2, (n+1)/2
	fc := float64(f) / float64(r)

	t := make([]float64, kept)
	sum := 0.0
	for k := uint32(0); k < kept; k++ {
		t[k] = firTap(n, k, fc)
		if k < half {
			sum = sum + float64(2.0*t[k])
		} else {
			sum = sum + t[k]
		}
	}
	x := &FIR{channels: uint32(channels), taps: n, d: make([]float32, channels*firHist)}
	for k := range t {
		x.h[k] = float32(t[k] / sum)
	}
	return x, nil
}

// SetParams checks params and, like fir_process, otherwise ignores them.
func (x *FIR) SetParams(params []float32) error {
	_, err := resolve("fir", paramsFIR, params)
	return err
}

// firDot is us_fir_dot1.
func firDot(h []float32, taps int, w []float32) float32 {
	half := taps / 2
	var acc float32
	for k := 0; k < half; k++ {
		acc = acc + float32(h[k]*(w[taps-1-k]+w[k]))
	}
	if taps&1 == 1 {
		acc = acc + float32(h[half]*w[half])
	}
	return acc
}

// Process mirrors us_fir_run with the scalar block.
func (x *FIR) Process(buf []float32) {
	ch := int(x.channels)
	frames := len(buf) / ch
	if frames*ch != len(buf) {
		panic("gotwin: fir: buffer length is not a whole number of frames")
	}
	taps := int(x.taps)
	keep := taps - 1
	if x.w == nil {
		x.w = make([]float32, firMaxTaps-1+firChunk)
	}
	w := x.w
	for c := 0; c < ch; c++ {
		hist := x.d[c*firHist : c*firHist+keep]
		copy(w, hist)
		for n0 := 0; n0 < frames; {
			m := min(firChunk, frames-n0)
			for i := 0; i < m; i++ {
				w[keep+i] = buf[(n0+i)*ch+c]
			}
			for i := 0; i < m; i++ {
				buf[(n0+i)*ch+c] = firDot(x.h[:], taps, w[i:])
			}
			copy(w, w[m:m+keep])
			n0 += m
		}
		copy(hist, w[:keep])
	}
}

// State encodes us_fir_state, little-endian.
func (x *FIR) State() []byte {
	out := make([]byte, FIRStateBytes(int(x.channels)))
	le := binary.LittleEndian
	le.PutUint32(out[0:], x.channels)
	le.PutUint32(out[4:], x.taps)
	for i, f := range x.h {
		le.PutUint32(out[firHeader+4*i:], math.Float32bits(f))
	}
	for i, f := range x.d {
		le.PutUint32(out[firHeader+4*firHalfMax+4*i:], math.Float32bits(f))
	}
	return out
}

// SetState adopts a us_fir_state made for the same channel count; like a C
// spare, it takes the taps from the bytes.
func (x *FIR) SetState(in []byte) error {
	if len(in) != FIRStateBytes(int(x.channels)) {
		return fmt.Errorf("gotwin: fir state is %d bytes, got %d", FIRStateBytes(int(x.channels)), len(in))
	}
	le := binary.LittleEndian
	ch, taps := le.Uint32(in[0:]), le.Uint32(in[4:])
	if ch != x.channels || taps < 1 || taps > firMaxTaps {
		return fmt.Errorf("gotwin: fir state holds %d channels x %d taps, want %d x 1..%d", ch, taps, x.channels, firMaxTaps)
	}
	x.taps = taps
	for i := range x.h {
		x.h[i] = math.Float32frombits(le.Uint32(in[firHeader+4*i:]))
	}
	for i := range x.d {
		x.d[i] = math.Float32frombits(le.Uint32(in[firHeader+4*firHalfMax+4*i:]))
	}
	return nil
}
