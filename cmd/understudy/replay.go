package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/runtime/wav"
	"github.com/understudy-rt/understudy/supervisor"
)

const replayUsage = `understudy replay FILE [--worker W] [--out out.wav] [--timeout 10s]

Runs a poison block again, outside real time: FILE is the repro file the
supervisor saved when it bypassed a block on which two workers died (its
path is in the event, the report and the run's summary). The worker W —
the one that ran the chain, e.g. your own built with make user-worker —
loads the block and the committed state it started from and runs the
chain's process in its own process, without sandbox or real-time priority.
To stop in the debugger where the kernel crashes:

  gdb --args W --replay FILE

Prints how it ended: the signal the chain died of, or "finished" with a
digest of the output (--out also writes the output as a 32-bit float WAV).
Exit status: 0 finished, 1 the chain crashed, exited or hung, 2 a bad file
or a worker that cannot run its chain.

Flags:
`

func runReplay(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var worker, out string
	var timeout time.Duration
	fs.StringVar(&worker, "worker", "", "the worker that ran the chain (default: beside this program, then $PATH)")
	fs.StringVar(&out, "out", "", "write the block's output here, as a 32-bit float WAV")
	fs.DurationVar(&timeout, "timeout", 10*time.Second, "give up on a chain that runs longer than this (it hung)")
	// The file may come before the flags or after them.
	var file string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, replayUsage)
				fs.SetOutput(stdout)
				fs.PrintDefaults()
				return errHelp
			}
			return usagef("%v (see understudy replay --help)", err)
		}
		if fs.NArg() == 0 {
			break
		}
		if file != "" {
			return usagef("unexpected argument %q: replay takes one file (see understudy replay --help)", fs.Arg(0))
		}
		file, args = fs.Arg(0), fs.Args()[1:]
	}
	switch {
	case file == "":
		return usagef("which repro file? understudy replay FILE --worker W (see understudy replay --help)")
	case timeout <= 0:
		return usagef("--timeout %v: give a positive duration", timeout)
	}
	rp, err := supervisor.ReadRepro(file)
	if err != nil {
		return usagef("%v", err)
	}
	if worker == "" {
		worker = defaultWorker()
	}
	if err := supervisor.CheckWorker(worker); err != nil {
		return usagef("%v", err)
	}
	var chain []string
	for _, k := range rp.Chain {
		var ps []string
		for _, p := range k.Params {
			ps = append(ps, fmt.Sprintf("%g", p))
		}
		chain = append(chain, strings.TrimSpace(fmt.Sprintf("%s/%s %s", k.Name, k.Variant, strings.Join(ps, " "))))
	}
	at := ""
	if rp.Rate > 0 {
		at = fmt.Sprintf(" (%.3f s)", float64(rp.Block)*float64(rp.Frames)/float64(rp.Rate))
	}
	fmt.Fprintf(stdout, "understudy replay: lane %d block %d%s through %s: %d frames x %d channels at %d Hz from its committed state (%d bytes)\n",
		rp.Lane, rp.Block, at, strings.Join(chain, " | "), rp.BlockFrames(), rp.Channels, rp.Rate, len(rp.State))

	raw, err := os.CreateTemp("", "understudy-replay-*.f32")
	if err != nil {
		return err
	}
	raw.Close()
	defer os.Remove(raw.Name())
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, worker, "--replay", file, "--out", raw.Name())
	var said bytes.Buffer
	cmd.Stdout = io.Discard // its own "finished" line: the digest is printed below, from the samples
	cmd.Stderr = &said
	runErr := cmd.Run()
	// What the kernel printed goes on, unless the worker refused the file
	// (then its reason is the one line below). Its own "replaying" line
	// repeats ours.
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signaled() || (ws.ExitStatus() != 2 && ws.ExitStatus() != 64) {
		for _, line := range strings.SplitAfter(said.String(), "\n") {
			if line != "" && !strings.HasPrefix(line, "understudy-worker: replaying ") {
				io.WriteString(stderr, line)
			}
		}
	}
	gdb := fmt.Sprintf("gdb --args %s --replay %s", worker, file)
	var ee *exec.ExitError
	switch {
	case runErr == nil:
	case ctx.Err() != nil:
		return &exitError{1, fmt.Sprintf("hung: the chain did not finish within %v; see where it spins with %s", timeout, gdb)}
	case errors.As(runErr, &ee):
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			sig := ws.Signal()
			return &exitError{1, fmt.Sprintf("crashed: killed by %s (%s) in lane %d block %d; debug it with %s",
				unix.SignalName(sig), sig, rp.Lane, rp.Block, gdb)}
		}
		if code := ws.ExitStatus(); code == 2 || code == 64 {
			return usagef("%s", strings.TrimPrefix(strings.TrimSpace(lastLine(said.String())), "understudy-worker: "))
		}
		return &exitError{1, fmt.Sprintf("exited: the chain ended the worker with status %d in lane %d block %d; debug it with %s",
			ws.ExitStatus(), rp.Lane, rp.Block, gdb)}
	default:
		return runErr
	}
	b, err := os.ReadFile(raw.Name())
	if err != nil || len(b) != 4*len(rp.Input) {
		return fmt.Errorf("the worker finished but left %d bytes of output, want %d: is %s built from this understudy?", len(b), 4*len(rp.Input), worker)
	}
	h := fnv.New64a()
	h.Write(b)
	samples := make([]float32, len(rp.Input))
	bad := 0
	for i := range samples {
		samples[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		if v := float64(samples[i]); math.IsNaN(v) || math.IsInf(v, 0) {
			bad++
		}
	}
	note := ""
	if bad > 0 {
		note = fmt.Sprintf("; %d samples are NaN or Inf (garbage)", bad)
	}
	fmt.Fprintf(stdout, "finished: the chain ran lane %d block %d to the end; output fnv1a64 %016x%s\n", rp.Lane, rp.Block, h.Sum64(), note)
	if out != "" {
		w, err := wav.Create(out, max(rp.Rate, 1), rp.Channels)
		if err != nil {
			return usagef("--out: %v", err)
		}
		if err := w.Write(samples); err != nil {
			w.Abort()
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", filepath.Clean(out))
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
