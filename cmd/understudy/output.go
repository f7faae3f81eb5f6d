package main

import (
	"flag"
	"math"

	"github.com/understudy-rt/understudy/runtime/audioclock"
)

// outputFlags say what a lane plays when its chain's block is late or
// refused, and how the switch sounds: the same flags, checks and clock
// settings for demo and run.
type outputFlags struct {
	Fallback  string  `json:"fallback"`
	CeilingDB float64 `json:"ceiling_db"`
	Declick   int     `json:"declick_frames"`
}

func (o *outputFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.Fallback, "fallback", "dry", "what a late block outputs: dry or silence")
	fs.Float64Var(&o.CeilingDB, "ceiling-db", 24, "an output sample louder than this (dBFS), or NaN or Inf, makes its block garbage: replaced by the fallback, its worker replaced")
	fs.IntVar(&o.Declick, "declick", 32, "frames of ramp at every switch to or from the fallback (0: none)")
}

// check says what is wrong with the flags, for blocks of block frames.
func (o *outputFlags) check(block int) error {
	switch {
	case o.Fallback != "dry" && o.Fallback != "silence":
		return usagef("--fallback %q: use dry or silence", o.Fallback)
	case o.CeilingDB < -60 || o.CeilingDB > 60 || o.CeilingDB != o.CeilingDB:
		return usagef("--ceiling-db %v is out of range: use -60..60 dBFS", o.CeilingDB)
	case o.Declick < 0 || o.Declick > block:
		return usagef("--declick %d: use 0..%d frames (at most a block)", o.Declick, block)
	}
	return nil
}

// apply sets the clock's fallback, ceiling and declick from the flags.
func (o *outputFlags) apply(cfg *audioclock.Config) {
	cfg.Fallback = audioclock.Dry
	if o.Fallback == "silence" {
		cfg.Fallback = audioclock.Silence
	}
	cfg.Ceiling = float32(math.Pow(10, o.CeilingDB/20))
	cfg.Declick = o.Declick
	if o.Declick == 0 {
		cfg.Declick = -1 // the clock's "none"; its 0 means its default
	}
}
