// Package supervisor runs C DSP workers over lanes of a shared region and
// keeps every lane running through their crashes and hangs: it spawns
// workers, keeps warm spares, detects a failure by the fastest path (last
// gasp, death word, pidfd, deadline), hands the lane to a spare that resumes from the
// last committed state, and starts a new spare off the real-time path.
package supervisor

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/rt"
	"github.com/understudy-rt/understudy/runtime/shm"
)

// Timeline is what the monitor needs from the audio clock to judge
// deadlines and repair corrupted lanes; *audioclock.Clock implements it.
// The monitor reads it without a lock from its real-time thread, so a
// timeline over memory that can be unmapped must also implement
// FreeNotifier, as *audioclock.Clock does.
type Timeline interface {
	InWrite(lane int) uint64
	PushNS(lane int, idx uint64) uint64
	NextDeadlineNS() uint64
	OutRead(lane int) uint64
	Corrupt(lane int) uint32
	MarkReset(lane int)
	// Garbage is how many output blocks the clock refused as garbage
	// (NaN, Inf, past the ceiling) and the last one's number.
	Garbage(lane int) (seq, block uint64)
	// HeadroomNS is how long a block may take from its push before its
	// output is late; 0 if unknown.
	HeadroomNS() uint64
	// LateMaxNS is the worst wake-up lateness measured so far.
	LateMaxNS() uint64
	// SetEpoch hands the clock a lane's fencing token before its new owner
	// is told to attach: from output index from on, only blocks of epoch
	// count.
	SetEpoch(lane int, epoch, from uint64)
}

// A FreeNotifier is a Timeline whose memory can go away while the
// supervisor runs. Start registers with it; when it is freed it calls stop,
// which returns only once the monitor has let go of it.
type FreeNotifier interface {
	OnFree(stop func()) (remove func(), err error)
}

// ErrClosed is returned by calls on a supervisor that Close has begun.
var ErrClosed = errors.New("supervisor: closed")

// Config is a supervisor's set-up.
type Config struct {
	Worker       string           // path to understudy-worker
	Lanes        []shm.LaneConfig // one per lane, validated by the caller
	Spares       int              // warm spares kept ready beyond one worker per lane
	HangTimeout  time.Duration    // a pending block older than this means the owner hung
	Handshake    time.Duration    // how long a new worker may take to become ready (default 5 s)
	MonitorPrio  int              // SCHED_FIFO priority of the monitor thread; 0 = none
	WorkerPrio   int              // SCHED_FIFO priority the host gives each worker; 0 = none
	WorkerCPU    int              // the host pins workers to this CPU; -1 = any
	SpinMicros   int              // how long an idle worker spins before sleeping on its futex (0: 20 µs, <0: none)
	RespawnDelay time.Duration    // wait this long before replacing a spare that was used (crash-loop backoff)
	// RestartLimit is how many owners of one lane may die in a row, none
	// committing a healthy run of blocks, before the lane is given up and
	// plays its fallback for good (EvLaneFailed); from the third death in
	// a row each hand-over waits twice as long as the last (1 ms up to
	// 500 ms). 0 means the default (12); negative turns the policy off,
	// for tests that kill owners back to back on purpose.
	RestartLimit int
	// DeepIdle lets idle CPUs enter deep idle states while the supervisor
	// runs real-time (MonitorPrio > 0). By default it holds the CPU wake-up
	// latency PM QoS request at 0 µs (rt.HoldWakeLatency) from Start to
	// Close: on a virtual machine a halted vCPU can take milliseconds to
	// wake, and every such wake-up is a late worker, a false hang and a
	// needless failover. Set it to save power where wake-ups are cheap.
	DeepIdle bool
	// Workers drop to this uid and gid before running any kernel code
	// (docs/design.md §3). 0: NobodyID when the host is root, and no
	// change otherwise (a non-root host cannot give one); -1: no change.
	WorkerUID, WorkerGID int
	// Unsandboxed runs workers with the host's privileges and no seccomp
	// filter, for debugging a kernel; SandboxWarning says so.
	Unsandboxed bool
	// ReproDir is where a poisoned block's repro file goes (Event.Repro);
	// "" means the system's temporary directory.
	ReproDir string

	manualMonitor bool // tests: no monitor goroutine; the caller drives poll
	noDeathWord   bool // tests and benchmarks: the pidfd path alone
}

// Supervisor owns a region, its workers and its monitor.
type Supervisor struct {
	cfg       Config
	region    *shm.Region
	doorbell  int
	workers   [shm.MaxSlots]workerRec
	lanes     [shm.MaxLanes]laneRec
	deadlines [shm.MaxLanes]laneDeadline
	mq        monQueue
	mon       monitor
	sp        *spawner

	evFile      *os.File // the monitor's event eventfd, read through Go's poller
	wakeHold    *rt.WakeLatencyHold
	wakeHoldErr error // why the hold could not be taken (see Config.DeepIdle)
	monDone     chan struct{}
	ctlDone     chan struct{}
	closing     chan struct{} // closed when Close begins: spawns stop waiting
	spawns      sync.WaitGroup
	untimeline  func() // takes back the registration with the timeline
	events      chan Event
	mu          sync.Mutex // guards what follows: control plane state
	pending     []monEvent // failovers waiting for the new owner's first commit
	closed      bool
	started     bool
	failedLanes map[int16]error // lanes the restart policy gave up, and why
	workerPrio  atomic.Int32    // the workers' SCHED_FIFO priority (Config.WorkerPrio, SetWorkerPriority)
	tlForgotten bool            // the timeline was freed before the monitor started
	fdsClosed   bool            // Close closed the fds: nothing may write to their numbers
	dropped     int
	rtWarn      error
	workerRT    workerRT // why a worker could not be given its priority or CPU
	truth       kernelTruth
}

// New validates cfg and creates the region; Start runs it. Workers are not
// started until Start, so the caller can build its clock over the lanes first.
func New(cfg Config) (*Supervisor, error) {
	if len(cfg.Lanes) < 1 || len(cfg.Lanes) > shm.MaxLanes {
		return nil, fmt.Errorf("supervisor: %d lanes; a region holds 1 to %d", len(cfg.Lanes), shm.MaxLanes)
	}
	if cfg.Spares < 0 || len(cfg.Lanes)+cfg.Spares > shm.MaxSlots/2 {
		return nil, fmt.Errorf("supervisor: %d lanes + %d spares; at most %d workers at once", len(cfg.Lanes), cfg.Spares, shm.MaxSlots/2)
	}
	if err := checkWorkerBinary(cfg.Worker); err != nil {
		return nil, err
	}
	if cfg.Handshake <= 0 {
		cfg.Handshake = 5 * time.Second
	}
	if cfg.RestartLimit == 0 {
		cfg.RestartLimit = defaultRestarts
	}
	if cfg.HangTimeout <= 0 {
		cfg.HangTimeout = 2 * time.Millisecond
	}
	switch {
	case cfg.SpinMicros == 0:
		cfg.SpinMicros = 20
	case cfg.SpinMicros < 0:
		cfg.SpinMicros = 0 // straight to the futex: for measuring that path
	}
	region, err := shm.Create(cfg.Lanes)
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	s := &Supervisor{cfg: cfg, region: region, events: make(chan Event, 4096), closing: make(chan struct{}), untimeline: func() {},
		failedLanes: map[int16]error{}}
	s.workerPrio.Store(int32(cfg.WorkerPrio))
	for i := range s.workers {
		s.workers[i].lane.Store(-1)
		s.workers[i].pidfd.Store(-1)
		s.workers[i].statFD.Store(-1)
		s.workers[i].ctl.Store(-1)
	}
	for i := range s.lanes {
		s.lanes[i].owner.Store(-1)
		s.lanes[i].awaiting = -1
	}
	for i := 0; i < region.Lanes(); i++ {
		// The lane's fd rides in this control message at every attach:
		// built once, so the monitor sends it without allocating.
		s.lanes[i].rights = unix.UnixRights(region.Lane(i).FD())
	}
	s.mon = monitor{s: s, hangNS: uint64(s.cfg.HangTimeout), tlDropped: make(chan struct{}, 1)}
	if err := s.openFDs(); err != nil {
		s.closeFDs()
		region.Close()
		return nil, err
	}
	return s, nil
}

// Doorbell is the eventfd dying workers ring; the clock rings it too when a
// worker corrupts a ring.
func (s *Supervisor) Doorbell() int { return s.doorbell }

// Region is the shared region, for building a clock over its lanes.
func (s *Supervisor) Region() *shm.Region { return s.region }

// Events delivers what happens, in order, and is closed by Close. It is
// buffered; when nobody reads, events beyond the buffer are dropped.
func (s *Supervisor) Events() <-chan Event { return s.events }

// RTWarning is non-nil when the monitor runs without SCHED_FIFO.
func (s *Supervisor) RTWarning() error { return s.rtWarn }

// Start spawns one worker per lane plus the spares, waits for every handshake,
// starts the monitor and attaches each lane to a worker. tl may be nil
// (offline rendering: no deadlines). On error nothing is left running.
func (s *Supervisor) Start(tl Timeline) (err error) {
	untimeline := func() {}
	if fn, ok := tl.(FreeNotifier); ok {
		if untimeline, err = fn.OnFree(s.forgetTimeline); err != nil {
			return fmt.Errorf("supervisor: timeline: %w", err)
		}
	}
	// One locked section: Close and forgetTimeline see either none of what
	// follows or all of it.
	s.mu.Lock()
	if s.closed || s.started {
		s.mu.Unlock()
		untimeline()
		return errors.New("supervisor: Start after Close, or twice")
	}
	s.started = true
	s.untimeline = untimeline
	if !s.tlForgotten { // freed already, between OnFree and here
		s.mon.tl = tl // before the monitor starts: from then on only it touches tl
	}
	s.sp = startSpawner()
	if s.cfg.MonitorPrio > 0 && !s.cfg.DeepIdle {
		s.wakeHold, s.wakeHoldErr = rt.HoldWakeLatency(0)
	}
	for l := range s.cfg.Lanes {
		// Set before the monitor starts: from then on only it touches these.
		s.lanes[l].initial = true
		s.lanes[l].needOwner = true
	}
	s.evFile = os.NewFile(uintptr(s.mq.efd), "understudy-events")
	s.monDone = make(chan struct{})
	s.ctlDone = make(chan struct{})
	n := len(s.cfg.Lanes) + s.cfg.Spares
	s.spawns.Add(n) // under the lock: a Close from now on waits for them
	s.mu.Unlock()
	if s.cfg.manualMonitor {
		close(s.monDone)
	} else {
		monReady := make(chan error, 1)
		go s.runMonitor(monReady)
		s.rtWarn = <-monReady
	}
	go s.controlPlane()
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		slot := s.claimSlot()
		go func() {
			defer s.spawns.Done()
			errs <- s.spawnSpare(slot)
		}()
	}
	for i := 0; i < n; i++ {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if err != nil {
		return err
	}
	s.wakeMonitor()
	deadline := time.Now().Add(s.cfg.Handshake)
	for l := range s.cfg.Lanes {
		for {
			o := int(s.lanes[l].owner.Load())
			if o >= 0 && s.region.Slot(o).Status() == shm.StAttached {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("supervisor: lane %d has no attached worker after %v", l, s.cfg.Handshake)
			}
			select {
			case <-s.closing:
				return ErrClosed
			default:
			}
			if s.cfg.manualMonitor {
				s.mon.poll(0)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	return nil
}

func (s *Supervisor) openFDs() error {
	var err error
	s.doorbell, s.mon.epfd, s.mon.timerfd, s.mon.ctlfd, s.mq.efd = -1, -1, -1, -1, -1
	if s.doorbell, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fmt.Errorf("supervisor: doorbell eventfd: %w", err)
	}
	if s.mon.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fmt.Errorf("supervisor: epoll: %w", err)
	}
	if s.mon.timerfd, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK); err != nil {
		return fmt.Errorf("supervisor: timerfd: %w", err)
	}
	if s.mon.ctlfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fmt.Errorf("supervisor: control eventfd: %w", err)
	}
	if s.mq.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fmt.Errorf("supervisor: event eventfd: %w", err)
	}
	s.mq.one[0] = 1
	for _, f := range []struct{ fd, tag int }{{s.doorbell, tagDoorbell}, {s.mon.timerfd, tagTimer}, {s.mon.ctlfd, tagCtl}} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(f.tag)}
		if err := unix.EpollCtl(s.mon.epfd, unix.EPOLL_CTL_ADD, f.fd, &ev); err != nil {
			return fmt.Errorf("supervisor: epoll_ctl: %w", err)
		}
	}
	s.mon.openRing(s.cfg.noDeathWord) // optional: DeathWordWarning says why not
	return nil
}

func (s *Supervisor) closeFDs() {
	s.mon.closeRing()
	for _, fd := range []*int{&s.doorbell, &s.mon.epfd, &s.mon.timerfd, &s.mon.ctlfd, &s.mq.efd} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

func (s *Supervisor) runMonitor(ready chan<- error) {
	runtime.LockOSThread() // never unlocked: Go retires the thread with its changed priority
	defer close(s.monDone)
	var warn error
	if s.cfg.MonitorPrio > 0 {
		if err := rt.SetThreadFIFO(s.cfg.MonitorPrio); err != nil {
			warn = err
		}
	}
	ready <- warn
	s.mon.run()
}

// forgetTimeline makes the monitor stop reading the timeline, and returns
// once it has: the timeline's owner is about to unmap it. The monitor drops
// it at its next wake-up, which the control eventfd causes at once.
func (s *Supervisor) forgetTimeline() {
	s.mu.Lock()
	if s.monDone == nil || s.cfg.manualMonitor {
		s.mon.tl = nil // no monitor thread reads it (tests drive poll themselves)
		s.tlForgotten = true
		s.mu.Unlock()
		return
	}
	s.mon.dropTL.Store(true)
	if !s.fdsClosed { // Close may have closed ctlfd: its number could be reused
		s.wakeMonitor()
	}
	s.mu.Unlock()
	select {
	case <-s.mon.tlDropped:
	case <-s.monDone: // it has stopped, and with it every read
	}
}

func (s *Supervisor) wakeMonitor() {
	var one = [8]byte{1}
	unix.Write(s.mon.ctlfd, one[:])
}

// claimSlot reserves a free slot for a new worker, or returns -1.
func (s *Supervisor) claimSlot() int {
	for i := range s.workers {
		if s.workers[i].state.CompareAndSwap(wFree, wSpawning) {
			return i
		}
	}
	return -1
}

// spawnSpare starts one worker in a claimed slot and waits for its handshake.
func (s *Supervisor) spawnSpare(slot int) error {
	if slot < 0 {
		return errors.New("supervisor: no free worker slot")
	}
	w := &s.workers[slot]
	ss := s.region.Slot(slot)
	w.gen = s.region.PrepareSlot(slot)
	w.gaspSeen = false
	// The drain goroutine below keeps this process's tail: the slot's
	// next worker gets a new one while this one's output may still arrive.
	tail := &outputTail{}
	w.tail = tail
	// Closed by reap when this process dies during its handshake; set
	// before the process exists, and read by reap only after its death.
	reaped := make(chan struct{})
	w.reaped = reaped
	pr, pw, err := os.Pipe()
	if err != nil {
		w.state.Store(wFree)
		return fmt.Errorf("supervisor: pipe: %w", err)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		pr.Close()
		pw.Close()
		w.state.Store(wFree)
		return fmt.Errorf("supervisor: %w", err)
	}
	// The worker's lane fd arrives on this socket at its attach; the host
	// keeps its end, the worker gets the other as fd 5.
	ctl, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		pr.Close()
		pw.Close()
		null.Close()
		w.state.Store(wFree)
		return fmt.Errorf("supervisor: socketpair: %w", err)
	}
	argv := workerArgs(&s.cfg, slot, w.gen)
	// Its slot's memfd, and no other: a worker maps its lane only once it
	// is handed one.
	files := []uintptr{null.Fd(), pw.Fd(), pw.Fd(), uintptr(s.region.SlotFD(slot)), uintptr(s.doorbell), uintptr(ctl[1])}
	w.spawnNS = shm.NowNS()
	w.handshaking.Store(true)
	defer w.handshaking.Store(false)
	pid, pidfd, err := s.sp.spawn(s.cfg.Worker, argv, files)
	pw.Close()
	null.Close()
	unix.Close(ctl[1])
	if err != nil {
		unix.Close(ctl[0])
		pr.Close()
		w.state.Store(wFree)
		return &SpawnError{Worker: s.cfg.Worker, Slot: slot, Reason: "could not start", Err: err, ExitCode: -1}
	}
	w.ctl.Store(int32(ctl[0]))
	s.placeWorker(pid)
	drained := make(chan struct{}) // closed at the output's end: the worker's last words are in
	go tail.drain(pr, drained)
	w.pid.Store(int32(pid))
	s.truth.outputs.track(pid, tail, drained)
	// The pid cannot be reused before we reap it through pidfd, so this is
	// the worker's own stat file. Without it the fence waits for the pidfd.
	statFD, err := unix.Open(fmt.Sprintf("/proc/%d/stat", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		statFD = -1
	}
	w.statFD.Store(int32(statFD))
	w.pidfd.Store(int32(pidfd))
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: tagPidfd, Pad: int32(slot)}
	if err := unix.EpollCtl(s.mon.epfd, unix.EPOLL_CTL_ADD, pidfd, &ev); err != nil {
		// The monitor will never see this one die: reap it here.
		unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		w.release()
		w.state.Store(wFree)
		return fmt.Errorf("supervisor: epoll_ctl pidfd: %w", err)
	}
	deadline := time.Now().Add(s.cfg.Handshake)
	for {
		st := ss.Status()
		if st == shm.StReady && w.state.CompareAndSwap(wSpawning, wSpare) {
			s.wakeMonitor()
			s.emit(Event{Kind: EvSpareReady, Lane: -1, Slot: slot, PID: pid, SpawnNS: w.spawnNS, ReadyNS: ss.ReadyNS()})
			return nil
		}
		if ws := w.state.Load(); ws == wDead || ws == wFailed || st == shm.StFailed {
			// Wait for the reap (it frees nothing while we handshake), so the
			// exit status is in, and for the end of its output, so its last
			// words are; each wait bounded in case a child holds the pipe.
			select {
			case <-reaped:
			case <-time.After(time.Second):
			}
			select {
			case <-drained:
			case <-time.After(100 * time.Millisecond):
			}
			reason, code := "failed its handshake", -1
			if c := w.exitStatus.Load(); c >= 0 {
				reason, code = fmt.Sprintf("failed its handshake: exited with status %d", c), int(c)
			} else {
				reason = fmt.Sprintf("failed its handshake: killed by signal %d", -c)
			}
			w.state.Store(wFree)
			return &SpawnError{Worker: s.cfg.Worker, Slot: slot, Reason: reason, Output: tail.String(), ExitCode: code}
		}
		if time.Now().After(deadline) {
			unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
			return &SpawnError{Worker: s.cfg.Worker, Slot: slot,
				Reason: fmt.Sprintf("not ready after %v", s.cfg.Handshake), Output: tail.String(), ExitCode: -1}
		}
		select {
		case <-s.closing:
			// Close kills and reaps what is left; this one becomes a spare
			// nobody will use, which Close treats like any other.
			return ErrClosed
		default:
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// controlPlane turns monitor records into events, reaps the dead and keeps
// the spare pool full. It is ordinary Go: it may allocate, lock and block.
func (s *Supervisor) controlPlane() {
	defer close(s.ctlDone)
	f := s.evFile
	buf := make([]byte, 8)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	reads := make(chan error)
	go func() {
		for {
			_, err := f.Read(buf)
			if err != nil {
				close(reads)
				return
			}
			reads <- nil
		}
	}()
	var e monEvent
	for {
		select {
		case _, ok := <-reads:
			if !ok {
				return
			}
		case <-tick.C:
		}
		for s.mq.pop(&e) {
			s.handle(e)
		}
		s.finishFailovers()
	}
}

func (s *Supervisor) handle(e monEvent) {
	switch e.kind {
	case mDeath:
		s.reap(int(e.slot))
	case mFailover:
		if !e.initial {
			s.mu.Lock()
			s.pending = append(s.pending, e)
			s.mu.Unlock()
		}
	case mNoSpare:
		s.emit(Event{Kind: EvNoSpare, Lane: int(e.lane), Slot: e.det.slot, PID: e.det.pid, Path: e.det.path,
			Signal: e.det.signal, Block: e.det.block, FaultNS: e.det.faultNS, DetectNS: e.det.detectNS})
	case mLaneFailed:
		err := s.laneFailed(e)
		s.mu.Lock()
		s.failedLanes[e.lane] = err
		s.mu.Unlock()
		s.emit(Event{Kind: EvLaneFailed, Lane: int(e.lane), Slot: e.det.slot, PID: e.det.pid, Path: e.det.path,
			Signal: e.det.signal, Block: e.det.block, DetectNS: e.det.detectNS, Err: err})
	}
	s.topUp()
}

// finishFailovers emits a failover once its new owner has committed a block.
func (s *Supervisor) finishFailovers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.pending[:0]
	for _, e := range s.pending {
		ns := s.region.Slot(int(e.newSlot)).FirstCommitNS()
		// Report once the new owner committed, or died without committing
		// (its own outage follows), or after 2 s in any case.
		gone := s.workers[e.newSlot].state.Load() != wOwner
		if ns == 0 && !gone && shm.NowNS()-e.attachNS < uint64(2*time.Second) {
			kept = append(kept, e)
			continue
		}
		s.emitLocked(Event{Kind: EvFailover, Lane: int(e.lane), Slot: e.det.slot, PID: e.det.pid, Path: e.det.path,
			Signal: e.det.signal, Block: e.det.block, FaultNS: e.det.faultNS, DetectNS: e.det.detectNS,
			NewSlot: int(e.newSlot), NewPID: int(s.workers[e.newSlot].pid.Load()), AttachNS: e.attachNS,
			FirstCommitNS: ns, FirstPushNS: s.region.Slot(int(e.newSlot)).FirstPushNS(), Poisoned: e.poisoned, Reinit: e.reinit})
	}
	s.pending = kept
}

// release waits for the worker's process to exit, collects its status and
// closes its pidfd and stat file. The monitor no longer reads the stat file
// by then: it saw the death, or never watched this process.
func (w *workerRec) release() (code, sig int) {
	fd := int(w.pidfd.Swap(-1))
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED, nil); err == nil {
		code, sig = exitStatus(&info)
	}
	unix.Close(fd)
	if sfd := int(w.statFD.Swap(-1)); sfd >= 0 {
		unix.Close(sfd)
	}
	if cfd := int(w.ctl.Swap(-1)); cfd >= 0 {
		unix.Close(cfd)
	}
	return code, sig
}

// reap collects a dead worker and frees its slot.
func (s *Supervisor) reap(slot int) {
	w := &s.workers[slot]
	code, sig := w.release()
	pid := int(w.pid.Load())
	if sig != 0 {
		w.exitStatus.Store(int32(-sig))
	} else {
		w.exitStatus.Store(int32(code))
	}
	if w.handshaking.Load() {
		w.state.Store(wFailed) // its spawner reports and frees it
		close(w.reaped)
	} else {
		w.state.Store(wFree)
	}
	s.emit(Event{Kind: EvWorkerExited, Lane: -1, Slot: slot, PID: pid, ExitCode: code, ExitSignal: sig})
}

// topUp starts spares until the pool is back to its size.
func (s *Supervisor) topUp() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	// Workers still in their handshake count as spares to be: Start's own
	// spawns are among them.
	have := 0
	for i := range s.workers {
		if st := s.workers[i].state.Load(); st == wSpare || st == wSpawning {
			have++
		}
	}
	need := s.cfg.Spares - have
	var slots []int
	for i := 0; i < need; i++ {
		// Claimed here, under the lock, so the next topUp counts it.
		if slot := s.claimSlot(); slot >= 0 {
			slots = append(slots, slot)
		}
	}
	s.spawns.Add(len(slots)) // under the lock, so Close's Wait counts them
	s.mu.Unlock()
	for _, slot := range slots {
		go func() {
			defer s.spawns.Done()
			if s.cfg.RespawnDelay > 0 {
				select {
				case <-time.After(s.cfg.RespawnDelay):
				case <-s.closing:
					s.workers[slot].state.Store(wFree)
					return
				}
			}
			if err := s.spawnSpare(slot); err != nil && !errors.Is(err, ErrClosed) {
				s.emit(Event{Kind: EvSpawnFailed, Lane: -1, Err: err})
			}
		}()
	}
}

func (s *Supervisor) emit(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.emitLocked(e)
}

func (s *Supervisor) emitLocked(e Event) {
	if s.closed {
		return
	}
	s.annotate(&e)
	select {
	case s.events <- e:
	default:
		s.dropped++
	}
}

// Owner is the slot and pid of lane l's current owner, or -1s.
func (s *Supervisor) Owner(l int) (slot, pid int) {
	o := int(s.lanes[l].owner.Load())
	if o < 0 {
		return -1, -1
	}
	return o, int(s.workers[o].pid.Load())
}

// Injection is a fault the supervisor was asked to cause.
type Injection struct {
	Fault    Fault
	Lane     int
	Slot     int
	PID      int
	Block    uint64 // the block at which the worker performs it (0 for kill)
	InjectNS uint64 // when it was requested (for kill: when SIGKILL was sent)
}

// ErrNoOwner means the lane has no owner to inject a fault into right now.
var ErrNoOwner = errors.New("lane has no owner right now")

// InjectFault makes lane l's current owner suffer f at block `block` (for
// kill: now). The owner performs worker-side faults itself when it reaches
// that block, recording the time just before.
func (s *Supervisor) InjectFault(l int, f Fault, block uint64) (Injection, error) {
	// Held throughout: Close cannot release the pidfd or unmap the slot
	// under an injection in progress.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Injection{}, ErrClosed
	}
	slot, pid := s.Owner(l)
	if slot < 0 {
		return Injection{}, ErrNoOwner
	}
	inj := Injection{Fault: f, Lane: l, Slot: slot, PID: pid, Block: block}
	if f == FaultKill {
		inj.Block = 0
		inj.InjectNS = shm.NowNS()
		if err := unix.PidfdSendSignal(int(s.workers[slot].pidfd.Load()), unix.SIGKILL, nil, 0); err != nil {
			return inj, fmt.Errorf("supervisor: kill worker %d: %w", pid, err)
		}
		return inj, nil
	}
	inj.InjectNS = shm.NowNS()
	s.region.Slot(slot).InjectFault(uint32(f), block)
	return inj, nil
}

// LaneFailed says why lane l was given up (errors.Is ErrLaneFailed), or
// nil while it runs.
func (s *Supervisor) LaneFailed(l int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failedLanes[int16(l)]
}

// WakeHoldErr says why a real-time supervisor could not hold the CPU
// wake-up latency (Config.DeepIdle), or nil: it holds it, or was not asked.
// The supervisor runs either way.
func (s *Supervisor) WakeHoldErr() error { return s.wakeHoldErr }

// MonitorStalls counts the monitor's wake-ups that came so late (more than
// half the hang timeout) that the machine itself had stalled; each restarted
// the pending deadlines instead of killing owners that could not have run.
func (s *Supervisor) MonitorStalls() uint64 { return s.mon.stalls.Load() }

// EarlyFences counts killed owners whose lane moved as soon as the kernel
// had them in exit, before their pidfd reported the death.
func (s *Supervisor) EarlyFences() uint64 { return s.mon.earlyFences.Load() }

// Counts reports live workers by state, for tests and status lines.
func (s *Supervisor) Counts() (spares, owners, other int) {
	for i := range s.workers {
		switch s.workers[i].state.Load() {
		case wFree:
		case wSpare:
			spares++
		case wOwner:
			owners++
		default:
			other++
		}
	}
	return
}

// Close stops the audio clock over its lanes (if any is still running) and
// the monitor, asks every worker to exit, kills those that do not within
// 200 ms, reaps them all and releases every fd and mapping. Every goroutine
// and thread that can touch the region is joined before it is unmapped. It
// is safe to call more than once, from any goroutine, before or after the
// clock's Free.
func (s *Supervisor) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	monDone, ctlDone := s.monDone, s.ctlDone // nil if Start never got that far
	untimeline := s.untimeline
	s.mu.Unlock()
	defer s.wakeHold.Release()
	// First the clock: its thread reads the lanes and rings our doorbell.
	s.region.StopUsers()
	// Workers still being spawned give up their handshake at once.
	s.spawns.Wait()
	if monDone != nil {
		s.mon.stop.Store(true)
		s.wakeMonitor()
		<-monDone
	}
	untimeline()
	// Closing the event eventfd ends the control plane's reader.
	if ctlDone != nil {
		s.evFile.Close()
		s.mq.efd = -1
		<-ctlDone
	}
	for i := range s.workers {
		w := &s.workers[i]
		if st := w.state.Load(); st != wFree && st != wDead {
			s.region.Slot(i).Command(shm.CmdExit, 0, 0, shm.NoResume, shm.NoResume, 0)
		}
	}
	for l := 0; l < s.region.Lanes(); l++ {
		s.region.Lane(l).WakeOwner()
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	for i := range s.workers {
		w := &s.workers[i]
		fd := int(w.pidfd.Load())
		if fd < 0 {
			continue
		}
		left := time.Until(deadline)
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, _ := unix.Poll(pfd, max(int(left/time.Millisecond), 0)); n == 0 {
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		}
		w.release()
		w.state.Store(wFree)
	}
	if s.sp != nil {
		s.sp.stop()
	}
	s.mu.Lock()
	s.closeFDs()
	s.fdsClosed = true
	close(s.events) // emit drops everything once closed is set
	s.mu.Unlock()
	s.saveLeftRepros()
	return s.region.Close()
}

func exitStatus(info *unix.Siginfo) (code, sig int) {
	// si_code: CLD_EXITED=1, CLD_KILLED=2, CLD_DUMPED=3; si_status after pid, uid.
	b := (*[128]byte)(unsafe.Pointer(info))
	siCode := int32(le32(b[8:]))
	status := int32(le32(b[24:]))
	if siCode == 1 {
		return int(status), 0
	}
	return -1, int(status)
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
