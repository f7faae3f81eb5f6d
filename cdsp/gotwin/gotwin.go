// Package gotwin holds pure-Go twins of the C kernels in package cdsp: the
// same algorithms, parameters, state layout and operation order in float32,
// so that on amd64 a twin's output and state are bit-identical to the C
// kernel's. They serve as a readable reference, as an oracle for C variants,
// and as a way to run a chain where cgo is not available.
//
// Go may fuse x*y+z into one FMA on some architectures (arm64, ppc64le,
// s390x), which C built with contraction off never does. Every product that
// feeds an add is therefore wrapped in an explicit float32() or float64()
// conversion, which the Go spec defines as a rounding that prevents fusion.
package gotwin

import (
	"fmt"
	"math"
	"strings"
)

// ParamSpec mirrors cdsp.ParamSpec (and us_param_spec in C).
type ParamSpec struct {
	Name, Unit        string
	Min, Max, Default float32
	Integer           bool
}

// Processor is what every twin offers, mirroring the ABI: params may change
// between blocks, and the state is exactly the bytes the C kernel commits.
type Processor interface {
	// Process runs one interleaved block in place.
	Process(buf []float32)
	// SetParams changes the params later blocks see, as a host does.
	SetParams(params []float32) error
	// State returns the state in the C kernel's byte layout.
	State() []byte
	// SetState adopts state bytes from State() or from the C kernel.
	SetState(b []byte) error
}

var (
	paramsGain   = []ParamSpec{{"db", "dB", -120, 24, 0, false}}
	paramF       = ParamSpec{"f", "Hz", 10, 20000, 1000, false}
	paramQ       = ParamSpec{"q", "", 0.1, 40, 0.7071, false}
	paramDB      = ParamSpec{"db", "dB", -48, 48, 0, false}
	paramSection = ParamSpec{"sections", "", 1, 8, 1, true}
	paramsPlain  = []ParamSpec{paramF, paramQ, paramSection}
	paramsShaped = []ParamSpec{paramF, paramQ, paramDB, paramSection}
	paramsFIR    = []ParamSpec{paramF, {"taps", "", 1, 4096, 63, true}}
	paramsPan    = []ParamSpec{{"pos", "", -1, 1, 0, false}, {"law", "", 0, 1, 0, true}}
	paramGenDB   = ParamSpec{"db", "dB", -120, 0, -20, false}
	paramsSine   = []ParamSpec{{"f", "Hz", 0, 20000, 1000, false}, paramGenDB}
	paramsNoise  = []ParamSpec{{"seed", "", 0, 16777215, 1, true}, paramGenDB}
)

type entry struct {
	name   string
	params []ParamSpec
	init   func(p []float32, channels int, rate float64) (Processor, error)
}

// registry lists the twins in the C registry's order of names. A twin is
// the scalar kernel's twin, and so every variant's: they all give its bits.
var registry = []entry{
	{"gain", paramsGain, func(p []float32, c int, r float64) (Processor, error) { return InitGain(p, c, r) }},
	{"lowpass", paramsPlain, func(p []float32, c int, r float64) (Processor, error) { return InitLowpass(p, c, r) }},
	{"highpass", paramsPlain, func(p []float32, c int, r float64) (Processor, error) { return InitHighpass(p, c, r) }},
	{"bandpass", paramsPlain, func(p []float32, c int, r float64) (Processor, error) { return InitBandpass(p, c, r) }},
	{"peaking", paramsShaped, func(p []float32, c int, r float64) (Processor, error) { return InitPeaking(p, c, r) }},
	{"lowshelf", paramsShaped, func(p []float32, c int, r float64) (Processor, error) { return InitLowshelf(p, c, r) }},
	{"highshelf", paramsShaped, func(p []float32, c int, r float64) (Processor, error) { return InitHighshelf(p, c, r) }},
	{"fir", paramsFIR, func(p []float32, c int, r float64) (Processor, error) { return InitFIR(p, c, r) }},
	{"pan", paramsPan, func(p []float32, c int, r float64) (Processor, error) { return InitPan(p, c, r) }},
	{"mix", paramsMix, func(p []float32, c int, r float64) (Processor, error) { return InitMix(p, c, r) }},
	{"sine", paramsSine, func(p []float32, c int, r float64) (Processor, error) { return InitSine(p, c, r) }},
	{"noise", paramsNoise, func(p []float32, c int, r float64) (Processor, error) { return InitNoise(p, c, r) }},
}

// Names lists the twins in registry order.
func Names() []string {
	out := make([]string, len(registry))
	for i, e := range registry {
		out[i] = e.name
	}
	return out
}

func find(name string) (*entry, error) {
	for i := range registry {
		if registry[i].name == name {
			return &registry[i], nil
		}
	}
	return nil, fmt.Errorf("gotwin: no kernel named %q; known kernels: %s", name, strings.Join(Names(), ", "))
}

// Params returns a copy of a kernel's parameter specs.
func Params(name string) ([]ParamSpec, error) {
	e, err := find(name)
	if err != nil {
		return nil, err
	}
	return append([]ParamSpec(nil), e.params...), nil
}

// New initialises the named twin.
func New(name string, params []float32, channels int, rate float64) (Processor, error) {
	e, err := find(name)
	if err != nil {
		return nil, err
	}
	return e.init(params, channels, rate)
}

// resolve applies cdsp's rules: missing trailing params take their defaults,
// every value must be in range, integer params whole.
func resolve(name string, specs []ParamSpec, params []float32) ([]float32, error) {
	if len(params) > len(specs) {
		return nil, fmt.Errorf("gotwin: %s takes %d params, got %d", name, len(specs), len(params))
	}
	out := make([]float32, len(specs))
	for j, s := range specs {
		v := s.Default
		if j < len(params) {
			v = params[j]
		}
		if !(v >= s.Min && v <= s.Max) {
			return nil, fmt.Errorf("gotwin: %s param %s = %g is outside %g..%g", name, s.Name, v, s.Min, s.Max)
		}
		if s.Integer && float32(math.Trunc(float64(v))) != v {
			return nil, fmt.Errorf("gotwin: %s param %s = %g must be a whole number", name, s.Name, v)
		}
		out[j] = v
	}
	return out, nil
}

// abiRate is the rate as the C kernels see it: the ABI carries a float.
func abiRate(name string, rate float64) (float32, error) {
	if !(rate > 0) || rate > math.MaxFloat32 {
		return 0, fmt.Errorf("gotwin: %s: sample rate %g is not a positive float", name, rate)
	}
	return float32(rate), nil
}
