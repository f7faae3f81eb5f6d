package supervisor

import (
	"fmt"
	"strings"
	"time"
)

// The restart policy: a lane whose owners keep dying is not handed to spare
// after spare as fast as they can be spawned. The first two deaths in a row
// fail over at once (a fault, then the poison block's second victim); each
// one after waits twice as long as the last before the lane is handed over,
// from restartBackoff up to restartBackoffMax, the lane playing its fallback
// meanwhile; past Config.RestartLimit deaths in a row the lane is given up.
// An owner that committed healthyBlocks blocks before it died ends the run.
const (
	healthyBlocks     = 64
	restartBackoff    = time.Millisecond
	restartBackoffMax = 500 * time.Millisecond
	defaultRestarts   = 12
)

// restartPolicy counts lane l's owner death and sets when it may next be
// handed over, or gives it up. Monitor only; called as the owner is
// orphaned, with the detection in lr.det.
func (m *monitor) restartPolicy(l int) {
	limit := m.s.cfg.RestartLimit
	if limit < 0 {
		return
	}
	lr := &m.s.lanes[l]
	// Committed is the owner's own index: believed only as far as the host
	// pushed (a scribbler cannot buy itself a healthy record).
	done := min(m.s.region.Lane(l).Committed(), m.pushed(l))
	if done >= lr.attachBlock && done-lr.attachBlock >= healthyBlocks {
		lr.streak = 1
	} else {
		lr.streak++
	}
	if lr.streak > limit {
		lr.failed = true
		m.push(&monEvent{kind: mLaneFailed, lane: int16(l), det: lr.det, streak: int16(lr.streak)})
		return
	}
	if lr.streak > 2 {
		d := min(restartBackoff<<(lr.streak-3), restartBackoffMax)
		lr.notBefore = lr.det.detectNS + uint64(d)
	}
}

// ErrLaneFailed is what LaneFailed reports for a lane given up.
var ErrLaneFailed = fmt.Errorf("lane failed")

// laneFailed is the one message a given-up lane gets: which lane, which
// kernels, and why.
func (s *Supervisor) laneFailed(e monEvent) error {
	l := int(e.lane)
	var names []string
	for _, c := range s.cfg.Lanes[l].Chain {
		names = append(names, c.Name)
	}
	said := ""
	if w := s.truth.outputs.lastWords(e.det.pid); w != "" {
		said = fmt.Sprintf("; its last worker printed: %q", FoldLines(w))
	}
	return fmt.Errorf("%w: lane %d (%s): %d owners died in a row, none committing %d blocks, the last by %v at block %d%s; "+
		"it plays its fallback from now on: fix the kernel (run it with --unsandboxed under gdb to see why)",
		ErrLaneFailed, l, strings.Join(names, " | "), e.streak, healthyBlocks, e.det.path, e.det.block, said)
}
