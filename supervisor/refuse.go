package supervisor

import (
	"fmt"
	"sync/atomic"
)

// A refusal is a lane's output refused as garbage by whoever reads it
// without the audio clock (runtime/render, for files): the offline twin of
// the clock's garbage count (Timeline.Garbage).
type refusal struct {
	// Written by the lane's one reader (RefuseOutput) in the order block,
	// epoch, seq; the monitor reads seq, the pair, and seq again, and
	// takes the pair only when seq did not move (a seqlock: a writer that
	// moved it queues a cRefused, or finds one pending that the monitor
	// has not yet begun, so a pair it skips is read at its next command).
	seq   atomic.Uint64
	block atomic.Uint64
	epoch atomic.Uint64
	seen  uint64 // monitor only: seq when last handled

	ownerEpoch atomic.Uint64 // the lane's owner epoch, mirrored for OwnerEpoch; written by the monitor only

}

// RefuseOutput tells the supervisor that lane l's block was garbage (NaN,
// Inf, past the ceiling) and was not used: its owner is killed with path
// `garbage`, and the successor starts the chain afresh, since the committed
// state that made the garbage may be poisoned. It is for a lane's one
// reader off the real-time path (render.Options.Refuse); the audio clock
// reports its own through the Timeline. A refusal that finds the owner
// already gone or replaced does nothing: epoch is the one the refused
// block carries, and only the owner of that epoch is killed (a block an
// owner mislabels is refused all the same; only the kill misses, and only
// its own lane plays dry).
func (s *Supervisor) RefuseOutput(l int, block, epoch uint64) error {
	if l < 0 || l >= s.region.Lanes() {
		return fmt.Errorf("supervisor: lane %d of %d", l, s.region.Lanes())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	r := &s.refused[l]
	r.block.Store(block)
	r.epoch.Store(epoch)
	r.seq.Add(1)
	if s.refusePending.CompareAndSwap(false, true) {
		s.command(cRefused, -1)
	}
	return nil
}

// scanRefused handles the refusals made since it last looked: the same
// treatment as the clock's garbage.
func (m *monitor) scanRefused(now uint64) {
	for l := range m.s.refused[:m.s.region.Lanes()] {
		r := &m.s.refused[l]
		seq := r.seq.Load()
		if seq == r.seen {
			continue
		}
		block, epoch := r.block.Load(), r.epoch.Load()
		if r.seq.Load() != seq {
			continue // being rewritten: its writer rings again
		}
		r.seen = seq
		if epoch == m.s.lanes[l].epoch {
			m.refuse(l, block, now)
		}
	}
}

// refuse kills lane l's owner for its garbage block, unless it is already
// being replaced.
func (m *monitor) refuse(l int, block uint64, now uint64) {
	lr := &m.s.lanes[l]
	if o := int(lr.owner.Load()); o >= 0 && lr.awaiting < 0 {
		lr.reinit = true
		m.kill(l, o, PathGarbage, block, false, now)
	}
}

// OwnerEpoch is lane l's current owner epoch: it moves on whenever a new
// owner is handed the lane (render.Options.Epoch).
func (s *Supervisor) OwnerEpoch(l int) uint64 {
	if l < 0 || l >= s.region.Lanes() {
		return 0
	}
	return s.refused[l].ownerEpoch.Load()
}
