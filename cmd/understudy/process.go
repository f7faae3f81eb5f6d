package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/understudy-rt/understudy/runtime/chain"
	"github.com/understudy-rt/understudy/runtime/render"
	"github.com/understudy-rt/understudy/runtime/shm"
	"github.com/understudy-rt/understudy/runtime/wav"
	"github.com/understudy-rt/understudy/supervisor"
)

const chainHelp = `Chains: kernels separated by '|', each a name and name=value parameters;
parameters left out take their defaults. For example
  --chain "lowpass f=1000 q=0.7071 | gain db=-6"
  --chain "highpass f=80 sections=2 | peaking f=3000 q=1 db=4"
understudy kernels lists every kernel with its parameters and ranges.
`

const processUsage = `Usage: understudy process --in IN.wav --out OUT.wav --chain CHAIN [flags]

Renders a file through a chain of kernels in supervised worker processes, as
fast as the workers go (no real-time clock), with a warm spare: a worker that
crashes mid-file is replaced and the render resumes from its last committed
block, bit-exact. Writes a 32-bit float WAV with the input's rate, channels
and length. The input's channels are split evenly over --lanes workers.

` + chainHelp + `
Flags:
`

func runProcess(args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("process", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var in, out, chainStr, variant, worker string
	var block, lanes, spares int
	var unsandboxed bool
	fs.StringVar(&in, "in", "", "input WAV (required)")
	fs.StringVar(&out, "out", "", "output WAV, 32-bit float (required)")
	fs.StringVar(&chainStr, "chain", "", "kernels, '|' between stages (required)")
	fs.StringVar(&variant, "variant", "auto", "kernel variant: auto (fastest this CPU runs), scalar, sse2, avx2, ...")
	fs.IntVar(&block, "block", 256, fmt.Sprintf("frames per block (1..%d)", shm.MaxFrames))
	fs.IntVar(&lanes, "lanes", 1, "worker lanes; the input's channel count must divide evenly")
	fs.IntVar(&spares, "spares", 1, "warm spares")
	fs.BoolVar(&unsandboxed, "unsandboxed", false, "run workers without their sandbox (uid drop, no capabilities, seccomp), to debug a kernel")
	fs.StringVar(&worker, "worker", "", "understudy-worker executable (default: beside this program, then $PATH)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, processUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return errHelp
		}
		return usagef("%v (see understudy process --help)", err)
	}
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected argument %q (see understudy process --help)", fs.Arg(0))
	case in == "" || out == "" || chainStr == "":
		return usagef("--in, --out and --chain are required (see understudy process --help)")
	case block < 1 || block > shm.MaxFrames:
		return usagef("--block %d is out of range: use 1..%d frames", block, shm.MaxFrames)
	case lanes < 1 || lanes > shm.MaxLanes:
		return usagef("--lanes %d: use 1..%d", lanes, shm.MaxLanes)
	case spares < 0 || lanes+spares > shm.MaxSlots/2:
		return usagef("--spares %d: lanes + spares must be at most %d", spares, shm.MaxSlots/2)
	}
	if worker == "" {
		worker = defaultWorker()
	}
	warnUnsandboxed(unsandboxed, stderr)
	cat, err := loadCatalog(worker, unsandboxed)
	if err != nil {
		return err
	}
	stages, err := chain.Parse(chainStr, cat)
	if err != nil {
		return usagef("--chain: %v", err)
	}
	a, err := wav.Read(in)
	if err != nil {
		return usagef("--in: %v", err)
	}
	if a.Frames() == 0 {
		return usagef("--in %s holds no audio", in)
	}
	if a.Channels%lanes != 0 {
		return usagef("--in %s has %d channels, which %d lanes cannot split evenly: use --lanes with a divisor of %d", in, a.Channels, lanes, a.Channels)
	}
	per := a.Channels / lanes
	if per > shm.MaxChannels || per*block > shm.SlotSamples {
		return usagef("%d channels per lane at %d frames exceed a block (%d samples, %d channels): use more --lanes or a smaller --block",
			per, block, shm.SlotSamples, shm.MaxChannels)
	}
	lc, err := chain.LaneConfig(stages, per, block, a.Rate, variant)
	if err != nil {
		return usagef("--chain: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return usagef("--out: cannot create the directory for %s: %v", out, err)
	}
	w, err := wav.Create(out, a.Rate, a.Channels)
	if err != nil {
		return usagef("--out: %v", err)
	}
	defer func() {
		if err != nil {
			w.Abort()
		}
	}()

	cfgs := make([]shm.LaneConfig, lanes)
	for i := range cfgs {
		cfgs[i] = lc
	}
	sup, err := supervisor.New(supervisor.Config{Worker: worker, Lanes: cfgs, Spares: spares, WorkerCPU: -1, Unsandboxed: unsandboxed})
	if err != nil {
		return classify(err)
	}
	defer sup.Close()
	if err := sup.Start(nil); err != nil {
		return classify(err)
	}
	start := time.Now()
	if err := renderFile(sup.Region(), a, lanes, w); err != nil {
		return err
	}
	elapsed := time.Since(start)
	if err := w.Close(); err != nil {
		return err
	}
	sup.Close()
	failovers := 0
	for e := range sup.Events() {
		if e.Kind == supervisor.EvFailover {
			failovers++
		}
	}
	secs := float64(a.Frames()) / float64(a.Rate)
	var used []string
	for _, e := range lc.Chain {
		used = append(used, e.Name+"/"+e.Variant)
	}
	fmt.Fprintf(stdout, "understudy process: %s → %s: %.2f s of %d-channel audio at %d Hz through %s in %v (%.0fx real time), %d failovers\n",
		in, out, secs, a.Channels, a.Rate, strings.Join(used, " | "), elapsed.Round(time.Millisecond), secs/elapsed.Seconds(), failovers)
	return nil
}

// renderFile renders a through the lanes into w. One lane (the default)
// streams: each block goes from the decoded input straight into the ring
// and from the ring straight to the encoder while the worker runs the
// following blocks, with no copy of the signal held. Several lanes each
// gather their channels from the input and scatter their output into one
// interleaved result, written once all are done.
func renderFile(reg *shm.Region, a *wav.Audio, lanes int, w *wav.Writer) error {
	ch := a.Channels
	if lanes == 1 {
		enc := newEncoder(w, ch)
		err := render.Stream(reg.Lane(0), a.Frames(),
			func(dst []float32, frame int) { copy(dst, a.Samples[frame*ch:]) },
			enc.add,
			0)
		if err := enc.close(); err != nil {
			return err
		}
		if err != nil {
			return fmt.Errorf("lane 0: %w", err)
		}
		return nil
	}
	per := ch / lanes
	out := make([]float32, len(a.Samples))
	errs := make([]error, lanes)
	var wg sync.WaitGroup
	for l := range lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := l * per
			errs[l] = render.Stream(reg.Lane(l), a.Frames(),
				func(dst []float32, frame int) {
					for i, s := 0, (frame*ch)+off; i < len(dst); i, s = i+per, s+ch {
						copy(dst[i:i+per], a.Samples[s:s+per])
					}
				},
				func(src []float32, frame int) error {
					for i, d := 0, (frame*ch)+off; i < len(src); i, d = i+per, d+ch {
						copy(out[d:d+per], src[i:i+per])
					}
					return nil
				},
				0)
		}()
	}
	wg.Wait()
	for l, e := range errs {
		if e != nil {
			return fmt.Errorf("lane %d: %w", l, e)
		}
	}
	return w.Write(out)
}

// encoder hands the output to the WAV writer on a goroutine of its own, in
// chunks, so that encoding and the file's write calls (tens of
// microseconds each) overlap the render instead of holding up the ring:
// a render goroutine away that long leaves the worker with nothing queued,
// and then it sleeps and must be woken, block after block.
type encoder struct {
	w          *wav.Writer
	cur        []float32
	full, free chan []float32
	done       chan error
	failed     atomic.Pointer[error] // the writer's error, seen by add
}

// encChunk is the samples per chunk: 256 KiB, a few write calls' worth.
const encChunk = 1 << 16

func newEncoder(w *wav.Writer, ch int) *encoder {
	e := &encoder{w: w, full: make(chan []float32, 4), free: make(chan []float32, 4), done: make(chan error, 1)}
	n := encChunk / ch * ch // whole frames, which Write wants
	for range 4 {
		e.free <- make([]float32, 0, n)
	}
	e.cur = <-e.free
	go func() {
		var err error
		for c := range e.full {
			if err == nil {
				if err = w.Write(c); err != nil {
					e.failed.Store(&err)
				}
			}
			e.free <- c[:0]
		}
		e.done <- err
	}()
	return e
}

// add is a render.Sink: it copies src, which lives in the ring.
func (e *encoder) add(src []float32, _ int) error {
	for len(src) > 0 {
		n := copy(e.cur[len(e.cur):cap(e.cur)], src)
		e.cur = e.cur[:len(e.cur)+n]
		src = src[n:]
		if len(e.cur) == cap(e.cur) {
			e.full <- e.cur
			e.cur = <-e.free
			if err := e.failed.Load(); err != nil { // stop the render: the file cannot be had
				return *err
			}
		}
	}
	return nil
}

// close writes what is left and waits for the writer.
func (e *encoder) close() error {
	if len(e.cur) > 0 {
		e.full <- e.cur
	}
	close(e.full)
	return <-e.done
}
