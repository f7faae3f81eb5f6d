package supervisor

import (
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/internal/uring"
	"github.com/understudy-rt/understudy/runtime/shm"
)

// The monitor is one goroutine locked to its OS thread and raised to
// SCHED_FIFO above the clock and the workers. It blocks in epoll_wait on every
// worker's pidfd, the doorbell that workers ring (a last gasp, READY, an
// attach, a first commit) and the clock rings (a corrupted ring), a timerfd
// armed at the next deadline, the control queue's eventfd, and an io_uring
// of futex waits on the workers' death words (deathword.go). It decides
// failovers and never forks, execs, allocates or takes a lock that
// non-real-time code holds.
//
// It owns the workers' and lanes' real-time state (workerRec.state and
// lane, laneRec): it alone writes them, and every change of a worker's
// state goes through the transition table in workerstate.go. The control
// plane (spawns, reaps, events, the spare pool) talks to it only through two
// queues of fixed records (ctlqueue.go): ctlCmd in, monEvent out.

// epoll tags, in EpollEvent.Fd; the slot rides in Pad.
const (
	tagDoorbell = 1
	tagTimer    = 2
	tagCtl      = 3
	tagPidfd    = 4
	tagRing     = 5 // the death-word io_uring: completions are queued
)

type workerRec struct {
	// Written by the monitor alone, through step (workerstate.go); after
	// the monitor has stopped (monDone closed), by Close. Loaded by anyone
	// (Counts, Overruns, SetWorkerPriority, tests) for a recent view; no
	// reader off the monitor relies on its ordering with other fields.
	state atomic.Uint32
	// The lane owned, -1 for none. Written by the monitor alone, stored
	// before the lane's owner (assign) and reset after it is taken back
	// (orphan); loaded by anyone.
	lane atomic.Int32

	// The process, written by the control plane alone: the spawner before
	// it queues cSpawned, reap and Close when they release them (after the
	// monitor reported its death, or stopped). The monitor reads them only
	// between cSpawned and its report of the death, so the queue's release
	// and acquire order them; atomics because Owner, InjectFault and
	// SetWorkerPriority load them from other goroutines at any time.
	pid   atomic.Int32
	pidfd atomic.Int32
	// /proc/<pid>/stat, opened at spawn and closed at reap: the monitor's
	// fence reads the process's exit flag from it without opening anything.
	statFD atomic.Int32
	// The host's copy (pidfd_getfd, at READY) of the listener of the
	// worker's seccomp filter, or -1; closed at reap. It reads POLLHUP once
	// every task of the worker has released the filter in do_exit: an
	// mm-free read that the worker cannot forge (filter.go).
	listener atomic.Int32
	// The host's end of the worker's control socket: the monitor sends the
	// lane's fd on it at attach.
	ctl atomic.Int32
	gen uint32 // the slot's generation for this process (spawner, before cSpawned)

	// Monitor only.
	gaspSeen bool // reset at cSpawned

	// Control plane only, under Supervisor.mu.
	busy     bool           // claimed by a spawn, until reaped
	spawning bool           // claimed and not yet READY (or failed)
	spawnNS  uint64         // when the process was started
	tail     *outputTail    // its captured output
	hs       chan handshake // its spawner's answer: READY, or the death that ended the handshake
}

// handshake is how a spawn ended: the control plane sends it to the
// spawner when the monitor reports the worker READY (ok) or dead.
type handshake struct {
	ok        bool
	code, sig int // the dead process's exit status
}

// detection is a lane's outage as first seen. Monitor only.
type detection struct {
	path     Path
	slot     int
	pid      int
	signal   int
	block    uint64
	pending  bool // the host had pushed block and the owner had not committed it
	faultNS  uint64
	detectNS uint64
}

type laneRec struct {
	// The owner's slot, -1 while none. Written by the monitor alone,
	// stored after workerRec.lane (assign) and reset before it (orphan);
	// loaded by anyone (Owner, InjectFault, tests).
	owner atomic.Int32
	// Everything below is the monitor's alone, but for the fields Start
	// and New set before the monitor runs (initial, needOwner, rights).
	epoch      uint64
	needOwner  bool
	initial    bool // the first attach is not a failover
	awaiting   int  // slot killed and not yet dead, -1
	fencePolls int  // looks at the awaited slot's exit flag so far
	det        detection
	attachNS   uint64
	noSpare    bool   // an EvNoSpare was sent for this outage
	lastDeath  uint64 // commit point at the last owner death
	deathRun   int    // owners that died in a row at lastDeath
	corrupt    bool   // indices must be repaired before the next owner
	// The restart policy (Config.RestartLimit): owners that died in a row
	// without a healthy run, when the lane may next be handed over, and
	// whether it was given up.
	streak      int
	attachBlock uint64 // the commit point when the current owner attached
	notBefore   uint64
	failed      bool
	garbageSeen uint64 // the clock's garbage count when last looked at
	costPeak    uint64 // the lane's last owner's block-time peak, carried to its successor
	seenCommit  uint64 // the commit index the monitor last saw, and when it saw it move
	progressNS  uint64
	reinit      bool   // the next owner re-initialises the chain (garbage: the state may be poisoned)
	resumeIn    uint64 // the commit point the current owner resumed from
	rights      []byte // SCM_RIGHTS control message carrying the lane's fd (built by New)
	// What the monitor still has to say about the current owner's attach:
	// that it is attached (for Start), and, for a failover, the event held
	// until its first commit, its death, or firstCommitWait.
	watchAttach bool
	up          bool // reported attached once
	watchCommit bool
	report      monEvent
}

// firstCommitWait bounds how long a failover's report waits for the new
// owner's first commit (a lane nobody feeds commits nothing).
const firstCommitWait = 2 * time.Second

// monEvent is what the monitor tells the control plane.
type monEvent struct {
	kind     uint8 // mReady, mDeath, mAttached, mFailover, mNoSpare, mLaneFailed
	initial  bool
	poisoned bool
	reinit   bool
	lane     int16
	slot     int16 // mReady, mDeath: the worker
	newSlot  int16
	streak   int16  // mLaneFailed: owners that died in a row
	prev     uint32 // mDeath: the state it died in (wSpawning: its handshake failed)
	newPID   int32
	det      detection
	attachNS uint64
	// mFailover: the new owner's first commit (0: it died first, or none
	// came within firstCommitWait) and the push of the block it committed.
	firstCommitNS, firstPushNS uint64
}

const (
	mReady = iota + 1
	mDeath
	mAttached
	mFailover
	mNoSpare
	mLaneFailed
)

// ctlCmd is what the control plane tells the monitor.
type ctlCmd struct {
	kind uint8 // cSpawned, cReaped, cDropTL, cStop, cRefused
	slot int16
}

const (
	cSpawned = iota + 1 // a worker process was started in slot (its fields are set)
	cReaped             // slot's dead process was collected and its fds closed
	cDropTL             // stop reading the timeline; answer on tlDropped
	cStop               // leave run
	cRefused            // a lane's output was refused (RefuseOutput): read the refusal records
)

// Queue sizes. The monitor's events are few per worker life; the control
// plane's commands are at most two outstanding per slot (its reap, then
// its next spawn: a slot is claimed again only after its reap) plus one
// cDropTL, one cStop and one cRefused (RefuseOutput queues one only when
// none is pending), so cmdQueueLen can never fill.
const (
	monQueueLen = 256
	cmdQueueLen = 128
)

var _ [cmdQueueLen - 2*shm.MaxSlots - 3]struct{} // cmdQueueLen holds every command that can be outstanding

// push queues e for the control plane; a full queue drops it and counts.
func (m *monitor) push(e *monEvent) {
	if !m.s.mq.push(e) {
		m.dropped.Add(1)
	}
}

// maxStallRun is how many consecutive late wake-ups may each restart the
// deadlines; a hang is then detected at most this many stalls late.
const maxStallRun = 3

// The monitor's fields are its own (written and read by the monitor
// goroutine only) unless their comment names another writer. The atomics
// are counters it alone adds to, loaded by anyone with no ordering relied
// on.
type monitor struct {
	s *Supervisor
	// tl is the audio clock, or nil (offline, or after the clock was
	// freed). Set by Start before the monitor runs; from then on read and
	// cleared by the monitor alone, which clears it on cDropTL and then
	// signals tlDropped: the clock unmaps only after that signal. (Under
	// Config.manualMonitor no thread is the monitor between the test's
	// polls, and forgetTimeline clears it itself.)
	tl        Timeline
	tlDropped chan struct{} // buffered 1: the monitor never blocks on it
	stopped   bool          // cStop came
	epfd      int           // these four: opened by New, closed by Close after the monitor stopped
	timerfd   int
	ctlfd     int // the command queue's eventfd
	events    [64]unix.EpollEvent
	cmd       ctlCmd
	scratch   [8]byte
	timer     unix.ItimerSpec
	armedNS   uint64
	wakes     atomic.Uint64 // epoll returns, for the hot-path tests
	dropped   atomic.Uint64 // events the control plane's queue had no room for
	hangNS    uint64
	graceNS   uint64        // when the monitor last killed a hung worker
	stallNS   uint64        // when it last woke from a machine stall (0: none counts now)
	stalls    atomic.Uint64 // wake-ups late enough to be the machine's stall, not a worker's hang
	lateRun   int           // consecutive late wake-ups; bounds how long stalls can defer a kill
	statBuf   [512]byte     // one /proc/<pid>/stat read
	statN     int           // its length
	// dead owners whose SIGKILL (gaspers) or classification (word deaths)
	// waits until this poll's hand-overs are sent (afterHandOver); at most
	// one entry per slot, as a slot dies once
	dying  [shm.MaxSlots]dyingRec
	nDying int
	pollFd [1]unix.PollFd // one listener's poll
	// killed owners whose lane moved on their exit flag, before the pidfd
	earlyFences atomic.Uint64

	// attach: the lane's fd goes to the new owner in one sendmsg built
	// here, so that the monitor allocates nothing
	attachMsg  [16]byte // us_attach_msg: lane, pad, epoch (little-endian)
	attachIov  unix.Iovec
	attachHdr  unix.Msghdr
	sendFailed atomic.Uint64 // attaches abandoned: the lane's fd could not be sent

	// death words (deathword.go)
	ring            *uring.Ring // nil: none here; ringWarn says why (openRing, before the monitor runs)
	ringWarn        string
	cqe             uring.CQE
	words           [shm.MaxSlots]wordRec
	wordDeaths      atomic.Uint64 // deaths learnt from a word
	wordUnconfirmed atomic.Uint64 // words marked dead whose exit flag said otherwise
}

// fencePollNS is how often the monitor looks at a killed owner until the
// kernel has taken it out of user space; after fenceFastPolls looks (a task
// stuck in the kernel, say) it looks every fenceSlowPollNS until its pidfd.
const (
	fencePollNS     = 20_000
	fenceFastPolls  = 25
	fenceSlowPollNS = 1_000_000
)

// pfExiting is the kernel's PF_EXITING task flag (include/linux/sched.h),
// set as do_exit begins: from then on the task never returns to user space.
const pfExiting = 0x4

// exited reports whether slot's process can no longer run a single user
// instruction: the kernel has begun its exit, or it is a zombie, or gone.
// This is the fence for a killed owner. Waiting for its pidfd instead would
// also wait for the kernel to unmap and unlock all its memory, hundreds of
// µs that protect nothing: a task in do_exit writes no shared memory (the
// worker is one thread, holds no robust futex in the region and sets no
// clear-child-tid there). Reads /proc/<pid>/stat into a fixed buffer: no
// allocation. The read (do_task_stat) holds a reference to the task's mm
// for its duration: when the dying worker drops its own meanwhile, the
// monitor's read is the one that tears its memory down (traced: 1 read in
// 200-300 word deaths, 70-136 µs for the stock worker's 2.6 MiB). No
// mm-free read tells an exiting task from a live one today.
func (m *monitor) exited(slot int) bool {
	fd := int(m.s.workers[slot].statFD.Load())
	if fd < 0 {
		return false // cannot tell: wait for the pidfd
	}
	n, err := unix.Pread(fd, m.statBuf[:], 0)
	if err != nil {
		m.statN = 0
		return err == unix.ESRCH // reaped
	}
	m.statN = n
	return statExited(m.statBuf[:n])
}

// statExitSignal is the fatal signal in a /proc/<pid>/stat line's exit_code
// field (the 52nd), or 0. The kernel stores exit_code in do_exit before
// exit_mm, so a task whose death word fired already shows it; the field
// reads 0 to a reader not permitted to ptrace the task, and then the death
// is simply not attributed to a signal.
func statExitSignal(b []byte) int {
	i := len(b) - 1
	for i >= 0 && b[i] != ')' {
		i--
	}
	if i < 0 {
		return 0
	}
	field, code, seen := 0, 0, false
	for j := i + 1; j < len(b); j++ {
		c := b[j]
		if c == ' ' || c == '\n' {
			field++
			continue
		}
		if field == 50 && c >= '0' && c <= '9' {
			code = code*10 + int(c-'0')
			seen = true
		}
	}
	if !seen {
		return 0
	}
	return code & 0x7f
}

// statExited reads a /proc/<pid>/stat line: true once the task is exiting
// (PF_EXITING), a zombie or dead, and is the process's only thread. The
// stock worker has one thread, but a user's kernel linked into a worker
// might start others, and a leader in exit says nothing of a sibling still
// running user code: then only the pidfd will do.
func statExited(b []byte) bool {
	// "pid (comm) S ppid pgrp session tty_nr tpgid flags ... num_threads
	// ...": comm may hold anything, so fields count from its last ')';
	// flags is the 7th after it, num_threads the 18th.
	i := len(b) - 1
	for i >= 0 && b[i] != ')' {
		i--
	}
	if i < 0 {
		return false
	}
	var field int
	var flags, threads uint64
	dead := false
	for j := i + 1; j < len(b); j++ {
		c := b[j]
		if c == ' ' {
			field++
			if field > 18 {
				break
			}
			continue
		}
		switch field {
		case 1: // state
			dead = c == 'Z' || c == 'X' || c == 'x'
		case 7, 18: // flags, num_threads
			if c < '0' || c > '9' {
				return false
			}
			if field == 7 {
				flags = flags*10 + uint64(c-'0')
			} else {
				threads = threads*10 + uint64(c-'0')
			}
		}
	}
	return field > 18 && threads <= 1 && (dead || flags&pfExiting != 0)
}

// run is the monitor goroutine's body; the caller locked the thread.
func (m *monitor) run() {
	for !m.stopped {
		m.poll(-1)
	}
}

// poll waits up to msec (-1 = until something happens) and handles what came.
// It is the whole steady-state hot path and allocates nothing.
func (m *monitor) poll(msec int) {
	n, err := unix.EpollWait(m.epfd, m.events[:], msec)
	if err != nil && err != unix.EINTR {
		return
	}
	m.wakes.Add(1)
	now := shm.NowNS()
	// The timer should have woken this FIFO thread at armedNS. Waking far
	// later means the whole machine (or this vCPU) was frozen: no worker
	// could have made progress either, so a pending block is judged from
	// now, not from its push. Without this, every host-level stall longer
	// than the hang timeout kills a healthy owner: the false positive the
	// naive heartbeat suffers from. A machine late on every wake-up would
	// defer a real hang forever, so at most maxStallRun in a row count.
	if m.armedNS != 0 && now > m.armedNS+m.hangNS/2 {
		if m.lateRun < maxStallRun {
			m.stallNS = now
			m.stalls.Add(1)
		} else {
			m.stallNS = 0 // judged from their pushes again
		}
		m.lateRun++
	} else if m.armedNS != 0 && now >= m.armedNS {
		m.lateRun = 0
	}
	m.reapWords(now)
	for i := 0; i < n; i++ {
		ev := &m.events[i]
		switch ev.Fd {
		case tagRing:
			m.reapWords(now)
		case tagDoorbell:
			unix.Read(m.s.doorbell, m.scratch[:])
			m.scanGasps(now)
			m.scanCorrupt(now)
			m.scanSlots(now)
		case tagTimer:
			unix.Read(m.timerfd, m.scratch[:])
		case tagCtl:
			unix.Read(m.ctlfd, m.scratch[:])
			m.commands(now)
		case tagPidfd:
			m.onDeath(int(ev.Pad), now)
		}
	}
	m.checkDeadlines(now)
	handed := m.assign(now)
	// Before the deadlines' look: it may push a failover report, which
	// afterHandOver's classification must reach first.
	m.afterHandOver()
	if handed {
		m.checkDeadlines(now) // arm the new owners' deadlines
	}
}

type dyingRec struct {
	slot int16
	kill bool
	// the lane whose detection says death_word but may be a sandbox kill
	// (classified from the exit code once the lane is handed on), or -1
	classify int16
}

// putOff queues what a dead owner still needs until this poll has handed
// its lane on.
func (m *monitor) putOff(slot int, kill bool, classify int) {
	if m.nDying < len(m.dying) {
		m.dying[m.nDying] = dyingRec{int16(slot), kill, int16(classify)}
		m.nDying++
	} else if kill {
		unix.PidfdSendSignal(int(m.s.workers[slot].pidfd.Load()), unix.SIGKILL, nil, 0)
	}
}

// afterHandOver does what the dead owners of this poll were put off for.
// A gasper has promised to write nothing more and is about to die by its
// own signal: the SIGKILL only makes sure of a forged gasp, and sent before
// the hand-over it cost the new owner 12-15 µs (the signal and its IPI,
// traced). A word death confirmed by the filter is classified.
func (m *monitor) afterHandOver() {
	for _, d := range m.dying[:m.nDying] {
		w := &m.s.workers[d.slot]
		if d.kill {
			unix.PidfdSendSignal(int(w.pidfd.Load()), unix.SIGKILL, nil, 0)
		}
		if d.classify >= 0 {
			m.classify(int(d.slot), int(d.classify))
		}
	}
	m.nDying = 0
}

// classify reads a word death's exit code, after the hand-over, and names
// a seccomp kill (SIGSYS) the sandbox's: do_group_exit stored the code
// before do_exit began, and /proc/<pid>/stat shows it. The read holds the
// dying process's mm meanwhile (see exited), which is why it is not on
// the way to the hand-over.
func (m *monitor) classify(slot, l int) {
	m.exited(slot)
	if statExitSignal(m.statBuf[:m.statN]) == int(unix.SIGSYS) {
		m.toSandbox(slot, l)
	}
}

// toSandbox renames slot's death_word detection on lane l a sandbox kill,
// wherever the detection is by now: still the lane's, or in the failover
// report waiting for the new owner's first commit.
func (m *monitor) toSandbox(slot, l int) {
	lr := &m.s.lanes[l]
	if lr.det.slot == slot && lr.det.path == PathDeathWord {
		lr.det.path = PathSandbox // not handed on yet (no spare)
	}
	if lr.watchCommit && int(lr.report.det.slot) == slot && lr.report.det.path == PathDeathWord {
		lr.report.det.path = PathSandbox
	}
}

// commands handles everything the control plane queued.
func (m *monitor) commands(now uint64) {
	c := &m.cmd
	for m.s.cmdq.pop(c) {
		slot := int(c.slot)
		switch c.kind {
		case cSpawned:
			if _, act, ok := m.step(slot, evSpawned); ok {
				m.act(slot, act, now)
				m.checkReady(slot, now) // it may have said READY before we watched
			}
		case cReaped:
			m.step(slot, evReaped)
		case cDropTL:
			m.tl = nil
			select {
			case m.tlDropped <- struct{}{}:
			default:
			}
		case cStop:
			m.stopped = true
		case cRefused:
			// Cleared before the records are read: a refusal made after
			// this queues its own command.
			m.s.refusePending.Store(false)
			m.scanRefused(now)
		}
	}
}

// act does a transition's bookkeeping that is the same whatever caused it
// (aWatch, aArm, aKill, aReport); aDetect, aOrphan and aFence depend on
// the lane and the path, and their callers do them.
func (m *monitor) act(slot int, act wAction, now uint64) {
	w := &m.s.workers[slot]
	if act&aWatch != 0 {
		w.gaspSeen = false
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: tagPidfd, Pad: int32(slot)}
		if unix.EpollCtl(m.epfd, unix.EPOLL_CTL_ADD, int(w.pidfd.Load()), &ev) != nil {
			// Unwatched, it could never be reported dead: kill it, and
			// let the control plane reap it as if its pidfd had fired.
			unix.PidfdSendSignal(int(w.pidfd.Load()), unix.SIGKILL, nil, 0)
			if prev, _, ok := m.step(slot, evPidfd); ok {
				m.push(&monEvent{kind: mDeath, slot: int16(slot), lane: -1, prev: prev})
			}
			return
		}
	}
	if act&aArm != 0 && m.ring != nil {
		m.armWord(slot, now)
		m.ring.Submit()
	}
	if act&aKill != 0 {
		unix.PidfdSendSignal(int(w.pidfd.Load()), unix.SIGKILL, nil, 0)
	}
}

// scanSlots looks at what workers said through the doorbell besides a
// gasp: READY at the end of a handshake, ATTACHED, a first commit.
func (m *monitor) scanSlots(now uint64) {
	s := m.s
	for i := range s.workers {
		if s.workers[i].state.Load() == wSpawning {
			m.checkReady(i, now)
		}
	}
	for l := 0; l < s.region.Lanes(); l++ {
		m.checkAttach(l, now)
	}
}

// checkReady moves a spawning worker whose slot says READY to the spares.
func (m *monitor) checkReady(slot int, now uint64) {
	if m.s.region.Slot(slot).Status() != shm.StReady {
		return
	}
	if _, act, ok := m.step(slot, evReady); ok {
		m.act(slot, act, now)
		m.push(&monEvent{kind: mReady, slot: int16(slot), lane: -1})
	}
}

// checkAttach reports lane l's new owner attached, and a failover once its
// new owner has committed a block (or died first, or firstCommitWait
// passed). It says when it must look again at the latest (^0: never).
func (m *monitor) checkAttach(l int, now uint64) (next uint64) {
	lr := &m.s.lanes[l]
	o := int(lr.owner.Load())
	if lr.watchAttach && o >= 0 && m.s.region.Slot(o).Status() == shm.StAttached {
		lr.watchAttach, lr.up = false, true
		m.push(&monEvent{kind: mAttached, lane: int16(l), newSlot: int16(o)})
	}
	if !lr.watchCommit {
		return ^uint64(0)
	}
	r := &lr.report
	ss := m.s.region.Slot(int(r.newSlot))
	ns := ss.FirstCommitNS()
	if ns == 0 && o == int(r.newSlot) && now < r.attachNS+uint64(firstCommitWait) {
		return r.attachNS + uint64(firstCommitWait)
	}
	r.firstCommitNS, r.firstPushNS = ns, ss.FirstPushNS()
	lr.watchCommit = false
	m.push(r)
	return ^uint64(0)
}

func (m *monitor) scanGasps(now uint64) {
	s := m.s
	for i := range s.workers {
		w := &s.workers[i]
		if w.gaspSeen {
			continue
		}
		if st := w.state.Load(); st != wOwner && st != wSpare {
			continue
		}
		ok, sig, block, _ := s.region.Slot(i).Gasp()
		if !ok {
			continue
		}
		w.gaspSeen = true
		// It is dying by its own hand; make sure of it (aKill, sent once
		// this poll has handed its lane on: afterHandOver). A worker
		// maps only its own slot, so a gasp can only accuse its writer; a
		// kernel can still forge its own worker's, and the kill bounds
		// what that can do to microseconds (the block it names is checked
		// in gaspBlock).
		_, act, ok := m.step(i, evGasp)
		if !ok {
			continue
		}
		m.putOff(i, act&aKill != 0, -1)
		m.act(i, act&^aKill, now)
		if l := int(w.lane.Load()); l >= 0 && act&aDetect != 0 {
			m.detected(l, i, PathLastGasp, sig, m.gaspBlock(l, block), false, now)
			m.orphan(l, i)
		}
	}
}

// scanCorrupt handles lanes whose owner broke the ring protocol: like a hang,
// the owner is killed and awaited, and its indices are repaired before the
// next owner attaches.
func (m *monitor) scanCorrupt(now uint64) {
	tl := m.tl
	if tl == nil {
		return
	}
	for l := range m.s.lanes[:m.s.region.Lanes()] {
		lr := &m.s.lanes[l]
		// Garbage output (NaN, Inf, past the ceiling): the clock already
		// played the fallback; the owner is killed, and its successor
		// starts the chain afresh, as the committed state that made the
		// garbage may be poisoned (a NaN in a filter's history lasts).
		if seq, block := tl.Garbage(l); seq != lr.garbageSeen {
			lr.garbageSeen = seq
			m.refuse(l, block, now)
		}
		if tl.Corrupt(l) != 1 { // audioclock.LaneCorrupt
			continue
		}
		lr.corrupt = true
		if o := int(lr.owner.Load()); o >= 0 && lr.awaiting < 0 {
			b, pending := m.inHand(l)
			m.kill(l, o, PathCorrupt, b, pending, now)
		}
	}
}

// gaspBlock bounds the block a last gasp names (written by the dying
// worker, untrusted): the block in hand can only be lane l's first
// uncommitted one; anything else counts as "no block in hand", which never
// marks input as poison. Without the clock there is nothing to check it
// against, and it is taken as it is (offline, a poison block costs time,
// never audio).
func (m *monitor) gaspBlock(l int, block uint64) uint64 {
	tl := m.tl
	if tl == nil || block == ^uint64(0) {
		return block
	}
	lane := m.s.region.Lane(l)
	r, w := lane.Committed(), tl.InWrite(l)
	if r >= w || w-r > shm.RingSlots || lane.InBlockNumber(r) != block {
		return ^uint64(0)
	}
	return block
}

func (m *monitor) onDeath(slot int, now uint64) {
	s := m.s
	w := &s.workers[slot]
	fd := int(w.pidfd.Load())
	unix.EpollCtl(m.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	m.flushWord(slot)
	// A death its word or gasp reported first left it wDying: nothing more
	// to count.
	prev, act, ok := m.step(slot, evPidfd)
	if !ok {
		return
	}
	// A killed owner the fence already took its lane from has no lane.
	if l := int(w.lane.Load()); l >= 0 {
		lr := &s.lanes[l]
		if act&aDetect != 0 {
			p := PathPidfd
			if killedBySandbox(fd) {
				p = PathSandbox
			}
			b, pending := m.inHand(l)
			m.detected(l, slot, p, 0, b, pending, now)
		}
		if lr.awaiting == slot {
			lr.awaiting = -1
		}
		if act&aOrphan != 0 {
			m.orphan(l, slot)
		}
	}
	// A word death of this poll still to classify: its stat file is the
	// control plane's to close once it hears of the death, so the exit
	// status is taken here, from the pidfd.
	for j := range m.dying[:m.nDying] {
		if d := &m.dying[j]; int(d.slot) == slot && d.classify >= 0 {
			if killedBySandbox(fd) {
				m.toSandbox(slot, int(d.classify))
			}
			d.classify = -1
		}
	}
	m.push(&monEvent{kind: mDeath, slot: int16(slot), lane: -1, prev: prev})
}

// detected records the first detection of a lane's outage and the block
// it blames; pending: the host had pushed that block and the owner had not
// committed it (a death with nothing pending says nothing of the input).
func (m *monitor) detected(l, slot int, p Path, sig int, block uint64, pending bool, now uint64) {
	lr := &m.s.lanes[l]
	if lr.det.path != PathNone {
		return
	}
	lr.det = detection{path: p, slot: slot, pid: int(m.s.workers[slot].pid.Load()), signal: sig,
		block: block, pending: pending, faultNS: m.s.region.Slot(slot).FaultNS(), detectNS: now}
}

// inHand is the block lane l's owner had in hand, for the paths that do
// not name one (pidfd, deadline, corrupt, exiting, sandbox, death word):
// its first uncommitted block, and whether the host had pushed it.
func (m *monitor) inHand(l int) (block uint64, pending bool) {
	lane := m.s.region.Lane(l)
	r := lane.Committed()
	w := m.pushed(l)
	return lane.InBlockNumber(r), r < w && w-r <= shm.RingSlots
}

// pushed is how many input blocks the host has pushed into lane l: the
// clock's own count when there is one, else the input ring's write index
// (offline rendering, where the host's goroutine is the producer).
func (m *monitor) pushed(l int) uint64 {
	if m.tl != nil {
		return m.tl.InWrite(l)
	}
	w, _ := m.s.region.Lane(l).In().Indices()
	return w
}

// orphan takes a lane from a fenced owner and queues it for a spare.
func (m *monitor) orphan(l, slot int) {
	lr := &m.s.lanes[l]
	if int(lr.owner.Load()) != slot {
		return
	}
	lr.owner.Store(-1)
	m.s.workers[slot].lane.Store(-1)
	lr.watchAttach = false
	if lr.watchCommit {
		m.checkAttach(l, shm.NowNS()) // its owner is gone: the failover's report goes now
	}
	// Its measure of the lane's speed outlives it (bounded: a worker's own
	// word, so at most it lengthens its successor's deadline to the
	// headroom, which bounds every deadline anyway).
	if ss := m.s.region.Slot(slot); ss.FirstCommitNS() != 0 {
		lr.costPeak = max(lr.costPeak-lr.costPeak/8, ss.CostPeakNS())
	}
	lr.needOwner = true
	lr.noSpare = false
	// Poison input: owners that die one after another on the same block
	// stop it being fed to the next one. Every death that happened with a
	// block in hand counts: a crash whose last gasp names it, a hang on it,
	// a denied system call (sandbox), and a death the pidfd, exit flag or
	// death word saw while a pushed block was uncommitted (an _exit, or a
	// crash with its signals blocked). A death with nothing pending says
	// nothing about the input and resets the run; a kill from outside lands
	// on the same block twice only if that block is really what kills.
	d := &lr.det
	attributable := (d.path == PathLastGasp && d.block != ^uint64(0)) || d.path == PathDeadline || d.path == PathSandbox ||
		d.path == PathGarbage ||
		((d.path == PathPidfd || d.path == PathExiting || d.path == PathDeathWord) && d.pending)
	m.restartPolicy(l)
	switch {
	case !attributable:
		lr.deathRun = 0
	case lr.deathRun > 0 && d.block == lr.lastDeath:
		lr.deathRun++
	default:
		lr.deathRun = 1
		lr.lastDeath = d.block
	}
}

// kill SIGKILLs lane l's owner, blaming block (see detected), and awaits
// its fence.
func (m *monitor) kill(l, slot int, p Path, block uint64, pending bool, now uint64) {
	_, act, ok := m.step(slot, evKill)
	if !ok {
		return
	}
	m.detected(l, slot, p, 0, block, pending, now)
	m.s.lanes[l].awaiting = slot
	m.s.lanes[l].fencePolls = 0
	m.act(slot, act, now)
	// A hung worker spins at the workers' priority and can starve the
	// other lanes' workers on its CPU until now: judge their pending blocks
	// from this moment, not from their push, or one hang kills them all.
	if p != PathExiting {
		m.graceNS = now
	}
}

// checkDeadlines finds hung owners and arms the timer for the next deadline.
// A deadline exists only while a block is pending, so an idle worker is never
// a false positive.
func (m *monitor) checkDeadlines(now uint64) {
	s := m.s
	tl := m.tl
	if tl == nil {
		// No clock, no deadlines (offline rendering); a lane backing off
		// still needs its hand-over on time.
		next := ^uint64(0)
		for l := 0; l < s.region.Lanes(); l++ {
			lr := &s.lanes[l]
			if lr.needOwner && !lr.failed && lr.notBefore > now {
				next = min(next, lr.notBefore)
			}
			if lr.watchAttach || lr.watchCommit {
				next = min(next, m.checkAttach(l, now))
			}
		}
		if next != ^uint64(0) {
			m.arm(next)
		}
		return
	}
	next := ^uint64(0)
	for l := 0; l < s.region.Lanes(); l++ {
		lr := &s.lanes[l]
		if lr.watchAttach || lr.watchCommit {
			next = min(next, m.checkAttach(l, now))
		}
		o := int(lr.owner.Load())
		if lr.awaiting >= 0 {
			next = min(next, m.fence(l, now))
			continue
		}
		if o < 0 {
			if lr.needOwner && !lr.failed && lr.notBefore > now {
				next = min(next, lr.notBefore) // a backing-off lane's hand-over
			}
			continue
		}
		lane := s.region.Lane(l)
		r, w := lane.Committed(), tl.InWrite(l)
		ow, _ := lane.Out().Indices()
		or := tl.OutRead(l)
		stale := lane.CommitEpoch() != lr.epoch
		if stale {
			// Not the current owner's commit: it has not taken the lane
			// over yet (it stores its resume indices, then its epoch), or
			// it is a fenced owner's, or a forgery. No progress of the
			// owner's: its block stays pending from its resume point, and
			// its deadline runs.
			r = min(lr.resumeIn, w)
		}
		// The owner's two indices must lie where the protocol allows; a
		// worker that wrote anything else is killed before it is followed.
		if !stale && (r > w || w-r > shm.RingSlots || ow < or || ow-or > shm.RingSlots) {
			lr.corrupt = true
			b, pending := m.inHand(l)
			m.kill(l, o, PathCorrupt, b, pending, now)
			next = min(next, now+fencePollNS) // the fence's first look
			continue
		}
		// The owner's progress: when it last committed, as it says
		// (commit_ns), believed only between the progress already seen and
		// now, and only when its commit point really moved. A hung owner's
		// does not move; a lying one gains at most one deadline per block
		// it really commits.
		if !stale && r != lr.seenCommit {
			_, cns, _ := lane.CommitReport()
			lr.seenCommit, lr.progressNS = r, min(now, max(lr.progressNS, cns))
		}
		var due uint64
		if r < w {
			// A pending block is judged from when its owner could start
			// it: its push, the owner's attach, or its last commit (a slow
			// owner working through a backlog commits block after block; a
			// hung one does not). A machine stall restarts the wait, but
			// never beyond maxStallRun hang timeouts past the block's
			// push, however many stalls come.
			push := tl.PushNS(l, r)
			due = max(push, lr.attachNS, lr.progressNS, m.graceNS, min(m.stallNS, push+maxStallRun*m.hangNS))
			due += m.budget(l, o)
			if now >= due {
				b, pending := m.inHand(l)
				if m.exited(o) {
					// Dying by itself, not hung: a death the pidfd has not
					// reported yet, and already fenced.
					m.kill(l, o, PathExiting, b, pending, now)
					m.fenced(l, o)
					continue
				}
				m.kill(l, o, PathDeadline, b, pending, now)
				next = min(next, now+fencePollNS) // the fence's first look
				continue
			}
		} else {
			b := m.budget(l, o)
			due = tl.NextDeadlineNS() + b
			if floor := now + b; due < floor {
				due = floor
			}
		}
		if due < next {
			next = due
		}
	}
	if next == ^uint64(0) {
		next = now + uint64(100*time.Millisecond)
	}
	m.arm(next)
}

// arm sets the monitor's timer to wake it at next (CLOCK_MONOTONIC ns).
func (m *monitor) arm(next uint64) {
	if next != m.armedNS {
		m.armedNS = next
		m.timer.Value = unix.NsecToTimespec(int64(next))
		unix.TimerfdSettime(m.timerfd, unix.TFD_TIMER_ABSTIME, &m.timer, nil)
	}
}

// fence looks at lane l's killed owner: its lane moves as soon as the
// owner can no longer write, without waiting for the kernel to finish its
// exit. It says when to look again: never (^0) once moved, or when only the
// pidfd can tell.
func (m *monitor) fence(l int, now uint64) (next uint64) {
	lr := &m.s.lanes[l]
	a := lr.awaiting
	switch {
	case m.exited(a):
		m.fenced(l, a)
		return ^uint64(0)
	case m.s.workers[a].statFD.Load() < 0:
		return ^uint64(0)
	}
	lr.fencePolls++
	if lr.fencePolls > fenceFastPolls {
		return now + fenceSlowPollNS
	}
	return now + fencePollNS
}

// fenced hands lane l over from a killed owner that can no longer write.
func (m *monitor) fenced(l, slot int) {
	m.s.lanes[l].awaiting = -1
	m.earlyFences.Add(1)
	m.orphan(l, slot)
}

// assign hands every ownerless lane to a ready spare.
func (m *monitor) assign(now uint64) (attached bool) {
	s := m.s
	for l := 0; l < s.region.Lanes(); l++ {
		lr := &s.lanes[l]
		if !lr.needOwner || lr.awaiting >= 0 || lr.failed || now < lr.notBefore {
			continue
		}
		slot := -1
		for i := range s.workers {
			if s.workers[i].state.Load() == wSpare {
				slot = i
				break
			}
		}
		if slot < 0 {
			if !lr.noSpare && !lr.initial {
				lr.noSpare = true
				m.push(&monEvent{kind: mNoSpare, lane: int16(l), det: lr.det})
			}
			continue
		}
		lane := s.region.Lane(l)
		poisoned := false
		if lr.deathRun >= 2 && lane.Bypass() != lr.lastDeath {
			lane.SetBypass(lr.lastDeath)
			poisoned = true
			s.truth.repro.capture(l, lane, lr.lastDeath, m.pushed(l), lr.reinit) // before the next owner overwrites its state
		}
		// Whatever the old owner left in its indices, the new one starts from
		// indices the host chose and stores them itself; the clock picks them
		// up again whenever anything was (or was flagged) wrong.
		inRead, outWrite := shm.NoResume, shm.NoResume
		tl := m.tl
		if tl != nil {
			var changed bool
			inRead, outWrite, changed = lane.ResumePoints(tl.InWrite(l), tl.OutRead(l))
			if changed || lr.corrupt || tl.Corrupt(l) != 0 {
				tl.MarkReset(l)
			}
			lr.corrupt = false
			lr.resumeIn = inRead
		}
		epoch := lr.epoch + 1
		// The token first: nothing of the new owner's can reach the clock
		// before it knows the epoch to expect.
		if tl != nil {
			tl.SetEpoch(l, epoch, outWrite)
		}
		lane.SetOwner(uint32(slot), epoch)
		lane.RestoreHeader()
		lr.attachNS = shm.NowNS() // the hand-over starts with the send
		if !m.sendLane(slot, l, epoch) {
			// Its control socket failed: this spare cannot be handed a
			// lane. Kill it (its pidfd reaps it) and try the next.
			m.sendFailed.Add(1)
			if _, act, ok := m.step(slot, evAttachFailed); ok {
				m.act(slot, act, now)
			}
			l-- // this lane again, with another spare
			continue
		}
		_, act, _ := m.step(slot, evAttach) // a spare: the table allows it
		lr.epoch = epoch
		s.refused[l].ownerEpoch.Store(epoch)
		lr.needOwner = false
		lr.attachBlock = lane.Committed()
		if inRead != shm.NoResume {
			lr.attachBlock = inRead // where the new owner resumes, whatever the old one left
		}
		lr.seenCommit, lr.progressNS = lr.attachBlock, lr.attachNS
		s.workers[slot].lane.Store(int32(l))
		lr.owner.Store(int32(slot))
		var flags uint32
		if lr.reinit {
			flags = shm.AttachReinit
		}
		// Until the lane was first reported attached (Start waits for
		// it), its owner says when it is; later ones need not.
		lr.watchAttach = !lr.up
		if lr.watchAttach {
			flags |= shm.AttachNotify
		}
		s.region.Slot(slot).Command(shm.CmdAttach, uint32(l), lr.epoch, inRead, outWrite, flags)
		m.act(slot, act, now) // its death word, armed when it became ready normally: then a no-op
		if !lr.initial {
			// Reported once the new owner has committed (checkAttach).
			lr.report = monEvent{kind: mFailover, poisoned: poisoned, reinit: lr.reinit,
				lane: int16(l), slot: int16(lr.det.slot), newSlot: int16(slot), newPID: s.workers[slot].pid.Load(),
				det: lr.det, attachNS: lr.attachNS}
			lr.watchCommit = true
		}
		lr.initial = false
		lr.reinit = false
		lr.det = detection{}
		attached = true
	}
	return attached
}

// sendLane sends lane l's fd, with the lane and epoch it is for, on slot's
// control socket: the worker receives it when it sees the ATTACH that
// follows. One sendmsg from buffers built beforehand; it never blocks (a
// full socket is a worker that did not read, and then fails the attach).
func (m *monitor) sendLane(slot, l int, epoch uint64) bool {
	fd := int(m.s.workers[slot].ctl.Load())
	rights := m.s.lanes[l].rights
	if fd < 0 || len(rights) == 0 {
		return false
	}
	b := &m.attachMsg
	for i := 0; i < 4; i++ {
		b[i] = byte(uint32(l) >> (8 * i))
		b[4+i] = 0
	}
	for i := 0; i < 8; i++ {
		b[8+i] = byte(epoch >> (8 * i))
	}
	m.attachIov.Base = &b[0]
	m.attachIov.SetLen(len(b))
	h := &m.attachHdr
	h.Iov = &m.attachIov
	h.SetIovlen(1)
	h.Control = &rights[0]
	h.SetControllen(len(rights))
	n, _, errno := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(h)), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
	return errno == 0 && int(n) == len(b)
}
