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
// worker's pidfd, the doorbell that dying workers (and the clock, on a
// corrupted ring) ring, a timerfd armed at the next block deadline, a
// control eventfd, and an io_uring of futex waits on the workers' death
// words (deathword.go). It decides failovers and never forks, execs, allocates or
// takes a lock that non-real-time code holds: what it learns goes to the
// control plane through an SPSC queue of fixed records.

// epoll tags, in EpollEvent.Fd; the slot rides in Pad.
const (
	tagDoorbell = 1
	tagTimer    = 2
	tagCtl      = 3
	tagPidfd    = 4
	tagRing     = 5 // the death-word io_uring: completions are queued
)

// Host-side worker states; transitions by CAS. The control plane moves
// free→spawning→spare and dead→free; the monitor does everything else.
const (
	wFree uint32 = iota
	wSpawning
	wSpare
	wOwner
	wKilled // hung or corrupt: SIGKILL sent, pidfd awaited before its lane moves
	wDying  // rang its last gasp: fenced, its lane may move at once
	wDead   // pidfd fired; the control plane reaps it
	wFailed // died during its handshake and was reaped; its spawner frees the slot
)

type workerRec struct {
	state atomic.Uint32
	pid   atomic.Int32
	pidfd atomic.Int32
	// /proc/<pid>/stat, opened at spawn and closed at reap: the monitor's
	// fence reads the process's exit flag from it without opening anything.
	statFD atomic.Int32
	// The host's end of the worker's control socket: the monitor sends the
	// lane's fd on it at attach. Opened at spawn, closed at reap.
	ctl  atomic.Int32
	lane atomic.Int32 // lane owned, -1 for none (monitor writes)
	gen  uint32       // control plane
	// monitor only
	gaspSeen    bool
	handshaking atomic.Bool  // between fork and READY: a death fails the spawn
	exitStatus  atomic.Int32 // wait status summary of the last reaped process
	// control plane only
	spawnNS uint64
	tail    *outputTail
	reaped  chan struct{} // closed by reap when a handshaking worker died
}

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
	owner atomic.Int32 // slot, -1 while none (monitor writes)
	// monitor only
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
}

// monEvent is what the monitor tells the control plane.
type monEvent struct {
	kind     uint8 // mDeath, mFailover, mNoSpare
	initial  bool
	poisoned bool
	reinit   bool
	lane     int16
	slot     int16
	newSlot  int16
	streak   int16 // mLaneFailed: owners that died in a row
	det      detection
	attachNS uint64
}

const (
	mDeath = iota + 1
	mFailover
	mNoSpare
	mLaneFailed
)

const monQueueLen = 256

// monQueue is the SPSC queue monitor → control plane: fixed records, two
// atomic indices, an eventfd to wake the reader.
type monQueue struct {
	buf     [monQueueLen]monEvent
	head    atomic.Uint64 // written by the control plane
	tail    atomic.Uint64 // written by the monitor
	dropped atomic.Uint64
	efd     int
	one     [8]byte
}

func (q *monQueue) push(e *monEvent) {
	t := q.tail.Load()
	if t-q.head.Load() >= monQueueLen {
		q.dropped.Add(1)
		return
	}
	q.buf[t%monQueueLen] = *e
	q.tail.Store(t + 1)
	unix.Write(q.efd, q.one[:])
}

func (q *monQueue) pop(e *monEvent) bool {
	h := q.head.Load()
	if h == q.tail.Load() {
		return false
	}
	*e = q.buf[h%monQueueLen]
	q.head.Store(h + 1)
	return true
}

// maxStallRun is how many consecutive late wake-ups may each restart the
// deadlines; a hang is then detected at most this many stalls late.
const maxStallRun = 3

type monitor struct {
	s *Supervisor
	// tl is the audio clock, or nil (offline, or after the clock was
	// freed). Set by Start before the monitor runs; from then on read and
	// cleared by the monitor alone, which clears it when dropTL asks and
	// then signals tlDropped: the clock unmaps only after that signal.
	tl        Timeline
	dropTL    atomic.Bool
	tlDropped chan struct{} // buffered 1: the monitor never blocks on it
	epfd      int
	timerfd   int
	ctlfd     int
	events    [64]unix.EpollEvent
	scratch   [8]byte
	timer     unix.ItimerSpec
	armedNS   uint64
	stop      atomic.Bool
	wakes     atomic.Uint64 // epoll returns, for the hot-path tests
	hangNS    uint64
	graceNS   uint64        // when the monitor last killed a hung worker
	stallNS   uint64        // when it last woke from a machine stall (0: none counts now)
	stalls    atomic.Uint64 // wake-ups late enough to be the machine's stall, not a worker's hang
	lateRun   int           // consecutive late wake-ups; bounds how long stalls can defer a kill
	statBuf   [512]byte     // one /proc/<pid>/stat read
	statN     int           // its length
	// killed owners whose lane moved on their exit flag, before the pidfd
	earlyFences atomic.Uint64

	// attach: the lane's fd goes to the new owner in one sendmsg built
	// here, so that the monitor allocates nothing
	attachMsg  [16]byte // us_attach_msg: lane, pad, epoch (little-endian)
	attachIov  unix.Iovec
	attachHdr  unix.Msghdr
	sendFailed atomic.Uint64 // attaches abandoned: the lane's fd could not be sent

	// death words (deathword.go)
	ring            *uring.Ring // nil: none here; ringWarn says why
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
	for !m.stop.Load() {
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
	if m.dropTL.Load() {
		m.tl = nil
		m.dropTL.Store(false)
		select {
		case m.tlDropped <- struct{}{}:
		default:
		}
	}
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
		case tagTimer:
			unix.Read(m.timerfd, m.scratch[:])
		case tagCtl:
			unix.Read(m.ctlfd, m.scratch[:])
			m.armWords(now) // a spare may have become ready
		case tagPidfd:
			m.onDeath(int(ev.Pad), now)
		}
	}
	m.checkDeadlines(now)
	if m.assign(now) {
		m.checkDeadlines(now) // arm the new owners' deadlines
	}
}

func (m *monitor) scanGasps(now uint64) {
	s := m.s
	for i := range s.workers {
		w := &s.workers[i]
		st := w.state.Load()
		if w.gaspSeen || (st != wOwner && st != wSpare) {
			continue
		}
		ok, sig, block, _ := s.region.Slot(i).Gasp()
		if !ok {
			continue
		}
		w.gaspSeen = true
		if !w.state.CompareAndSwap(st, wDying) {
			continue
		}
		// It is dying by its own hand; make sure of it. A worker maps only
		// its own slot, so a gasp can only accuse its writer; a kernel can
		// still forge its own worker's, and the kill bounds what that can
		// do to microseconds (the block it names is checked in gaspBlock).
		unix.PidfdSendSignal(int(w.pidfd.Load()), unix.SIGKILL, nil, 0)
		if st == wOwner {
			l := int(w.lane.Load())
			m.detected(l, i, PathLastGasp, sig, m.gaspBlock(l, block), now)
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
			if o := int(lr.owner.Load()); o >= 0 && lr.awaiting < 0 {
				lr.reinit = true
				m.kill(l, o, PathGarbage, block, now)
			}
		}
		if tl.Corrupt(l) != 1 { // audioclock.LaneCorrupt
			continue
		}
		lr.corrupt = true
		if o := int(lr.owner.Load()); o >= 0 && lr.awaiting < 0 {
			m.kill(l, o, PathCorrupt, 0, now)
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
	// A death its word reported first left it wDying: nothing more to count.
	prev := w.state.Swap(wDead)
	// A killed owner the fence already took its lane from has no lane.
	if l := int(w.lane.Load()); l >= 0 && (prev == wOwner || prev == wKilled) {
		lr := &s.lanes[l]
		if prev == wOwner {
			p := PathPidfd
			if killedBySandbox(fd) {
				p = PathSandbox
			}
			m.detected(l, slot, p, 0, s.region.Lane(l).Committed(), now)
		}
		if lr.awaiting == slot {
			lr.awaiting = -1
		}
		m.orphan(l, slot)
	}
	s.mq.push(&monEvent{kind: mDeath, slot: int16(slot), lane: -1})
}

// detected records the first detection of a lane's outage.
func (m *monitor) detected(l, slot int, p Path, sig int, block uint64, now uint64) {
	lr := &m.s.lanes[l]
	if lr.det.path != PathNone {
		return
	}
	ss := m.s.region.Slot(slot)
	lr.det = detection{path: p, slot: slot, pid: int(m.s.workers[slot].pid.Load()), signal: sig,
		block: block, faultNS: ss.FaultNS(), detectNS: now}
	if p == PathPidfd || p == PathDeadline || p == PathCorrupt || p == PathExiting || p == PathSandbox || p == PathDeathWord {
		// The block in hand is the first uncommitted one, if the host had
		// pushed it: a death with no block pending says nothing of the input.
		lane := m.s.region.Lane(l)
		r := lane.Committed()
		lr.det.block = lane.InBlockNumber(r)
		w := m.pushed(l)
		lr.det.pending = r < w && w-r <= shm.RingSlots
	}
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

// kill SIGKILLs lane l's owner and awaits its fence. block is the block to
// blame where the path names one (garbage); the paths that blame the first
// uncommitted block have detected find it.
func (m *monitor) kill(l, slot int, p Path, block uint64, now uint64) {
	w := &m.s.workers[slot]
	if !w.state.CompareAndSwap(wOwner, wKilled) {
		return
	}
	m.detected(l, slot, p, 0, block, now)
	m.s.lanes[l].awaiting = slot
	m.s.lanes[l].fencePolls = 0
	unix.PidfdSendSignal(int(w.pidfd.Load()), unix.SIGKILL, nil, 0)
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
			if lr := &s.lanes[l]; lr.needOwner && !lr.failed && lr.notBefore > now {
				next = min(next, lr.notBefore)
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
			m.kill(l, o, PathCorrupt, 0, now)
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
				if m.exited(o) {
					// Dying by itself, not hung: a death the pidfd has not
					// reported yet, and already fenced.
					m.kill(l, o, PathExiting, 0, now)
					m.fenced(l, o)
					continue
				}
				m.kill(l, o, PathDeadline, 0, now)
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
			if s.workers[i].state.CompareAndSwap(wSpare, wOwner) {
				slot = i
				break
			}
		}
		if slot < 0 {
			if !lr.noSpare && !lr.initial {
				lr.noSpare = true
				s.mq.push(&monEvent{kind: mNoSpare, lane: int16(l), det: lr.det})
			}
			continue
		}
		lane := s.region.Lane(l)
		poisoned := false
		if lr.deathRun >= 2 && lane.Bypass() != lr.lastDeath {
			lane.SetBypass(lr.lastDeath)
			poisoned = true
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
			s.workers[slot].state.Store(wKilled)
			unix.PidfdSendSignal(int(s.workers[slot].pidfd.Load()), unix.SIGKILL, nil, 0)
			l-- // this lane again, with another spare
			continue
		}
		lr.epoch = epoch
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
		s.region.Slot(slot).Command(shm.CmdAttach, uint32(l), lr.epoch, inRead, outWrite, flags)
		if m.ring != nil { // armed when it became ready, normally: then a no-op
			m.armWord(slot, now)
			m.ring.Submit()
		}
		s.mq.push(&monEvent{kind: mFailover, initial: lr.initial, poisoned: poisoned, reinit: lr.reinit,
			lane: int16(l), slot: int16(lr.det.slot), newSlot: int16(slot), det: lr.det, attachNS: lr.attachNS})
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
