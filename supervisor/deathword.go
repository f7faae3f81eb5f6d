package supervisor

import (
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/internal/uring"
	"github.com/understudy-rt/understudy/runtime/shm"
)

// Death words (docs/design.md §5, §6). Every worker lists its slot's death
// word as its thread's one robust futex; when the thread dies, the kernel's
// exit_mm_release -> futex_exit_release marks the word FUTEX_OWNER_DIED and
// wakes one shared waiter, before exit_mm unmaps anything. The monitor is
// that waiter, through an io_uring FUTEX_WAIT whose completion makes the
// ring's fd, which sits in the monitor's epoll set, readable: no second
// thread and no hop. The pidfd stays as the backstop and for reaping.

// maxWordRearms bounds how often one worker's word is re-armed after it
// changed without its owner dying (a spurious wake, a worker writing its own
// word): after that the monitor leaves that worker to its pidfd.
const maxWordRearms = 8

// maxRingReap bounds one reap of the completion queue: at most one wait per
// slot is live, plus one flushed per slot since the last reap.
const maxRingReap = 2 * shm.MaxSlots

// wordRec is the monitor's view of one slot's death word (monitor only).
type wordRec struct {
	gen    uint32 // the occupant this record is about (workerRec.gen)
	armed  bool   // a wait for gen is in the kernel
	off    bool   // done with gen: fired, unusable, or given up
	rearms int
}

func wordData(slot int, gen uint32) uint64 { return uint64(slot) | uint64(gen)<<32 }

// openRing sets up the death-word ring and adds it to the epoll set. A
// kernel that cannot (no io_uring, io_uring_disabled, no futex ops: before
// 6.7) leaves the monitor on its other paths and says why in one line.
func (m *monitor) openRing(disabled bool) {
	m.ringWarn = ""
	if disabled {
		m.ringWarn = "death words off (Config); worker deaths are detected by pidfd"
		return
	}
	r, err := uring.New(4 * shm.MaxSlots)
	if err == nil {
		err = r.ProbeFutexWait()
	}
	if err == nil {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: tagRing}
		err = unix.EpollCtl(m.epfd, unix.EPOLL_CTL_ADD, r.FD(), &ev)
	}
	if err != nil {
		r.Close()
		m.ringWarn = "death words off: " + err.Error() + "; worker deaths are detected by pidfd, a few hundred µs later"
		return
	}
	m.ring = r
}

func (m *monitor) closeRing() {
	if m.ring != nil {
		m.ring.Close()
		m.ring = nil
	}
}

// DeathWordWarning is one line saying why worker deaths are not detected by
// death words (io_uring futex waits unavailable), or "" when they are.
func (s *Supervisor) DeathWordWarning() string { return s.mon.ringWarn }

// WordDeaths counts worker deaths the monitor learnt from a death word.
func (s *Supervisor) WordDeaths() uint64 { return s.mon.wordDeaths.Load() }

// armWord sets FUTEX_WAITERS on slot i's word (so the kernel wakes someone
// when it marks it) and queues a wait for exactly that value; the caller
// submits. A word without a TID (the worker could not register it) or of
// another generation is left alone: the pidfd still watches that worker.
func (m *monitor) armWord(i int, now uint64) {
	w := &m.s.workers[i]
	wr := &m.words[i]
	if wr.gen != w.gen { // a new occupant of the slot
		*wr = wordRec{gen: w.gen}
	}
	if wr.armed || wr.off {
		return
	}
	ss := m.s.region.Slot(i)
	if ss.DeathGen() != wr.gen {
		wr.off = true
		return
	}
	p := ss.DeathWord()
	for try := 0; try < 2; try++ { // the CAS loses only to the kernel (or a scribbling worker)
		v := atomic.LoadUint32(p)
		if v&shm.FutexOwnerDied != 0 {
			m.wordDied(i, now) // died before we armed
			return
		}
		if v&shm.FutexTIDMask == 0 {
			break
		}
		want := v&shm.FutexTIDMask | shm.FutexWaiters
		if v != want && !atomic.CompareAndSwapUint32(p, v, want) {
			continue
		}
		if m.ring.FutexWait(p, want, wordData(i, wr.gen)) {
			wr.armed = true
			return
		}
		break
	}
	wr.off = true
}

// reapWords handles every death-word completion. It runs first in each poll:
// a word is the earliest news of a death, and completions are posted as task
// work when the monitor thread returns from a system call (its epoll_wait
// included, even one interrupted), so they are in the queue by now.
func (m *monitor) reapWords(now uint64) {
	if m.ring == nil {
		return
	}
	for n := 0; n < maxRingReap && m.ring.Next(&m.cqe); n++ {
		i, gen := int(m.cqe.UserData&0xffffffff), uint32(m.cqe.UserData>>32)
		if i >= len(m.words) {
			continue
		}
		wr := &m.words[i]
		if !wr.armed || wr.gen != gen {
			continue // a wait flushed when its worker's pidfd came first
		}
		wr.armed = false
		if m.s.region.Slot(i).DeathGen() != gen {
			wr.off = true
			continue
		}
		if atomic.LoadUint32(m.s.region.Slot(i).DeathWord())&shm.FutexOwnerDied != 0 {
			m.wordDied(i, now)
			continue
		}
		// Woken, or refused (-EAGAIN), without a death: the word changed
		// under us. Watch again, a bounded number of times.
		if wr.rearms++; wr.rearms > maxWordRearms {
			wr.off = true
			continue
		}
		m.armWord(i, now)
	}
	m.ring.Submit()
}

// wordDied handles slot i's word marked OWNER_DIED. The worker can write its
// own word, so the death is confirmed by one poll of its seccomp filter's
// listener (or, without one, one read of its exit flag); a worker that is
// not all in exit (a forged word, or threads of a user's kernel still
// running) is left to its pidfd and deadline.
func (m *monitor) wordDied(i int, now uint64) {
	wr := &m.words[i]
	wr.off = true
	w := &m.s.workers[i]
	st := w.state.Load()
	if st != wOwner && st != wSpare && st != wKilled {
		return // dying by its last gasp, or already dead
	}
	if ok, _, _, _ := m.s.region.Slot(i).Gasp(); ok && !w.gaspSeen {
		// Its fatal-signal handler spoke first and says more (signal,
		// block in hand): let the gasp be the detection.
		m.scanGasps(now)
		return
	}
	released, known := m.filterReleased(i)
	if !known {
		released = m.exited(i)
	}
	if !released {
		m.wordUnconfirmed.Add(1)
		return
	}
	_, act, ok := m.step(i, evWord)
	if !ok {
		return
	}
	if st != wKilled {
		m.wordDeaths.Add(1)
	}
	l := int(w.lane.Load())
	if known && l >= 0 && act&aDetect != 0 {
		m.putOff(i, false, l) // classified once the lane is handed on
	}
	if l < 0 {
		return
	}
	if act&aDetect != 0 {
		// A seccomp kill (SIGSYS) is the sandbox's fault path: said by
		// the stat line exited() just read, or (confirmed by the filter)
		// by the one classify reads after the hand-over.
		p := PathDeathWord
		if !known && statExitSignal(m.statBuf[:m.statN]) == int(unix.SIGSYS) {
			p = PathSandbox
		}
		b, pending := m.inHand(l)
		m.detected(l, i, p, 0, b, pending, now)
	}
	if act&aOrphan != 0 {
		m.orphan(l, i)
	}
	// A hung owner we killed: the word is its fence, sooner than the
	// exit-flag polls.
	if act&aFence != 0 && m.s.lanes[l].awaiting == i {
		m.fenced(l, i)
	}
}

// flushWord ends slot i's outstanding wait when its pidfd reported the death
// first (a corrupted robust list marks nothing): the process is gone, so no
// one else writes the word, and the wake completes the wait now, before the
// slot can hold a new worker whose death the kernel would otherwise deliver
// to this stale waiter (it wakes only one).
func (m *monitor) flushWord(i int) {
	wr := &m.words[i]
	if m.ring == nil || !wr.armed {
		return
	}
	wr.armed = false
	wr.off = true
	shm.FutexWake(m.s.region.Slot(i).DeathWord(), 1<<30)
}
