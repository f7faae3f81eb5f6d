// Package chain parses and validates a lane's chain of kernels, written as
//
//	lowpass f=1000 q=0.7071 | gain db=-6
//
// Stages are separated by '|'; each is a kernel name followed by name=value
// parameters. Parameters left out take their defaults. Every error names the
// offending word and what would be accepted.
package chain

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/understudy-rt/understudy/cdsp"
	"github.com/understudy-rt/understudy/runtime/catalog"
	"github.com/understudy-rt/understudy/runtime/shm"
)

// Stage is one validated kernel with its full parameter vector (schema order).
type Stage struct {
	Kernel *catalog.Kernel
	Params []float32
}

// Error is a chain that cannot be used, pointing at the word at fault.
type Error struct {
	Chain  string
	Word   string
	Offset int // byte offset of Word in Chain, -1 if none
	Msg    string
}

func (e *Error) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("chain %q: %s", e.Chain, e.Msg)
	}
	return fmt.Sprintf("chain %q: at %q (byte %d): %s", e.Chain, e.Word, e.Offset, e.Msg)
}

// Parse reads a chain and checks every kernel, parameter name, value and
// range against the kernels the worker carries.
func Parse(s string, cat *catalog.Catalog) ([]Stage, error) {
	if strings.TrimSpace(s) == "" {
		return nil, &Error{Chain: s, Offset: -1, Msg: `empty chain; write e.g. "lowpass f=1000 | gain db=-6"`}
	}
	var stages []Stage
	pos := 0
	for _, part := range strings.Split(s, "|") {
		words, offs := fields(part, pos)
		pos += len(part) + 1
		if len(words) == 0 {
			return nil, &Error{Chain: s, Word: "|", Offset: pos - 1, Msg: "empty stage between '|'"}
		}
		k, ok := cat.Lookup(words[0])
		if !ok {
			return nil, &Error{Chain: s, Word: words[0], Offset: offs[0], Msg: fmt.Sprintf("no such kernel; known: %s", strings.Join(cat.Names(), ", "))}
		}
		specs := k.Params
		vals := make([]float32, len(specs))
		set := make([]bool, len(specs))
		for i, sp := range specs {
			vals[i] = sp.Default
		}
		for wi, w := range words[1:] {
			off := offs[wi+1]
			name, val, ok := strings.Cut(w, "=")
			if !ok {
				return nil, &Error{Chain: s, Word: w, Offset: off, Msg: fmt.Sprintf("want name=value; %s takes %s", k.Name, paramNames(specs))}
			}
			idx := -1
			for i, sp := range specs {
				if sp.Name == name {
					idx = i
				}
			}
			if idx < 0 {
				return nil, &Error{Chain: s, Word: w, Offset: off, Msg: fmt.Sprintf("%s has no parameter %q; it takes %s", k.Name, name, paramNames(specs))}
			}
			if set[idx] {
				return nil, &Error{Chain: s, Word: w, Offset: off, Msg: fmt.Sprintf("parameter %s given twice", name)}
			}
			v, err := strconv.ParseFloat(val, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, &Error{Chain: s, Word: w, Offset: off, Msg: fmt.Sprintf("%s wants a number, got %q", name, val)}
			}
			if msg := checkValue(specs[idx], v); msg != "" {
				return nil, &Error{Chain: s, Word: w, Offset: off, Msg: msg}
			}
			vals[idx] = float32(v)
			set[idx] = true
		}
		stages = append(stages, Stage{Kernel: k, Params: vals})
	}
	if len(stages) > shm.MaxChain {
		return nil, &Error{Chain: s, Offset: -1, Msg: fmt.Sprintf("%d stages; a lane runs at most %d", len(stages), shm.MaxChain)}
	}
	return stages, nil
}

// checkValue is the schema's word on one value: "" or why not.
func checkValue(sp catalog.Param, v float64) string {
	if math.IsNaN(v) || v < float64(sp.Min) || v > float64(sp.Max) {
		return fmt.Sprintf("%s=%g is out of range %g..%g%s", sp.Name, v, sp.Min, sp.Max, unitSuffix(sp.Unit))
	}
	if sp.Integer && v != math.Trunc(v) {
		return fmt.Sprintf("%s must be a whole number", sp.Name)
	}
	return ""
}

// Live checks a change of st's parameter name to value while its lane runs
// (channels, rate): the value as Parse checks a chain's own, and the
// parameter one the kernel lets change live. A built-in kernel is also
// initialised in-process with the new vector, to refuse what it cannot
// realise (a cutoff above Nyquist), as LaneConfig does. It returns the
// parameter's index and the value as the lane carries it; st is unchanged.
// Errors are one line, naming the kernel and the parameter.
func Live(st Stage, name string, value float64, channels, rate int) (param int, v float32, err error) {
	k := st.Kernel
	param = -1
	for i, sp := range k.Params {
		if sp.Name == name {
			param = i
		}
	}
	if param < 0 {
		return -1, 0, fmt.Errorf("%s has no parameter %q; it takes %s", k.Name, name, paramNames(k.Params))
	}
	sp := k.Params[param]
	if !sp.Live {
		return -1, 0, fmt.Errorf("%s: %s cannot change while the lane runs (the kernel fixes it at init); start a new run with %s=%g", k.Name, name, name, value)
	}
	if math.IsInf(value, 0) {
		return -1, 0, fmt.Errorf("%s: %s wants a number, got %g", k.Name, name, value)
	}
	if msg := checkValue(sp, value); msg != "" {
		return -1, 0, fmt.Errorf("%s: %s", k.Name, msg)
	}
	v = float32(value)
	if ck, err := cdsp.Lookup(k.Name); err == nil && len(st.Params) == len(k.Params) {
		p := append([]float32(nil), st.Params...)
		p[param] = v
		inst, err := ck.New(p, channels, float64(rate))
		if err != nil {
			return -1, 0, fmt.Errorf("%s: %s=%g: %w", k.Name, name, value, err)
		}
		inst.Free()
	}
	return param, v, nil
}

// LaneConfig turns stages into a lane's configuration. variant is "auto"
// (each kernel's fastest variant this CPU supports) or a name every kernel
// must have; one choice serves every worker of the lane, so primary and spare
// compute the same bits. A built-in kernel is also initialised in-process
// with these parameters, to refuse what it cannot realise (say a cutoff
// above Nyquist) before any worker starts; workers check every chain again
// in their handshake.
func LaneConfig(stages []Stage, channels, frames, rate int, variant string) (shm.LaneConfig, error) {
	cfg := shm.LaneConfig{Channels: channels, Frames: frames, Rate: rate}
	for _, st := range stages {
		v, err := st.Kernel.Choose(variant)
		if err != nil {
			return cfg, err
		}
		sb := st.Kernel.StateBytes(channels)
		if sb == 0 && channels > 0 {
			return cfg, fmt.Errorf("chain: %s cannot run %d channels", st.Kernel.Name, channels)
		}
		if k, err := cdsp.Lookup(st.Kernel.Name); err == nil {
			inst, err := k.New(st.Params, channels, float64(rate))
			if err != nil {
				return cfg, fmt.Errorf("chain: %s: %w", st.Kernel.Name, err)
			}
			inst.Free()
		}
		cfg.Chain = append(cfg.Chain, shm.ChainEntry{Name: st.Kernel.Name, Variant: v, Params: st.Params, StateBytes: sb})
	}
	return cfg, nil
}

// String writes stages back in chain syntax, every parameter explicit.
func String(stages []Stage) string {
	var parts []string
	for _, st := range stages {
		w := []string{st.Kernel.Name}
		for i, sp := range st.Kernel.Params {
			w = append(w, fmt.Sprintf("%s=%g", sp.Name, st.Params[i]))
		}
		parts = append(parts, strings.Join(w, " "))
	}
	return strings.Join(parts, " | ")
}

func fields(s string, base int) (words []string, offs []int) {
	start := -1
	for i := 0; i <= len(s); i++ {
		space := i == len(s) || s[i] == ' ' || s[i] == '\t' || s[i] == '\n'
		if !space && start < 0 {
			start = i
		}
		if space && start >= 0 {
			words = append(words, s[start:i])
			offs = append(offs, base+start)
			start = -1
		}
	}
	return words, offs
}

func paramNames(specs []catalog.Param) string {
	if len(specs) == 0 {
		return "no parameters"
	}
	var names []string
	for _, sp := range specs {
		names = append(names, fmt.Sprintf("%s (%g..%g%s, default %g)", sp.Name, sp.Min, sp.Max, unitSuffix(sp.Unit), sp.Default))
	}
	return strings.Join(names, ", ")
}

func unitSuffix(u string) string {
	if u == "" {
		return ""
	}
	return " " + u
}
