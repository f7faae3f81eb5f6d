package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/understudy-rt/understudy/engine"
)

// outputFlags say what a lane plays when its chain's block is late or
// refused, and how the switch sounds: the same flags for demo and run, the
// engine's Output (which checks them).
type outputFlags struct{ engine.Output }

func (o *outputFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.Fallback, "fallback", engine.DefaultOutput.Fallback, "what a late block outputs: dry or silence")
	fs.Float64Var(&o.CeilingDB, "ceiling-db", engine.DefaultOutput.CeilingDB, "an output sample louder than this (dBFS), or NaN or Inf, makes its block garbage: replaced by the fallback, its worker replaced")
	fs.IntVar(&o.Declick, "declick", engine.DefaultOutput.Declick, "frames of ramp at every switch to or from the fallback (0: none)")
}

// errStyle is how a command names the engine's settings in its errors.
type errStyle struct {
	oneChain bool              // every lane plays --chain: a chain error is --chain's
	perLane  bool              // channels come from an input split over --lanes, not --channels
	file     string            // the config file, if any
	fromFile map[string]bool   // settings the file gave (named as flags)
	alias    map[string]string // engine field → flag name, where they differ
}

// name is how the user gave a setting: "--flag", or "FILE: key".
func (st errStyle) name(flag string) string {
	if st.fromFile[flag] {
		return st.file + ": " + flag
	}
	return "--" + flag
}

// settingError turns the engine's ConfigError into the command's one line
// (exit 2), naming the flag, or the config file and its key.
func (st errStyle) settingError(err error) error {
	var ce *engine.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	name := ce.Field
	if a, ok := st.alias[name]; ok {
		name = a
	}
	where := st.name(name)
	switch {
	case ce.Field == "":
		return usagef("%s", ce.Detail)
	case ce.Field == "chain" && st.oneChain && !st.fromFile["chain"]:
		return usagef("--chain: %s", ce.Detail)
	case ce.Lane >= 0 && st.file != "" && (st.fromFile["lane"] || st.fromFile["chain"]):
		return usagef("%s: lane %d: %s", st.file, ce.Lane, ce.Detail)
	case ce.Lane >= 0:
		return usagef("lane %d: %s", ce.Lane, ce.Detail)
	case ce.Field == "channels" && st.perLane:
		return usagef("channels per lane: %s (use more --lanes or a smaller --block)", ce.Detail)
	}
	return usagef("%s %s", where, ce.Detail)
}

// status prints one live status line: rewritten in place on a terminal,
// one line a tick otherwise.
type status struct {
	w   io.Writer
	tty bool
}

func newStatus(w io.Writer) status { return status{w: w, tty: isTTY(w)} }

func (s status) line(format string, args ...any) {
	if s.tty {
		fmt.Fprintf(s.w, "\r%s\x1b[K", fmt.Sprintf(format, args...))
	} else {
		fmt.Fprintf(s.w, format+"\n", args...)
	}
}

// end leaves the terminal's cursor on a fresh line.
func (s status) end() {
	if s.tty {
		fmt.Fprintln(s.w)
	}
}

// warner prints the engine's warnings as they come.
func warner(stderr io.Writer) func(string) {
	return func(w string) { fmt.Fprintf(stderr, "understudy: warning: %s\n", w) }
}

// checkReproDir refuses a --repro-dir that is not an existing directory.
func checkReproDir(dir string) error {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return usagef("--repro-dir %s is not a directory; create it first or choose another", dir)
	}
	return nil
}
