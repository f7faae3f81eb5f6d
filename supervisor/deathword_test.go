package supervisor

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/runtime/catalog"
	"github.com/understudy-rt/understudy/runtime/chain"
	"github.com/understudy-rt/understudy/runtime/shm"
)

// requireDeathWords fails a test whose supervisor runs without death words:
// the project's machines have Linux 6.7+ with io_uring enabled, so a missing
// ring is a regression to see, not a reason to skip.
func requireDeathWords(t *testing.T, s *Supervisor) {
	t.Helper()
	if w := s.DeathWordWarning(); w != "" {
		t.Fatalf("supervisor runs without death words: %s", w)
	}
}

// A worker whose robust list is corrupt dies without marking its word (the
// kernel's walk of the list stops at the first bad pointer, silently): the
// pidfd, the mandatory backstop, still detects it and the lane continues.
func TestCorruptRobustListStillDetected(t *testing.T) {
	underNoise(t, func(tr *trial) *rig {
		r := newRig(t, rigConfig{lanes: 1, spares: 1, blocks: 600, rt: true})
		requireDeathWords(t, r.sup)
		r.play()
		r.waitPeriods(100)
		words := r.sup.WordDeaths()
		_, e, ok := r.failOnce(tr, FaultRobust, 150)
		if !ok {
			return r
		}
		// By the pidfd itself, not by the deadline that would catch a
		// lane whose owner's death no path reported (exiting): the
		// backstop is what this test is about.
		if e.Path != PathPidfd {
			tr.errorf("detected by %v, want %v: its word must not fire, and its pidfd must", e.Path, PathPidfd)
		}
		if n := r.sup.WordDeaths() - words; n != 0 {
			tr.errorf("%d deaths seen by word, want 0: the list was corrupt", n)
		}
		if st := r.clk.Stats(0); st.Delivered != uint64(r.nBlocks) || st.Xruns != 0 {
			tr.errorf("delivered %d of %d blocks, %d xruns", st.Delivered, r.nBlocks, st.Xruns)
		}
		return r
	})
}

// A user kernel that starts a thread of its own and then ends the worker's
// thread alone: the worker's death word fires (its thread died) while the
// process lives on in a thread no word watches, which could still write the
// lane. The word's death must not be confirmed (the exit read sees a second
// thread), so the lane does not move on it; the owner is caught as hung,
// killed and fenced by its exit, and the lane goes on, its output intact.
func TestThreadedKernelMainThreadDies(t *testing.T) {
	worker := hostileWorker(t)
	cat, err := catalog.Load(worker)
	if err != nil {
		t.Fatal(err)
	}
	st, err := chain.Parse(fmt.Sprintf("hostile mode=%d", modeThreadLeft), cat)
	if err != nil {
		t.Fatal(err)
	}
	lc, err := chain.LaneConfig(st, 1, 64, 48000, "scalar")
	if err != nil {
		t.Fatal(err)
	}
	underNoise(t, func(tr *trial) *rig {
		r := newRig(t, rigConfig{lanes: 1, spares: 2, blocks: 600, rt: true, worker: worker, laneCfgs: []shm.LaneConfig{lc}})
		requireDeathWords(t, r.sup)
		const trigger = 200
		r.in[0][trigger*r.frames] = hostileTrigger
		r.play()
		r.finish(EvFailover, 2)
		deaths := 0
		for _, e := range r.eventsOf(EvFailover) {
			if e.Lane != 0 || e.Block != trigger {
				continue
			}
			deaths++
			tr.target(e.PID)
			if e.Path == PathDeathWord {
				tr.errorf("pid %d: the lane moved on its death word while a thread of it still ran", e.PID)
			}
		}
		if deaths < 2 {
			tr.errorf("%d failovers, want at least 2 (two owners lost on the block before it is bypassed)", deaths)
		}
		if err := r.sup.ListenerWarning(); err != nil {
			t.Fatalf("the host took no filter listener, so this ran the stat fallback: %v", err)
		}
		if n := r.sup.mon.wordUnconfirmed.Load(); n < 2 {
			tr.errorf("%d word deaths left unconfirmed, want 2: each owner's word fired with its sibling alive", n)
		}
		if st := r.clk.Stats(0); st.Delivered != uint64(r.nBlocks) {
			tr.errorf("delivered %d of %d blocks", st.Delivered, r.nBlocks)
		}
		return r
	})
}

// A slot reused by a new worker starts with a clean word of its own
// generation, never its predecessor's OWNER_DIED; and a predecessor whose
// word never fired (its pidfd reported it) leaves no stale waiter on the
// word to swallow the kernel's one wake at the next occupant's death.
func TestSlotReuseNeverInheritsDeath(t *testing.T) {
	// Completions are task work of the thread that submitted the waits: the
	// test drives the monitor, so it keeps one thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s := manualSupervisor(t, &stallTimeline{}, 5*time.Millisecond) // nothing pending: no deadline fires
	requireDeathWords(t, s)
	waitPolling := func(f func() bool) bool {
		for i := 0; i < 10000; i++ {
			if f() {
				return true
			}
			s.mon.poll(0)
			time.Sleep(200 * time.Microsecond)
		}
		return false
	}
	pollUntil := func(what string, f func() bool) {
		t.Helper()
		if !waitPolling(f) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
	owner := func() int { o, _ := s.Owner(0); return o }
	// respawnInto waits until slot holds a new, armed spare. The spawner
	// takes the lowest free slot, and the replacement for a dead owner may
	// be claimed before the owner's slot is free (a word death moves the
	// lane before the pidfd reaps it), so spares elsewhere are killed until
	// one lands in slot.
	respawnInto := func(slot int, gen uint32) {
		t.Helper()
		in := func() bool {
			return s.workers[slot].state.Load() == wSpare && s.region.Slot(slot).DeathGen() != gen && s.mon.words[slot].armed
		}
		for try := 0; try < 8; try++ {
			settled := waitPolling(func() bool {
				spares, _, other := s.Counts()
				return in() || (s.workers[slot].state.Load() == wFree && spares > 0 && other == 0)
			})
			if in() {
				return
			}
			if !settled {
				break
			}
			// slot is free and the spare went elsewhere: its replacement
			// takes the lowest free slot.
			for i := range s.workers {
				if i != slot && s.workers[i].state.Load() == wSpare {
					syscall.Kill(int(s.workers[i].pid.Load()), syscall.SIGKILL)
					waitPolling(func() bool { return s.workers[i].state.Load() == wFree })
				}
			}
		}
		t.Fatalf("no new spare in slot %d", slot)
	}

	// 1. The owner dies by SIGKILL and its word fires.
	a, pidA := s.Owner(0)
	genA := s.workers[a].gen
	pollUntil("the owner's word armed", func() bool { return s.mon.words[a].armed })
	syscall.Kill(pidA, syscall.SIGKILL)
	pollUntil("the lane to move", func() bool { o := owner(); return o >= 0 && o != a })
	if got := s.mon.wordDeaths.Load(); got != 1 {
		t.Fatalf("%d word deaths after the first kill, want 1", got)
	}

	// 2. Its slot's next worker: a clean word, its own generation, alive.
	respawnInto(a, genA)
	deaths := s.mon.wordDeaths.Load()
	ss := s.region.Slot(a)
	w := atomic.LoadUint32(ss.DeathWord())
	if w&shm.FutexOwnerDied != 0 || w&shm.FutexTIDMask == 0 || ss.DeathGen() != s.workers[a].gen {
		t.Fatalf("reused slot's word %#x gen %d (worker gen %d): want a live TID, no OWNER_DIED, its own generation",
			w, ss.DeathGen(), s.workers[a].gen)
	}
	for i := 0; i < 50; i++ {
		s.mon.poll(0)
	}
	if st := s.workers[a].state.Load(); st != wSpare || s.mon.wordDeaths.Load() != deaths {
		t.Fatalf("the new worker in slot %d is state %d, word deaths %d: it inherited a death", a, st, s.mon.wordDeaths.Load())
	}

	// 3. The current owner's word is made useless (as a worker scribbling
	// its own word would) and it is killed: only its pidfd tells, and its
	// wait is still in the kernel when it does.
	b, pidB := s.Owner(0)
	genB := s.workers[b].gen
	pollUntil("the second owner's word armed", func() bool { return s.mon.words[b].armed })
	atomic.StoreUint32(s.region.Slot(b).DeathWord(), 0x3ffffffe|shm.FutexWaiters) // a TID that is not its own
	syscall.Kill(pidB, syscall.SIGKILL)
	pollUntil("the lane to move again", func() bool { o := owner(); return o >= 0 && o != b })
	if got := s.mon.wordDeaths.Load(); got != deaths {
		t.Fatalf("%d word deaths, want still %d: the second owner's word could not fire", got, deaths)
	}

	// 4. That slot's next worker dies: the kernel wakes one waiter on the
	// word, and it must be this worker's, so its death is seen by word.
	respawnInto(b, genB)
	deaths = s.mon.wordDeaths.Load()
	pidC := int(s.workers[b].pid.Load())
	syscall.Kill(pidC, syscall.SIGKILL)
	deadline := time.Now().Add(2 * time.Second)
	for s.mon.wordDeaths.Load() == deaths && time.Now().Before(deadline) {
		s.mon.reapWords(shm.NowNS()) // the word alone: no pidfd is looked at
		time.Sleep(100 * time.Microsecond)
	}
	if got := s.mon.wordDeaths.Load(); got != deaths+1 {
		t.Fatalf("the reused slot's worker died unseen by its word (%d word deaths, want %d): a stale waiter took the wake", got, deaths+1)
	}
	if st := s.workers[b].state.Load(); st != wDying {
		t.Errorf("dead spare's state %d, want dying (never to be handed a lane)", st)
	}
}

// Without death words (a kernel before 6.7, io_uring disabled: here by
// configuration) the supervisor says so in one line and a kill is still
// detected, by the paths it had before.
func TestWithoutDeathWordsPidfdStillDetects(t *testing.T) {
	underNoise(t, func(tr *trial) *rig {
		r := newRig(t, rigConfig{lanes: 1, spares: 1, blocks: 400, rt: true, noDeathWord: true})
		if w := r.sup.DeathWordWarning(); w == "" || strings.Contains(w, "\n") {
			t.Fatalf("warning %q: want one line", w)
		}
		r.play()
		r.waitPeriods(100)
		_, e, ok := r.failOnce(tr, FaultKill, 0)
		if !ok {
			return r
		}
		if p := e.Path; p != PathPidfd && p != PathExiting {
			tr.errorf("detected by %v without death words, want pidfd or exiting", p)
		}
		if st := r.clk.Stats(0); st.Delivered != uint64(r.nBlocks) || st.Xruns != 0 {
			tr.errorf("delivered %d of %d blocks, %d xruns", st.Delivered, r.nBlocks, st.Xruns)
		}
		return r
	})
}

// The host holds a copy of every sandboxed worker's filter listener (the
// mm-free confirmation of its death word), and it is one.
func TestListenerTakenFromEveryWorker(t *testing.T) {
	r := newRig(t, rigConfig{lanes: 2, spares: 2, blocks: 600, rt: true})
	r.play()
	r.waitPeriods(50)
	if err := r.sup.ListenerWarning(); err != nil {
		t.Fatal(err)
	}
	live := 0
	for i := range r.sup.workers {
		w := &r.sup.workers[i]
		if st := w.state.Load(); st != wOwner && st != wSpare {
			continue
		}
		live++
		fd := w.listener.Load()
		if fd < 0 {
			t.Errorf("worker %d (pid %d) is live with no listener", i, w.pid.Load())
			continue
		}
		if target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)); err != nil || target != "anon_inode:seccomp notify" {
			t.Errorf("worker %d's listener fd %d is %q (%v)", i, fd, target, err)
		}
		pfd := []unix.PollFd{{Fd: fd, Events: unix.POLLIN}}
		if n, err := unix.Poll(pfd, 0); err != nil || n != 0 {
			t.Errorf("worker %d, alive: its listener polls %d (%#x, %v), want nothing", i, n, pfd[0].Revents, err)
		}
	}
	if live != 4 {
		t.Errorf("%d live workers, want 4", live)
	}
}
