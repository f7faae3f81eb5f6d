package supervisor

import "sync/atomic"

// A lane's deadline: how long a pending block may wait from its push before
// its owner is judged hung. It comes from what is measured — the owner's
// own recent peak of a block's chain time, with half again for its jitter,
// plus the worst wake-up lateness the clock has seen on this machine — and
// is bounded below by the configured hang timeout (Config.HangTimeout) and
// above by the output's headroom, (latency-1) periods: past that the block
// is late whatever the cause, and waiting longer protects nothing. So a slow
// but healthy kernel (800 µs of a 1.33 ms period) is not killed as hung, a
// machine that wakes threads late is not blamed on the workers, and every
// real hang is still caught before the output needs the block.

// DeadlineBound says which bound set a lane's deadline.
type DeadlineBound uint32

const (
	BoundFloor    DeadlineBound = iota // the configured hang timeout
	BoundMeasured                      // the owner's measured block time plus the machine's lateness
	BoundHeadroom                      // the output's headroom: the deadline can be no later
)

func (b DeadlineBound) String() string {
	switch b {
	case BoundMeasured:
		return "measured"
	case BoundHeadroom:
		return "headroom"
	}
	return "hang timeout"
}

// laneDeadline is the monitor's last deadline for a lane, for reports:
// written by the monitor, read by anyone.
type laneDeadline struct {
	ns    atomic.Uint64
	bound atomic.Uint32
}

// budget is how long lane l's pending block may wait, owned by slot.
// Monitor only; no allocation.
func (m *monitor) budget(l, slot int) uint64 {
	d, bound := m.hangNS, BoundFloor
	if m.tl != nil {
		// The lane's kernels' speed: this owner's measure, or its
		// predecessors' until it has one. Before anyone has measured a
		// block, nothing says how slow a healthy block is: the headroom.
		lr := &m.s.lanes[l]
		ss := m.s.region.Slot(slot)
		cost := lr.costPeak
		if ss.FirstCommitNS() != 0 {
			cost = max(cost, ss.CostPeakNS())
		}
		h := m.tl.HeadroomNS()
		measured := cost*3/2 + m.tl.LateMaxNS()
		if cost == 0 && ss.FirstCommitNS() == 0 {
			measured = h // unknown: the headroom, if the clock knows it
		}
		if measured > d {
			d, bound = measured, BoundMeasured
		}
		if h > 0 && d > h {
			// Never below the floor: a headroom shorter than the hang
			// timeout is the user's choice of both.
			d, bound = max(h, m.hangNS), BoundHeadroom
		}
	}
	ld := &m.s.deadlines[l]
	if ld.ns.Load() != d {
		ld.ns.Store(d)
	}
	if DeadlineBound(ld.bound.Load()) != bound {
		ld.bound.Store(uint32(bound))
	}
	return d
}

// Deadline is lane l's current deadline and the bound that set it.
func (s *Supervisor) Deadline(l int) (ns uint64, bound DeadlineBound) {
	ld := &s.deadlines[l]
	return ld.ns.Load(), DeadlineBound(ld.bound.Load())
}

// Overruns sums, over the workers that own a lane now, the blocks whose
// chain took longer than a period: a slow kernel, not a hung one.
func (s *Supervisor) Overruns() uint64 {
	var n uint64
	for i := range s.workers {
		if s.workers[i].state.Load() == wOwner {
			n += s.region.Slot(i).Overruns()
		}
	}
	return n
}
