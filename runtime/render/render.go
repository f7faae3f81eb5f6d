// Package render pushes whole signals through supervised lanes as fast as
// the workers go, with no audio clock: the bit-exact reference for a
// real-time run, and the path for rendering files.
package render

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/understudy-rt/understudy/runtime/shm"
)

// ErrStalled means a lane produced nothing for longer than the stall limit.
var ErrStalled = errors.New("render: lane stalled")

// Lane renders in (interleaved, a multiple of the lane's channels) through
// lane, whose owner must be attached, into a new slice of the same length.
// Blocks are numbered from 0; the last one is zero-padded and flagged.
// stall bounds how long it waits for any one block (0: 10 s).
func Lane(lane *shm.Lane, in []float32, stall time.Duration) ([]float32, error) {
	return LaneAutomated(lane, in, nil, stall)
}

// MaxListed is how many bypassed block numbers Stats keeps; the count goes on.
const MaxListed = 64

// Stats is what a render saw of its output.
type Stats struct {
	Blocks   uint64   // output blocks delivered
	Bypassed uint64   // of which not the chain's output: the owner played the fallback (poison), or its output was garbage
	Garbage  uint64   // of the bypassed, how many were refused as garbage (NaN, Inf, past the ceiling)
	At       []uint64 // the first MaxListed bypassed block numbers, in order
}

// ErrNotReady is what a Stream source returns, when asked not to wait, to
// say that no samples are available yet.
var ErrNotReady = errors.New("render: no input ready")

// Options tune Stream; the zero value is a sensible default.
type Options struct {
	// Stall bounds how long Stream waits for any one output block
	// (0: 10 s).
	Stall time.Duration
	// Abort, if set, is asked while Stream waits (at least every 10 ms): an
	// error from it ends the render at once with that error (a lane its
	// supervisor gave up will never answer, and need not be waited out).
	Abort func() error
	// Ceiling is the largest magnitude an output sample may have
	// (0: DefaultCeiling). A block holding NaN, an infinity or a sample past
	// it is garbage: Stream delivers the block's dry input in its place,
	// flagged shm.BlockBypassed, and counts it.
	Ceiling float32
	// Refuse, if set, is told the number and the owner epoch of each block
	// refused as garbage, so that the owner that made it can be replaced
	// (the supervisor's RefuseOutput). It runs on Stream's goroutine.
	Refuse func(block, epoch uint64)
	// Epoch, with Refuse, says the lane's current owner epoch (the
	// supervisor's OwnerEpoch). After a refusal Stream pushes no input
	// until the epoch moves past the refused block's, so the owner that
	// made the garbage renders nothing more ahead while it is replaced:
	// garbage costs at most the blocks in flight.
	Epoch func() uint64
	// Changes are live parameter changes, in block order (the order their
	// SetParam calls returned them): each is stamped into the header of the
	// input block it names, as the audio clock stamps them. Their values
	// are the caller's to have checked (chain.Live): a worker skips one its
	// kernel's schema refuses.
	Changes []shm.ParamChange
}

// DefaultCeiling is +24 dBFS, the real-time clock's default too: a chain
// that means to put out more than 15.8x full scale is broken.
const DefaultCeiling = 15.848932

// Stream renders a signal of any length through lane in bounded memory.
// src fills p (one block: channels × frames samples) with interleaved
// samples and returns how many; a short count or io.EOF ends the signal, and
// any other error ends the render with it. When wait is false and nothing
// is available yet, src returns 0, ErrNotReady: Stream asks that way
// whenever it holds blocks whose output it has not delivered, so that a
// source fed in step with other lanes never waits on a consumer that waits
// on this lane. Each output block goes to dst in order, with its flags
// (shm.BlockBypassed, ...), cut to the input's length; p is valid only
// during the call. Blocks are numbered from 0; the last one is zero-padded
// and flagged, which costs one block of read-ahead.
//
// Nothing a worker wrote reaches dst unchecked: block numbers and frames
// are validated (shm.ErrCorrupt), and garbage (see Options.Ceiling) is
// replaced by the block's dry input, which Stream keeps for every block in
// flight.
func Stream(lane *shm.Lane, src func(p []float32, wait bool) (int, error), dst func(p []float32, flags uint32) error, opt Options) (Stats, error) {
	var st Stats
	changes := opt.Changes
	if err := checkAutomation(changes); err != nil {
		return st, err
	}
	stall := opt.Stall
	if stall <= 0 {
		stall = 10 * time.Second
	}
	aborted := func() error {
		if opt.Abort != nil {
			return opt.Abort()
		}
		return nil
	}
	ceiling := opt.Ceiling
	if ceiling <= 0 {
		ceiling = DefaultCeiling
	}
	slice := stall // how long one wait may last before abort is asked
	if opt.Abort != nil {
		slice = min(stall, 10*time.Millisecond)
	}
	ch, frames := lane.Channels(), lane.Frames()
	per := ch * frames
	cur, nxt := make([]float32, per), make([]float32, per)
	// The dry input of every block in flight, for a block refused as
	// garbage: at most a ring of input and a ring of output are in flight,
	// and the push loop keeps it so.
	const inFlight = 2 * shm.RingSlots
	dry := make([]float32, inFlight*per)
	dryOf := func(b uint64) []float32 { return dry[int(b%inFlight)*per:][:per] }
	n, err := fill(src, cur, ch, true)
	if err != nil || n == 0 {
		return st, err
	}
	prod := shm.NewProducer(lane.In())
	cons := shm.NewConsumer(lane.Out())
	var pushed, next uint64 // blocks published; block number wanted next
	done := false           // the last block is published
	haveNext, nn := false, 0
	var lastNum uint64
	lastLen := per
	holding, heldEpoch := false, uint64(0) // no input while the owner that made garbage is replaced
	lastProgress := time.Now()
	for !done || next < pushed {
		progressed, starved := false, false
		if holding && opt.Epoch() != heldEpoch {
			holding = false
		}
		for !done && pushed-next < inFlight && !holding {
			b, err := prod.Peek()
			if err != nil {
				return st, err
			}
			if b == nil {
				break
			}
			if !haveNext && n == per {
				k, err := fill(src, nxt, ch, next == pushed)
				if err == ErrNotReady {
					starved = true
					break
				}
				if err != nil {
					return st, err
				}
				haveNext, nn = true, k
			}
			dstS := b.Samples(per)
			copy(dstS, cur[:n])
			clear(dstS[n:])
			copy(dryOf(pushed), dstS)
			flags := uint32(0)
			if n < per || nn == 0 {
				flags, done, lastNum, lastLen = shm.BlockLast, true, pushed, n
			}
			b.SetHeader(pushed, frames, flags, shm.NowNS())
			nc := 0
			for nc < len(changes) && changes[nc].Block == pushed {
				nc++
			}
			if err := b.SetChanges(changes[:nc]); err != nil {
				return st, err
			}
			changes = changes[nc:]
			prod.Publish()
			pushed++
			cur, nxt, n, haveNext = nxt, cur, nn, false
			progressed = true
		}
		for {
			b, err := cons.Peek()
			if err != nil {
				return st, err
			}
			if b == nil {
				break
			}
			num := b.Number()
			switch {
			case num < next: // redone by a new owner after a crash: already have it
			case num == next && num < pushed:
				if b.Frames() != frames {
					return st, fmt.Errorf("render: block %d has %d frames, want %d: %w", num, b.Frames(), frames, shm.ErrCorrupt)
				}
				l := per
				if done && num == lastNum {
					l = lastLen
				}
				flags := b.Flags()
				out := b.Samples(per)
				if flags&shm.BlockBypassed == 0 && garbage(out, ceiling) {
					out, flags = dryOf(num), flags|shm.BlockBypassed
					st.Garbage++
					if opt.Refuse != nil {
						opt.Refuse(num, b.Epoch())
						if opt.Epoch != nil {
							holding, heldEpoch = true, b.Epoch()
						}
					}
				}
				if flags&shm.BlockBypassed != 0 {
					if len(st.At) < MaxListed {
						st.At = append(st.At, num)
					}
					st.Bypassed++
				}
				if err := dst(out[:l], flags); err != nil {
					return st, err
				}
				st.Blocks++
				next++
			default:
				return st, fmt.Errorf("render: block %d arrived before block %d: %w", num, next, shm.ErrCorrupt)
			}
			cons.Release()
			progressed = true
		}
		if progressed {
			lastProgress = time.Now()
			continue
		}
		if next == pushed && !holding {
			// Nothing in flight, yet no room to push (the push loop waits on
			// src otherwise): an owner that has not released input it answered.
			if err := prod.Wait(50*time.Microsecond, slice); err != nil {
				return st, err
			}
			if err := aborted(); err != nil {
				return st, err
			}
			if b, _ := prod.Peek(); b == nil && time.Since(lastProgress) > stall {
				return st, fmt.Errorf("%w: no room for block %d after %v", ErrStalled, pushed, stall)
			}
			continue
		}
		// Outputs are due. While the source is not ready either, look at it
		// again every millisecond; otherwise sleep until output comes.
		wait := slice
		if starved || holding {
			wait = time.Millisecond
		}
		if err := cons.Wait(50*time.Microsecond, wait); err != nil {
			return st, err
		}
		if err := aborted(); err != nil {
			return st, err
		}
		if b, _ := cons.Peek(); b == nil && time.Since(lastProgress) > stall {
			return st, fmt.Errorf("%w: no output for block %d after %v", ErrStalled, next, stall)
		}
	}
	return st, nil
}

// garbage says whether a block holds NaN, an infinity or a sample past
// ceiling: one comparison per sample, as NaN fails every comparison.
func garbage(p []float32, ceiling float32) bool {
	for _, x := range p {
		if !(x <= ceiling && x >= -ceiling) {
			return true
		}
	}
	return false
}

// LaneAutomated is Lane with live parameter changes: each applies from the
// input block it names, as a clock that stamped it there would have it
// (see Options.Changes). Rendering the changes a live run's SetParam calls
// returned gives that run's output, bit for bit.
func LaneAutomated(lane *shm.Lane, in []float32, changes []shm.ParamChange, stall time.Duration) ([]float32, error) {
	out, _, err := Slice(lane, in, Options{Stall: stall, Changes: changes})
	return out, err
}

// Slice renders in (interleaved, a multiple of the lane's channels)
// through lane with opt, into a new slice of the same length, and what
// Stream saw of it: Stream over memory.
func Slice(lane *shm.Lane, in []float32, opt Options) ([]float32, Stats, error) {
	ch := lane.Channels()
	if len(in)%ch != 0 {
		return nil, Stats{}, fmt.Errorf("render: %d samples is not a multiple of %d channels", len(in), ch)
	}
	out := make([]float32, 0, len(in))
	rest := in
	st, err := Stream(lane,
		func(p []float32, _ bool) (int, error) {
			if len(rest) == 0 {
				return 0, io.EOF
			}
			n := copy(p, rest)
			rest = rest[n:]
			return n, nil
		},
		func(p []float32, _ uint32) error {
			out = append(out, p...)
			return nil
		}, opt)
	if err != nil {
		return nil, st, err
	}
	return out, st, nil
}

// checkAutomation refuses a list the lane could not carry: out of block
// order, or more changes at one block than a block holds.
func checkAutomation(changes []shm.ParamChange) error {
	for i, c := range changes {
		if i > 0 && c.Block < changes[i-1].Block {
			return fmt.Errorf("render: parameter change %d (block %d) comes after one at block %d; list them in block order", i, c.Block, changes[i-1].Block)
		}
		if i >= shm.BlockChanges && changes[i-shm.BlockChanges].Block == c.Block {
			return fmt.Errorf("render: more than %d parameter changes at block %d; a block carries at most %d", shm.BlockChanges, c.Block, shm.BlockChanges)
		}
	}
	return nil
}

// fill reads from src until p is full or the signal ends, keeping whole
// frames. Only its first read may be one that does not wait.
func fill(src func([]float32, bool) (int, error), p []float32, ch int, wait bool) (int, error) {
	n := 0
	for n < len(p) {
		k, err := src(p[n:], wait || n > 0)
		if err == ErrNotReady && n == 0 {
			return 0, err
		}
		n += k
		if err == io.EOF || (err == nil && k == 0) {
			break
		}
		if err != nil {
			return n, err
		}
	}
	if n%ch != 0 {
		return n, fmt.Errorf("render: %d samples is not a multiple of %d channels", n, ch)
	}
	return n, nil
}
