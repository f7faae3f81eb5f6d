package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/engine"
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

Input and output stream in blocks, in memory bounded by the block size,
whatever the file's length. --in may be a file, a FIFO, or - for standard
input; a FIFO or pipe that sends nothing for --read-timeout ends the run.
--out must be a regular file in an existing directory (it appears only when
complete), or - to stream the WAV to standard output: a pipe cannot seek
back, so that header carries the streaming sizes 0xFFFFFFFF, which sox,
ffmpeg and understudy read as "until the end of the stream".

A block the chain did not process (its input killed two workers in a row,
so it was bypassed; or the chain put out NaN, an infinity or a sample past
+24 dBFS, so its owner was replaced and the chain restarted: the output
holds the dry input there) fails the run:
exit status 1, saying how many and at what times, and no file is written.
--allow-bypass keeps the file and makes that a warning. Each such block is
saved, with the state it started from, as a repro file in --repro-dir:
understudy replay FILE --worker W runs it again for the debugger (see
understudy replay --help). SIGINT or SIGTERM
stops the run; a file output is then absent, never partial.

` + chainHelp + `
Flags:
`

// exitError ends a command with a given status and a one-line message.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func runProcess(args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("process", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var in, out, chainStr, variant, worker string
	var block, lanes, spares int
	var unsandboxed bool
	var readTimeout time.Duration
	var allowBypass bool
	var reproDir string
	fs.StringVar(&in, "in", "", "input WAV, a FIFO, or - for standard input (required)")
	fs.StringVar(&out, "out", "", "output WAV, 32-bit float, or - for standard output (required)")
	fs.StringVar(&chainStr, "chain", "", "kernels, '|' between stages (required)")
	fs.StringVar(&variant, "variant", "auto", "kernel variant: auto (fastest this CPU runs), scalar, sse2, avx2, ...")
	fs.IntVar(&block, "block", 0, fmt.Sprintf("frames per block (1..%d; default: 1024, or as many as a block holds for the lane's channels)", shm.MaxFrames))
	fs.IntVar(&lanes, "lanes", 1, "worker lanes; the input's channel count must divide evenly")
	fs.IntVar(&spares, "spares", 1, "warm spares")
	fs.BoolVar(&unsandboxed, "unsandboxed", false, "run workers without their sandbox (uid drop, no capabilities, seccomp), to debug a kernel")
	fs.StringVar(&worker, "worker", "", "understudy-worker executable (default: beside this program, then $PATH)")
	fs.DurationVar(&readTimeout, "read-timeout", wav.DefaultReadTimeout, "how long a FIFO or pipe on --in may send nothing before the run gives up")
	fs.BoolVar(&allowBypass, "allow-bypass", false, "keep the output when blocks were bypassed (dry) instead of failing, with a warning")
	fs.StringVar(&reproDir, "repro-dir", "", "where a bypassed block is saved for understudy replay (default: the system's temporary directory)")
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
	case readTimeout <= 0:
		return usagef("--read-timeout %v: give a positive duration, e.g. 10s", readTimeout)
	}
	if reproDir != "" {
		if err := checkReproDir(reproDir); err != nil {
			return err
		}
	}
	// From here on a signal cancels ctx instead of killing us, so that
	// whatever was started (workers, the output's temporary file) is undone
	// on the way out.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var got atomic.Value // the signal that stopped us
	go func() {
		select {
		case s := <-sigs:
			got.Store(s)
			cancel()
		case <-ctx.Done():
		}
	}()
	defer func() {
		if s, ok := got.Load().(os.Signal); ok && err != nil {
			err = interrupted(s.(syscall.Signal), out)
		}
	}()
	if out == "-" {
		if _, err := unix.IoctlGetTermios(1, unix.TCGETS); err == nil {
			return usagef("--out -: standard output is a terminal; redirect it to a file or a pipe (e.g. > out.wav, | sox -t wav - ...)")
		}
		// Summaries and warnings must not land in the audio. A reader that
		// goes away makes writes fail with EPIPE, reported once, instead of
		// killing us with workers still running.
		stdout = stderr
		signal.Ignore(syscall.SIGPIPE)
	}
	warnUnsandboxed(unsandboxed, stderr)
	r, err := wav.Open(in, readTimeout)
	if err != nil {
		return usagef("--in: %v", err)
	}
	defer r.Close()
	name := in
	if in == "-" {
		name = "standard input"
	}
	channels, rate := r.Channels, r.Rate
	if err := checkInput(name, channels, r.Frames(), lanes); err != nil {
		return err
	}
	per := channels / max(lanes, 1)
	if block == 0 && per > 0 {
		// Offline, bigger blocks cost nothing in latency and halve the
		// ring's round trips per second; the output is the same bits at
		// any block size.
		block = min(1024, shm.SlotSamples/per)
	}
	// Events are drained as they come: the supervisor's channel drops what
	// nobody reads, and a long file can see more failovers than it buffers.
	var tally evTally
	var tallyMu sync.Mutex
	tally.poisoned = make([]map[uint64]bool, max(lanes, 0))
	ecfg := engine.Config{Backend: engine.Offline, Worker: worker, Rate: rate, Block: block, Spares: spares,
		Variant: variant, Unsandboxed: unsandboxed, ReproDir: reproDir, Context: ctx,
		OnEvent: func(e supervisor.Event) {
			tallyMu.Lock()
			defer tallyMu.Unlock()
			if e.Kind == supervisor.EvFailover {
				tally.failovers++
			}
			if (e.Kind == supervisor.EvFailover || e.Kind == supervisor.EvNoSpare) && e.Poisoned && e.Lane >= 0 && e.Lane < lanes {
				if tally.poisoned[e.Lane] == nil {
					tally.poisoned[e.Lane] = map[uint64]bool{}
				}
				if len(tally.poisoned[e.Lane]) < render.MaxListed {
					tally.poisoned[e.Lane][e.Block] = true
				}
			}
		}}
	for range max(lanes, 0) {
		ecfg.Lanes = append(ecfg.Lanes, engine.Lane{Chain: chainStr, Channels: per})
	}
	if ecfg, err = engine.Check(ecfg); err != nil {
		return processErrs.settingError(err)
	}
	// The first block is read before anything starts, so an empty stream
	// is bad input, not a run of nothing.
	first := make([]float32, block*channels)
	n, err := readBlock(r, first)
	if err != nil {
		return usagef("--in: %v", err)
	}
	if n == 0 {
		return usagef("--in %s holds no audio", name)
	}
	var w *wav.Writer
	if out == "-" {
		w, err = wav.NewStream(os.Stdout, "standard output", rate, channels)
	} else {
		w, err = wav.Create(out, rate, channels)
	}
	if err != nil {
		return usagef("--out: %v", err)
	}
	published := false
	defer func() {
		if !published {
			w.Abort()
		}
	}()

	sess, err := engine.New(ecfg)
	if err != nil {
		return processErrs.settingError(err)
	}
	defer sess.Close()
	lc := sess.LaneConfigs()[0]
	start := time.Now()
	stats, frames, err := renderStream(ctx, sess, r, first[:n], w, lanes, channels, block)
	elapsed := time.Since(start)
	sess.Close() // and with it every event
	if err != nil {
		return err // after a signal, the deferred interrupted() says so instead
	}

	// Bypassed blocks: those the owners flagged, and any the monitor
	// declared poisoned whose output was not flagged (an owner that lies
	// about its flags cannot hide a bypass the host decided).
	var where []string
	total, garbage := uint64(0), uint64(0)
	for l, st := range stats {
		garbage += st.Garbage
		at := map[uint64]bool{}
		for _, b := range st.At {
			at[b] = true
		}
		extra := uint64(0)
		for b := range tally.poisoned[l] {
			if !at[b] && b < st.Blocks {
				at[b] = true
				extra++
			}
		}
		n := st.Bypassed + extra
		if n == 0 {
			continue
		}
		total += n
		var times []string
		for _, b := range sortedKeys(at) {
			times = append(times, fmt.Sprintf("%.3f s", float64(b)*float64(block)/float64(rate)))
		}
		more := ""
		if n > uint64(len(times)) {
			more = fmt.Sprintf(" and %d more", n-uint64(len(times)))
		}
		lane := ""
		if lanes > 1 {
			lane = fmt.Sprintf("lane %d: ", l)
		}
		where = append(where, lane+strings.Join(times, ", ")+more)
	}
	if total > 0 {
		why := "the input killed its workers"
		switch {
		case garbage == total:
			why = "the chain's output was NaN, infinite or past +24 dBFS"
		case garbage > 0:
			why = fmt.Sprintf("the input killed its workers, or for %d of them the chain's output was NaN, infinite or past +24 dBFS", garbage)
		}
		what := fmt.Sprintf("%d %s bypassed (dry input, not the chain's output: %s) at %s",
			total, plural(total, "block", "blocks"), why, strings.Join(where, "; "))
		if repros := sess.Supervisor().Repros(); len(repros) > 0 {
			if len(repros) > render.MaxListed {
				repros = append(repros[:render.MaxListed], fmt.Sprintf("and %d more", len(repros)-render.MaxListed))
			}
			what += fmt.Sprintf("; saved for `understudy replay FILE --worker %s`: %s", ecfg.Worker, strings.Join(repros, ", "))
		}
		if !allowBypass {
			if out == "-" {
				return &exitError{1, what + "; the stream on standard output holds them (use --allow-bypass to accept that)"}
			}
			return &exitError{1, what + "; " + out + " was not written (use --allow-bypass to keep it anyway)"}
		}
		fmt.Fprintf(stderr, "understudy process: warning: %s\n", what)
	}
	if err := w.Close(); err != nil {
		return err
	}
	published = true
	secs := float64(frames) / float64(rate)
	var used []string
	for _, e := range lc.Chain {
		used = append(used, e.Name+"/"+e.Variant)
	}
	dest := out
	if out == "-" {
		dest = "standard output"
	}
	fmt.Fprintf(stdout, "understudy process: %s → %s: %.2f s of %d-channel audio at %d Hz through %s in %v (%.0fx real time), %d failovers\n",
		name, dest, secs, channels, rate, strings.Join(used, " | "), elapsed.Round(time.Millisecond), secs/elapsed.Seconds(), tally.failovers)
	return nil
}

// checkInput says what keeps an input of channels and frames (negative:
// not known yet, a stream) from splitting over lanes.
func checkInput(name string, channels int, frames int64, lanes int) error {
	switch {
	case frames == 0:
		return usagef("--in %s holds no audio", name)
	case lanes >= 1 && channels%lanes != 0:
		return usagef("--in %s has %d channels, which %d lanes cannot split evenly: use --lanes with a divisor of %d", name, channels, lanes, channels)
	}
	return nil
}

var processErrs = errStyle{oneChain: true, perLane: true}

type evTally struct {
	failovers int
	poisoned  []map[uint64]bool // by lane: blocks the monitor bypassed
}

// interrupted is the one line for a run stopped by a signal; the exit
// status is the shell's 128 + signal number.
func interrupted(sig syscall.Signal, out string) error {
	what := "nothing was written to " + out
	if out == "-" {
		what = "standard output holds what was rendered until then"
	}
	return &exitError{128 + int(sig), fmt.Sprintf("stopped by %s; %s", unix.SignalName(sig), what)}
}

// readBlock fills p with whole frames, as many as the input has.
func readBlock(r *wav.Reader, p []float32) (int, error) {
	n := 0
	for n < len(p) {
		k, err := r.ReadFrames(p[n:])
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// renderStream reads the input a chunk of blocks at a time, splits it over
// the lanes, renders each lane on its own goroutine and writes the joined
// output as it comes, so memory stays a few chunks per lane whatever the
// length. It returns each lane's stats and the frames written.
//
// Deadlock freedom: a lane hands on the output it holds before it waits
// for input (flush in src), and render.Stream never waits for input while
// it holds blocks whose output is due. So the writer, waiting on a lane,
// always waits on output that is coming, and the reader, blocked on a full
// lane, is blocked on one that the writer is draining.
func renderStream(parent context.Context, sup *engine.Session, r *wav.Reader, first []float32, w *wav.Writer, lanes, channels, block int) ([]render.Stats, int64, error) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	var once sync.Once
	var firstErr error
	fail := func(err error) {
		once.Do(func() { firstErr = err })
		cancel(err)
	}
	per := channels / lanes
	// Blocks travel between goroutines in chunks, so a channel operation
	// and a goroutine switch are paid per chunk, not per block.
	const chunkBlocks, depth = 16, 2
	chunk := chunkBlocks * block * per // samples of one lane per chunk
	ins := make([]chan []float32, lanes)
	outs := make([]chan []float32, lanes)
	for l := range ins {
		ins[l] = make(chan []float32, depth)
		outs[l] = make(chan []float32, depth)
	}
	// Buffers go round through free lists, so the steady state allocates
	// nothing; each list holds what can be in flight at once.
	inFree := make(chan []float32, lanes*(depth+2))
	outFree := make(chan []float32, lanes*(depth+3))
	get := func(free chan []float32) []float32 {
		select {
		case b := <-free:
			return b[:0]
		default:
			return make([]float32, 0, chunk)
		}
	}
	put := func(free chan []float32, b []float32) {
		select {
		case free <- b:
		default:
		}
	}
	// A read from a pipe waits up to --read-timeout; closing the file is
	// what ends such a read at once when the run stops early.
	defer context.AfterFunc(ctx, func() { r.Close() })()
	var wg sync.WaitGroup
	// The reader.
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			for _, c := range ins {
				close(c)
			}
		}()
		buf := make([]float32, chunkBlocks*block*channels)
		n := copy(buf, first)
		if n == len(first) && len(first) == block*channels {
			k, err := readBlock(r, buf[n:])
			if err != nil {
				// Bad input found mid-stream is still bad input.
				fail(usagef("--in: %v", err))
				return
			}
			n += k
		}
		for n > 0 {
			frames := n / channels
			for l := range ins {
				b := get(inFree)[:frames*per]
				for f := 0; f < frames; f++ {
					copy(b[f*per:(f+1)*per], buf[f*channels+l*per:f*channels+(l+1)*per])
				}
				select {
				case ins[l] <- b:
				case <-ctx.Done():
					return
				}
			}
			if n < len(buf) {
				return
			}
			var err error
			if n, err = readBlock(r, buf); err != nil {
				// Bad input found mid-stream is still bad input.
				fail(usagef("--in: %v", err))
				return
			}
		}
	}()
	stats := make([]render.Stats, lanes)
	for l := range lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(outs[l])
			var in []float32 // the chunk being fed, and how far
			var inAt int
			var inDone bool
			out := get(outFree) // output gathered for the writer
			flush := func() bool {
				if len(out) == 0 {
					return true
				}
				select {
				case outs[l] <- out:
					out = get(outFree)
					return true
				case <-ctx.Done():
					return false
				}
			}
			st, err := render.Stream(sup.Lane(l),
				func(p []float32, wait bool) (int, error) {
					if inAt == len(in) && !inDone {
						if in != nil {
							put(inFree, in)
							in, inAt = nil, 0
						}
						var b []float32
						var ok bool
						if !wait {
							select {
							case b, ok = <-ins[l]:
							default:
								if !flush() {
									return 0, context.Cause(ctx)
								}
								return 0, render.ErrNotReady
							}
						} else {
							if !flush() {
								return 0, context.Cause(ctx)
							}
							select {
							case b, ok = <-ins[l]:
							case <-ctx.Done():
								return 0, context.Cause(ctx)
							}
						}
						if !ok {
							inDone = true
						} else {
							in, inAt = b, 0
						}
					}
					if inDone {
						return 0, io.EOF
					}
					n := copy(p, in[inAt:])
					inAt += n
					return n, nil
				},
				func(p []float32, _ uint32) error {
					out = append(out, p...)
					if len(out)+len(p) > cap(out) && !flush() {
						return context.Cause(ctx)
					}
					return nil
				}, sup.RenderOptions(l))
			stats[l] = st
			if err == nil && !flush() {
				err = context.Cause(ctx)
			}
			if err != nil {
				fail(fmt.Errorf("lane %d: %w", l, err))
			}
		}()
	}
	// The writer: joins what every lane has, in order, as far as the lane
	// with the least goes.
	cur := make([][]float32, lanes) // each lane's chunk in hand, from at
	at := make([]int, lanes)
	joined := make([]float32, chunkBlocks*block*channels)
	var frames int64
write:
	for {
		n := len(joined) / channels
		for l := range outs {
			if at[l] == len(cur[l]) {
				if cur[l] != nil {
					put(outFree, cur[l])
					cur[l] = nil
				}
				select {
				case b, ok := <-outs[l]:
					if !ok {
						break write
					}
					cur[l], at[l] = b, 0
				case <-ctx.Done():
					break write
				}
			}
			n = min(n, (len(cur[l])-at[l])/per)
		}
		for l := range outs {
			src := cur[l][at[l]:]
			for i := 0; i < n; i++ {
				copy(joined[i*channels+l*per:i*channels+(l+1)*per], src[i*per:(i+1)*per])
			}
			at[l] += n * per
		}
		if err := w.Write(joined[:n*channels]); err != nil {
			fail(err)
			break
		}
		frames += int64(n)
	}
	// Every goroutine above also leaves on ctx: none is left blocked.
	cancel(nil)
	wg.Wait()
	if firstErr != nil {
		return stats, frames, firstErr
	}
	return stats, frames, parent.Err()
}

func sortedKeys(m map[uint64]bool) []uint64 {
	keys := make([]uint64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func plural(n uint64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
