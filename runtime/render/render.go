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

// Lane renders in (interleaved, a multiple of the lane's channels) through
// lane, whose owner must be attached, into a new slice of the same length.
// Blocks are numbered from 0; the last one is zero-padded and flagged.
// stall bounds how long it waits for any one block (0: 10 s).
func Lane(lane *shm.Lane, in []float32, stall time.Duration) ([]float32, error) {
	if stall <= 0 {
		stall = 10 * time.Second
	}
	ch, frames := lane.Channels(), lane.Frames()
	per := ch * frames
	if len(in)%ch != 0 {
		return nil, fmt.Errorf("render: %d samples is not a multiple of %d channels", len(in), ch)
	}
	nBlocks := (len(in) + per - 1) / per
	out := make([]float32, len(in))
	prod := shm.NewProducer(lane.In())
	cons := shm.NewConsumer(lane.Out())
	var pushed, got int
	next := uint64(0) // block number wanted next
	for got < nBlocks {
		progressed := false
		for pushed < nBlocks {
			b, err := prod.Peek()
			if err != nil {
				return nil, err
			}
			if b == nil {
				break
			}
			dst := b.Samples(per)
			n := copy(dst, in[pushed*per:min((pushed+1)*per, len(in))])
			clear(dst[n:])
			flags := uint32(0)
			if pushed == nBlocks-1 {
				flags = shm.BlockLast
			}
			b.SetHeader(uint64(pushed), frames, flags, shm.NowNS())
			prod.Publish()
			pushed++
			progressed = true
		}
		for {
			b, err := cons.Peek()
			if err != nil {
				return nil, err
			}
			if b == nil {
				break
			}
			num := b.Number()
			switch {
			case num < next: // redone by a new owner after a crash: already have it
			case num == next:
				if b.Frames() != frames {
					return nil, fmt.Errorf("render: block %d has %d frames, want %d: %w", num, b.Frames(), frames, shm.ErrCorrupt)
				}
				lo := int(num) * per
				copy(out[lo:min(lo+per, len(out))], b.Samples(per))
				next++
				got++
			default:
				return nil, fmt.Errorf("render: block %d arrived before block %d", num, next)
			}
			cons.Release()
			progressed = true
		}
		if !progressed && got < nBlocks {
			if err := cons.Wait(50*time.Microsecond, stall); err != nil {
				return nil, err
			}
			if b, _ := cons.Peek(); b == nil {
				if p, _ := prod.Peek(); p == nil || pushed == nBlocks {
					return nil, fmt.Errorf("%w: no output for block %d after %v", ErrStalled, next, stall)
				}
			}
		}
	}
	return out, nil
}
