// Package render pushes whole signals through supervised lanes as fast as
// the workers go, with no audio clock: the bit-exact reference for a
// real-time run, and the path for rendering files.
package render

import (
	"errors"
	"fmt"
	"time"

	"github.com/understudy-rt/understudy/runtime/shm"
)

// ErrStalled means a lane produced nothing for longer than the stall limit.
var ErrStalled = errors.New("render: lane stalled")

// Source fills dst, the lane's channels interleaved, with the input frames
// from frame on (len(dst) / channels of them; the last block's dst is cut to
// the frames that remain, and Stream zero-pads the rest of the slot).
type Source func(dst []float32, frame int)

// Sink takes the output frames from frame on, the lane's channels
// interleaved, in order and each exactly once. src is the ring's own memory:
// it is valid only until Sink returns. An error stops the render.
type Sink func(src []float32, frame int) error

// Lane renders in (interleaved, a multiple of the lane's channels) through
// lane, whose owner must be attached, into a new slice of the same length.
// Blocks are numbered from 0; the last one is zero-padded and flagged.
// stall bounds how long it waits for any one block (0: 10 s).
func Lane(lane *shm.Lane, in []float32, stall time.Duration) ([]float32, error) {
	ch := lane.Channels()
	if len(in)%ch != 0 {
		return nil, fmt.Errorf("render: %d samples is not a multiple of %d channels", len(in), ch)
	}
	out := make([]float32, len(in))
	err := Stream(lane, len(in)/ch,
		func(dst []float32, frame int) { copy(dst, in[frame*ch:]) },
		func(src []float32, frame int) error { copy(out[frame*ch:], src); return nil },
		stall)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Stream renders frames frames through lane, whose owner must be attached,
// taking input from in as ring slots free up and handing each output block
// to out as it arrives, so that a caller can decode and encode while the
// worker runs instead of holding whole copies of the signal. Blocks are
// numbered from 0; the last one is zero-padded and flagged.
//
// It keeps the lane's ring as full as it will go: the worker then finds the
// next block waiting and never sleeps between blocks, and this goroutine
// sleeps (after a short spin) only when it has nothing to push and nothing
// to take. stall bounds how long it waits for any one block (0: 10 s).
func Stream(lane *shm.Lane, frames int, in Source, out Sink, stall time.Duration) error {
	if stall <= 0 {
		stall = 10 * time.Second
	}
	ch, bf := lane.Channels(), lane.Frames()
	per := ch * bf
	nBlocks := (frames + bf - 1) / bf
	prod := shm.NewProducer(lane.In())
	cons := shm.NewConsumer(lane.Out())
	var pushed, got int
	next := uint64(0) // block number wanted next
	for got < nBlocks {
		progressed := false
		// One timestamp per burst of pushes: the clock is a system call
		// here, and the blocks of a burst are all pushed within it.
		var stamp uint64
		for pushed < nBlocks {
			b, err := prod.Peek()
			if err != nil {
				return err
			}
			if b == nil {
				break
			}
			dst := b.Samples(per)
			n := min(bf, frames-pushed*bf) * ch
			in(dst[:n], pushed*bf)
			clear(dst[n:])
			flags := uint32(0)
			if pushed == nBlocks-1 {
				flags = shm.BlockLast
			}
			if stamp == 0 {
				stamp = shm.NowNS()
			}
			b.SetHeader(uint64(pushed), bf, flags, stamp)
			prod.Publish()
			pushed++
			progressed = true
		}
		for {
			b, err := cons.Peek()
			if err != nil {
				return err
			}
			if b == nil {
				break
			}
			num := b.Number()
			switch {
			case num < next: // redone by a new owner after a crash: already have it
			case num == next:
				if b.Frames() != bf {
					return fmt.Errorf("render: block %d has %d frames, want %d: %w", num, b.Frames(), bf, shm.ErrCorrupt)
				}
				first := int(num) * bf
				if err := out(b.Samples(min(bf, frames-first)*ch), first); err != nil {
					return err
				}
				next++
				got++
			default:
				return fmt.Errorf("render: block %d arrived before block %d", num, next)
			}
			cons.Release()
			progressed = true
		}
		if !progressed && got < nBlocks {
			// A short spin, on the runtime's clock (vDSO: shm's Wait reads
			// the clock by system call on every turn of its spin), catches
			// a block the worker is about to finish; then sleep in Wait.
			// Longer spins measured slower on a 2-core machine: a spinning
			// host takes the core that the worker or the encoder needs
			// (300 s stereo at 256 frames, medians of 5: 0 and 10 µs 0.60
			// s, 50 µs 0.68 s).
			if b, err := spin(cons, 10*time.Microsecond); err != nil {
				return err
			} else if b {
				continue
			}
			if err := cons.Wait(0, stall); err != nil {
				return err
			}
			if b, _ := cons.Peek(); b == nil {
				if p, _ := prod.Peek(); p == nil || pushed == nBlocks {
					return fmt.Errorf("%w: no output for block %d after %v", ErrStalled, next, stall)
				}
			}
		}
	}
	return nil
}

// spin polls cons for up to d; true when a block is ready.
func spin(cons *shm.Consumer, d time.Duration) (bool, error) {
	start := time.Now()
	for i := 0; ; i++ {
		b, err := cons.Peek()
		if err != nil || b != nil {
			return b != nil, err
		}
		// The clock every 64 turns: a turn is a few loads.
		if i&63 == 63 && time.Since(start) >= d {
			return false, nil
		}
	}
}
