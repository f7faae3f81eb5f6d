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
//
// Who writes what: the monitor goroutine owns the workers' and lanes'
// real-time state (workers[i].state and .lane, lanes, deadlines, mon; see
// monitor.go) and writes it alone; the control plane (controlPlane, the
// spawners, Start, Close, the public methods) owns what mu guards and the
// workers' process fields (pid, pidfds, fds). They talk through mq and cmdq
// only. Before the monitor starts, New and Start set its initial state;
// after it stops, Close takes over.
type Supervisor struct {
	cfg           Config      // set by New, read-only after
	region        *shm.Region // mapped by New, unmapped by Close once nothing touches it
	doorbell      int
	workers       [shm.MaxSlots]workerRec
	lanes         [shm.MaxLanes]laneRec
	refused       [shm.MaxLanes]refusal      // RefuseOutput: see refuse.go for who writes what
	refusePending atomic.Bool                // a cRefused is queued and not yet begun: set by RefuseOutput (CAS), cleared by the monitor
	deadlines     [shm.MaxLanes]laneDeadline // monitor writes (budget), anyone reads
	mq            *queue[monEvent]           // monitor → control plane; the monitor is its one producer, controlPlane its one consumer
	cmdq          *queue[ctlCmd]             // control plane → monitor; producers take cmdMu, the monitor is its one consumer
	cmdMu         sync.Mutex
	monTID        atomic.Int32 // the monitor's thread, for SetMonitorPriority: written once by runMonitor before it answers Start
	mon           monitor
	sp            *spawner

	evFile      *os.File // the monitor's event eventfd, read through Go's poller by controlPlane
	wakeHold    *rt.WakeLatencyHold
	wakeHoldErr error // why the hold could not be taken (see Config.DeepIdle)
	monDone     chan struct{}
	ctlDone     chan struct{}
	closing     chan struct{} // closed when Close begins: spawns stop waiting
	spawns      sync.WaitGroup
	untimeline  func() // takes back the registration with the timeline
	events      chan Event
	mu          sync.Mutex         // guards what follows: control plane state
	lanesUp     [shm.MaxLanes]bool // lanes whose owner the monitor reported attached (Start waits for them)
	upNote      chan struct{}      // buffered 1: a lane came up
	closed      bool
	started     bool
	failedLanes map[int16]error // lanes the restart policy gave up, and why
	workerPrio  atomic.Int32    // the workers' SCHED_FIFO priority (Config.WorkerPrio, SetWorkerPriority)
	tlForgotten bool            // the timeline was freed before the monitor started
	fdsClosed   bool            // Close closed the fds: nothing may write to their numbers
	dropped     int
	rtWarn      error
	workerRT    workerRT // why a worker could not be given its priority or CPU
	listenerErr workerRT // why the host has no copy of a worker's filter listener (filter.go)
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
		failedLanes: map[int16]error{}, upNote: make(chan struct{}, 1)}
	s.workerPrio.Store(int32(cfg.WorkerPrio))
	for i := range s.workers {
		s.workers[i].lane.Store(-1)
		s.workers[i].pidfd.Store(-1)
		s.workers[i].statFD.Store(-1)
		s.workers[i].listener.Store(-1)
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
	// Every spawn answers within its handshake (or at Close). Without a
	// monitor thread, the monitor runs here (tests that drive it): then
	// each wait only looks, through a channel always ready.
	var manual chan struct{}
	if s.cfg.manualMonitor {
		manual = make(chan struct{})
		close(manual)
	}
	for got := 0; got < n; {
		if manual != nil {
			s.mon.poll(1)
		}
		select {
		case e := <-errs:
			got++
			if e != nil && err == nil {
				err = e
			}
		case <-manual:
		}
	}
	if err != nil {
		return err
	}
	// Then every lane's first owner attached, as the monitor reports it.
	deadline := time.NewTimer(s.cfg.Handshake)
	defer deadline.Stop()
	for l := s.laneDown(); l >= 0; l = s.laneDown() {
		if manual != nil {
			s.mon.poll(1)
		}
		select {
		case <-s.upNote:
		case <-deadline.C:
			return fmt.Errorf("supervisor: lane %d has no attached worker after %v", l, s.cfg.Handshake)
		case <-s.closing:
			return ErrClosed
		case <-manual:
		}
	}
	return nil
}

// laneDown is the first lane the monitor has not reported attached, or -1.
func (s *Supervisor) laneDown() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for l := range s.cfg.Lanes {
		if !s.lanesUp[l] {
			return l
		}
	}
	return -1
}

func (s *Supervisor) openFDs() error {
	var err error
	s.doorbell, s.mon.epfd, s.mon.timerfd, s.mon.ctlfd = -1, -1, -1, -1
	if s.mq, err = newQueue[monEvent](monQueueLen); err != nil {
		return err
	}
	if s.cmdq, err = newQueue[ctlCmd](cmdQueueLen); err != nil {
		return err
	}
	s.mon.ctlfd = s.cmdq.efd
	if s.doorbell, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fmt.Errorf("supervisor: doorbell eventfd: %w", err)
	}
	if s.mon.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fmt.Errorf("supervisor: epoll: %w", err)
	}
	if s.mon.timerfd, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK); err != nil {
		return fmt.Errorf("supervisor: timerfd: %w", err)
	}
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
	for _, fd := range []*int{&s.doorbell, &s.mon.epfd, &s.mon.timerfd} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
	s.cmdMu.Lock()
	s.cmdq.close(true)
	s.mon.ctlfd = -1
	s.cmdMu.Unlock()
	// The event queue's eventfd is the control plane's *os.File once Start
	// made it one, closed by Close.
	s.mq.close(s.evFile == nil)
}

func (s *Supervisor) runMonitor(ready chan<- error) {
	runtime.LockOSThread() // never unlocked: Go retires the thread with its changed priority
	defer close(s.monDone)
	s.monTID.Store(int32(unix.Gettid()))
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
// it as it handles the command, at once.
func (s *Supervisor) forgetTimeline() {
	s.mu.Lock()
	if s.monDone == nil || s.cfg.manualMonitor {
		s.mon.tl = nil // no monitor thread reads it (tests drive poll themselves)
		s.tlForgotten = true
		s.mu.Unlock()
		return
	}
	if !s.fdsClosed { // Close has stopped the monitor and closed its queue
		s.command(cDropTL, -1)
	}
	s.mu.Unlock()
	select {
	case <-s.mon.tlDropped:
	case <-s.monDone: // it has stopped, and with it every read
	}
}

// command queues a command for the monitor and wakes it. Any control-plane
// goroutine may call it: cmdMu makes them one producer.
func (s *Supervisor) command(kind uint8, slot int) {
	s.cmdMu.Lock()
	defer s.cmdMu.Unlock()
	if s.mon.ctlfd < 0 {
		return // closed
	}
	if !s.cmdq.push(&ctlCmd{kind: kind, slot: int16(slot)}) {
		panic("supervisor: the monitor's command queue is full, which cmdQueueLen rules out")
	}
}

// claimSlot reserves a free slot for a new worker, or returns -1.
func (s *Supervisor) claimSlot() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claimSlotLocked()
}

func (s *Supervisor) claimSlotLocked() int {
	for i := range s.workers {
		if w := &s.workers[i]; !w.busy {
			w.busy, w.spawning = true, true
			return i
		}
	}
	return -1
}

// freeSlot gives back a claimed slot whose process never started.
func (s *Supervisor) freeSlot(slot int) {
	s.mu.Lock()
	w := &s.workers[slot]
	w.busy, w.spawning, w.hs = false, false, nil
	s.mu.Unlock()
}

// spawnSpare starts one worker in a claimed slot and waits for its handshake:
// the monitor's report that it is READY, or of its death, relayed by the
// control plane, or the handshake's deadline.
func (s *Supervisor) spawnSpare(slot int) error {
	if slot < 0 {
		return errors.New("supervisor: no free worker slot")
	}
	w := &s.workers[slot]
	w.gen = s.region.PrepareSlot(slot)
	// The drain goroutine below keeps this process's tail: the slot's
	// next worker gets a new one while this one's output may still arrive.
	tail := &outputTail{}
	hs := make(chan handshake, 1)
	s.mu.Lock()
	w.tail, w.hs = tail, hs
	s.mu.Unlock()
	pr, pw, err := os.Pipe()
	if err != nil {
		s.freeSlot(slot)
		return fmt.Errorf("supervisor: pipe: %w", err)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		pr.Close()
		pw.Close()
		s.freeSlot(slot)
		return fmt.Errorf("supervisor: %w", err)
	}
	// The worker's lane fd arrives on this socket at its attach; the host
	// keeps its end, the worker gets the other as fd 5.
	ctl, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		pr.Close()
		pw.Close()
		null.Close()
		s.freeSlot(slot)
		return fmt.Errorf("supervisor: socketpair: %w", err)
	}
	argv := workerArgs(&s.cfg, slot, w.gen)
	// Its slot's memfd, and no other: a worker maps its lane only once it
	// is handed one.
	files := []uintptr{null.Fd(), pw.Fd(), pw.Fd(), uintptr(s.region.SlotFD(slot)), uintptr(s.doorbell), uintptr(ctl[1])}
	spawnNS := shm.NowNS()
	pid, pidfd, err := s.sp.spawn(s.cfg.Worker, argv, files)
	pw.Close()
	null.Close()
	unix.Close(ctl[1])
	if err != nil {
		unix.Close(ctl[0])
		pr.Close()
		s.freeSlot(slot)
		return &SpawnError{Worker: s.cfg.Worker, Slot: slot, Reason: "could not start", Err: err, ExitCode: -1}
	}
	s.mu.Lock()
	w.spawnNS = spawnNS
	s.mu.Unlock()
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
	// From here the monitor watches it (its pidfd, its READY) and the
	// control plane reaps it.
	s.command(cSpawned, slot)
	timeout := time.NewTimer(s.cfg.Handshake)
	defer timeout.Stop()
	select {
	case r := <-hs:
		if r.ok {
			return nil
		}
		// Reaped already, so its exit status is in; its last words are in
		// once its output ends, bounded in case a child holds the pipe.
		select {
		case <-drained:
		case <-time.After(100 * time.Millisecond):
		}
		reason, code := "failed its handshake", -1
		if r.sig == 0 {
			reason, code = fmt.Sprintf("failed its handshake: exited with status %d", r.code), r.code
		} else {
			reason = fmt.Sprintf("failed its handshake: killed by signal %d", r.sig)
		}
		return &SpawnError{Worker: s.cfg.Worker, Slot: slot, Reason: reason, Output: tail.String(), ExitCode: code}
	case <-timeout.C:
		// Its death comes back as any other and frees the slot.
		unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		return &SpawnError{Worker: s.cfg.Worker, Slot: slot,
			Reason: fmt.Sprintf("not ready after %v", s.cfg.Handshake), Output: tail.String(), ExitCode: -1}
	case <-s.closing:
		// Close kills and reaps what is left.
		return ErrClosed
	}
}

// controlPlane turns monitor records into events, reaps the dead and keeps
// the spare pool full. It is ordinary Go: it may allocate, lock and block.
// It wakes only when the monitor has queued something.
func (s *Supervisor) controlPlane() {
	defer close(s.ctlDone)
	buf := make([]byte, 8)
	var e monEvent
	for {
		if _, err := s.evFile.Read(buf); err != nil {
			return // Close closed it
		}
		for s.mq.pop(&e) {
			s.handle(&e)
		}
	}
}

func (s *Supervisor) handle(e *monEvent) {
	switch e.kind {
	case mReady:
		s.spareReady(int(e.slot))
	case mDeath:
		s.reap(int(e.slot))
	case mAttached:
		s.mu.Lock()
		s.lanesUp[e.lane] = true
		s.mu.Unlock()
		select {
		case s.upNote <- struct{}{}:
		default:
		}
	case mFailover:
		s.emit(Event{Kind: EvFailover, Lane: int(e.lane), Slot: e.det.slot, PID: e.det.pid, Path: e.det.path,
			Signal: e.det.signal, Block: e.det.block, FaultNS: e.det.faultNS, DetectNS: e.det.detectNS,
			NewSlot: int(e.newSlot), NewPID: int(e.newPID), AttachNS: e.attachNS,
			FirstCommitNS: e.firstCommitNS, FirstPushNS: e.firstPushNS, Poisoned: e.poisoned, Reinit: e.reinit})
	case mNoSpare:
		s.emit(Event{Kind: EvNoSpare, Lane: int(e.lane), Slot: e.det.slot, PID: e.det.pid, Path: e.det.path,
			Signal: e.det.signal, Block: e.det.block, FaultNS: e.det.faultNS, DetectNS: e.det.detectNS})
	case mLaneFailed:
		err := s.laneFailed(*e)
		s.mu.Lock()
		s.failedLanes[e.lane] = err
		s.mu.Unlock()
		s.emit(Event{Kind: EvLaneFailed, Lane: int(e.lane), Slot: e.det.slot, PID: e.det.pid, Path: e.det.path,
			Signal: e.det.signal, Block: e.det.block, DetectNS: e.det.detectNS, Err: err})
	}
	s.topUp()
}

// spareReady ends slot's handshake: its spawner returns.
func (s *Supervisor) spareReady(slot int) {
	w := &s.workers[slot]
	s.mu.Lock()
	hs, spawnNS := w.hs, w.spawnNS
	w.spawning, w.hs = false, nil
	s.mu.Unlock()
	if !s.cfg.Unsandboxed {
		// A worker that is not all in exit yet may already be someone's
		// owner: until this store its word deaths are confirmed by stat.
		if fd, err := takeListener(int(w.pidfd.Load())); err == nil {
			w.listener.Store(int32(fd))
		} else {
			s.listenerErr.note(err)
		}
	}
	if hs != nil {
		hs <- handshake{ok: true}
	}
	s.emit(Event{Kind: EvSpareReady, Lane: -1, Slot: slot, PID: int(w.pid.Load()), SpawnNS: spawnNS, ReadyNS: s.region.Slot(slot).ReadyNS()})
}

// release waits for the worker's process to exit, collects its status and
// closes its pidfd, stat file and control socket. Control plane only (reap,
// or Close once the monitor stopped): the monitor no longer reads them, as
// it reported the death, or never watched this process.
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
	if lfd := int(w.listener.Swap(-1)); lfd >= 0 {
		unix.Close(lfd)
	}
	if cfd := int(w.ctl.Swap(-1)); cfd >= 0 {
		unix.Close(cfd)
	}
	return code, sig
}

// reap collects a dead worker, tells the monitor, and frees its slot; a
// worker that died in its handshake fails its spawn.
func (s *Supervisor) reap(slot int) {
	w := &s.workers[slot]
	code, sig := w.release()
	pid := int(w.pid.Load())
	// Before the slot is free: its next cSpawned must follow this.
	s.command(cReaped, slot)
	s.mu.Lock()
	hs, spawning := w.hs, w.spawning
	w.busy, w.spawning, w.hs = false, false, nil
	s.mu.Unlock()
	if spawning && hs != nil {
		hs <- handshake{code: code, sig: sig}
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
		if w := &s.workers[i]; w.spawning || w.state.Load() == wSpare {
			have++
		}
	}
	need := s.cfg.Spares - have
	var slots []int
	for i := 0; i < need; i++ {
		// Claimed here, under the lock, so the next topUp counts it.
		if slot := s.claimSlotLocked(); slot >= 0 {
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
					s.freeSlot(slot)
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
		s.command(cStop, -1)
		<-monDone
	}
	// From here on Close is the one writer of the workers' state.
	untimeline()
	// Closing the event eventfd ends the control plane's reader.
	if ctlDone != nil {
		s.evFile.Close()
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
