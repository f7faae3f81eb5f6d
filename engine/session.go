package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/understudy-rt/understudy/internal/stats"
	"github.com/understudy-rt/understudy/rt"
	"github.com/understudy-rt/understudy/runtime/audioclock"
	"github.com/understudy-rt/understudy/runtime/chain"
	"github.com/understudy-rt/understudy/runtime/jack"
	"github.com/understudy-rt/understudy/runtime/render"
	"github.com/understudy-rt/understudy/runtime/shm"
	"github.com/understudy-rt/understudy/supervisor"
)

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("engine: session closed")

// Session is one running set of lanes: their supervisor (workers, spares,
// monitor), their clock and, under JACK, the client whose callback drives
// it. Every method is safe from any goroutine; Stop and Close any number
// of times, in any order.
type Session struct {
	cfg        Config
	lanes      []shm.LaneConfig
	rate       int
	sup        *supervisor.Supervisor
	clk        *audioclock.Clock // nil when Offline
	fifo       bool              // SCHED_FIFO allowed
	privileged bool              // FIFO, and memory locked if asked
	workerPrio int               // under JACK, once started
	lock       bool              // memory locked, to unlock at Close

	mu       sync.Mutex
	params   *supervisor.Params
	cli      *jack.Client
	started  bool
	closed   bool
	warnings []string
	tally    Tally
	detH     stats.Hist
	foH      stats.Hist

	evDone    chan struct{}
	stopOnce  sync.Once
	closeOnce sync.Once
	closeErr  error
}

// Tally is what a session's events add up to, in memory that does not grow
// with the run's length.
type Tally struct {
	Failovers   int
	ByPath      map[string]int // failovers by detection path
	Detection   stats.Summary  // µs from an injected fault to its detection
	Failover    stats.Summary  // µs from detection to the spare's first block
	FailedLanes []string       // lanes the restart policy gave up, and why
}

// New checks cfg (see Check), creates the lanes, starts their workers and
// spares and sets up the clock; audio moves from Start. On error nothing
// is left running. A Timer or JACK session raises GOMAXPROCS to at least 8:
// the monitor needs a free P the moment it wakes, and idle Ps cost nothing.
func New(cfg Config) (s *Session, err error) {
	if cfg, err = Check(cfg); err != nil {
		return nil, err
	}
	s = &Session{cfg: cfg, rate: cfg.Rate, evDone: make(chan struct{})}
	if cfg.Backend == JACK {
		if s.rate, err = jackRate(&cfg); err != nil {
			return nil, err
		}
	}
	if s.lanes, err = plan(&cfg, s.rate); err != nil {
		return nil, err
	}
	hang := cfg.HangTimeout
	if hang == 0 {
		hang = max(time.Duration(int64(cfg.Block)*int64(time.Second)/int64(s.rate))/2, 500*time.Microsecond)
		s.cfg.HangTimeout = hang
	}
	scfg := supervisor.Config{Worker: cfg.Worker, Lanes: s.lanes, Spares: cfg.Spares, HangTimeout: hang,
		WorkerCPU: -1, DeepIdle: cfg.DeepIdle, Unsandboxed: cfg.Unsandboxed, ReproDir: cfg.ReproDir}
	clockPrio := 0
	if cfg.Backend != Offline {
		// The monitor is a goroutine: when epoll_wait returns it needs a
		// free P before it can act, and with one P per core a P can sit
		// for up to a sysmon tick (10 ms) with a goroutine that blocked in
		// a syscall. Spare Ps cost nothing while idle and let it in at once.
		runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), 8))
		if err := s.claimRT(); err != nil {
			return nil, err
		}
		if s.fifo {
			scfg.MonitorPrio, clockPrio = MonitorPrio, ClockPrio
			if cfg.Backend == Timer {
				scfg.WorkerPrio = WorkerPrio // under JACK: below the callback, once it runs
			}
		}
	}
	if cfg.Tune != nil {
		cfg.Tune(&scfg)
	}
	defer func() {
		if err != nil {
			s.Close()
			s = nil
		}
	}()
	if s.sup, err = supervisor.New(scfg); err != nil {
		close(s.evDone)
		return s, classify(err)
	}
	// Events from before Start too, so the spares' start-up is seen.
	go s.events()
	var tl supervisor.Timeline
	if cfg.Backend != Offline {
		refs := make([]*shm.Lane, len(s.lanes))
		for i := range refs {
			refs[i] = s.sup.Region().Lane(i)
		}
		ccfg := audioclock.Config{Rate: s.rate, Frames: cfg.Block, Latency: cfg.Latency, Prio: clockPrio, CPU: -1,
			Doorbell: s.sup.Doorbell(), Lanes: refs}
		if cfg.Backend == Timer {
			ccfg.Periods, ccfg.Feed, ccfg.Drain = cfg.Periods, cfg.Feed, cfg.Drain
			if ccfg.Periods == 0 {
				ccfg.Periods = math.MaxUint64 // until Stop
			}
		}
		cfg.Output.apply(&ccfg)
		if s.clk, err = audioclock.New(ccfg); err != nil {
			return s, err
		}
		tl = s.clk
	}
	if err := s.sup.Start(tl); err != nil {
		return s, classify(err)
	}
	if w := s.sup.DeathWordWarning(); w != "" {
		s.warn("detection: "+w, true, true)
	}
	if cfg.Backend == Timer {
		if w := s.sup.RTWarning(); w != nil {
			s.warn("monitor: "+w.Error(), false, true)
		} else if w := s.sup.WakeHoldErr(); w != nil {
			s.warn("idle CPUs may halt: "+w.Error(), false, true)
		}
		if w := s.sup.WorkerRTWarning(); w != nil {
			s.warn("workers: "+w.Error(), false, true)
		}
	}
	return s, nil
}

// claimRT probes for SCHED_FIFO and, if asked, locks memory.
func (s *Session) claimRT() error {
	locked := uint64(rt.DefaultShared)
	if s.cfg.LockMemory {
		// What this session locks besides what rt counts: its region and clock.
		chans := make([]int, len(s.lanes))
		for i, l := range s.lanes {
			chans[i] = l.Channels
		}
		locked = uint64(shm.HostBytes(s.lanes)) + audioclock.MemBytes(s.cfg.Block, chans)
	}
	priv := rt.ProbeLock(rt.FIFOMin, locked)
	s.fifo = priv.FIFO
	if w := priv.Warning(); w != "" && (s.cfg.LockMemory || !priv.FIFO) {
		s.warn(w, true, false)
	}
	s.privileged = priv.FIFO && (priv.MemLock || !s.cfg.LockMemory)
	if s.cfg.LockMemory && priv.MemLock {
		if err := rt.LockMemory(); err != nil {
			s.warn(err.Error(), true, false)
		} else {
			s.lock = true
		}
	}
	return nil
}

// warn records w for Warnings if keep, and says it now through
// Config.Warn when it is news the user should see at once.
func (s *Session) warn(w string, now, keep bool) {
	s.mu.Lock()
	if keep {
		s.warnings = append(s.warnings, w)
	}
	s.mu.Unlock()
	if now && s.cfg.Warn != nil {
		s.cfg.Warn(w)
	}
}

// Start moves audio: a Timer session's clock starts (Config.Feed fills the
// first blocks on this goroutine); a JACK session opens its client, which
// connects its ports and is driven from the server's next period, and sets
// the workers one priority below the server's callback thread. An Offline
// session has nothing to start.
func (s *Session) Start() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.started {
		s.mu.Unlock()
		return errors.New("engine: Start called twice")
	}
	s.started = true
	s.mu.Unlock()
	switch s.cfg.Backend {
	case Timer:
		if err := s.clk.Start(); err != nil {
			if !errors.Is(err, audioclock.ErrNoRT) {
				return err
			}
			s.warn("clock: "+err.Error(), false, true)
		}
	case JACK:
		return s.startJACK()
	}
	return nil
}

func (s *Session) startJACK() error {
	j := s.cfg.JACK
	cli, err := jack.Open(jack.Config{Name: j.Name, Server: j.Server, Clock: s.clk, ConnectInputs: j.ConnectIn, ConnectOutputs: j.ConnectOut})
	if err != nil {
		return jackError(err)
	}
	s.mu.Lock()
	if s.closed { // Close ran meanwhile: it did not see this client
		s.mu.Unlock()
		cli.Close()
		return ErrClosed
	}
	s.cli = cli
	s.mu.Unlock()
	if err := cli.Activate(); err != nil {
		return jackError(err)
	}
	// Workers below the callback thread, so a hung one cannot starve the
	// server; the monitor above it.
	if cb := cli.RTPriority(); cb > 1 && s.fifo {
		if err := s.sup.SetWorkerPriority(cb - 1); err != nil {
			s.warn(err.Error(), true, true)
		}
		if cb >= MonitorPrio {
			// PipeWire's JACK runs its callback at FIFO 88: the monitor
			// goes above it, or a hung worker just under the callback
			// would starve the thread that detects it.
			if cb >= 99 {
				s.warn(fmt.Sprintf("the JACK callback runs at FIFO %d: no priority is left above it for the monitor", cb), true, true)
			} else if err := s.sup.SetMonitorPriority(cb + 1); err != nil {
				s.warn(err.Error(), true, true)
			}
		}
		s.mu.Lock()
		s.workerPrio = cb - 1
		s.mu.Unlock()
	} else {
		s.warn("the JACK callback is not real-time (start jackd with -R): workers run on ordinary scheduling", true, true)
	}
	return nil
}

// jackRate asks the server its sample rate, with a client that never
// activates over a throwaway clock: the lanes' filters are designed for it.
func jackRate(cfg *Config) (int, error) {
	r, err := shm.Create([]shm.LaneConfig{{Channels: 1, Frames: cfg.Block, Rate: 48000}})
	if err != nil {
		return 0, err
	}
	defer r.Close()
	clk, err := audioclock.New(audioclock.Config{Rate: 48000, Frames: cfg.Block, Latency: cfg.Latency, CPU: -1, Doorbell: -1,
		Lanes: []*shm.Lane{r.Lane(0)}})
	if err != nil {
		return 0, err
	}
	defer clk.Free()
	cli, err := jack.Open(jack.Config{Name: cfg.JACK.Name + "-probe", Server: cfg.JACK.Server, Clock: clk})
	if err != nil {
		return 0, jackError(err)
	}
	defer cli.Close()
	return cli.SampleRate(), nil
}

// jackError makes what the user can fix about the server a ConfigError.
func jackError(err error) error {
	if errors.Is(err, jack.ErrNoLibrary) || errors.Is(err, jack.ErrNoServer) ||
		errors.Is(err, jack.ErrBlockSize) || errors.Is(err, jack.ErrName) {
		return &ConfigError{Lane: -1, Detail: err.Error(), Err: err}
	}
	return err
}

// Err is why a running session cannot go on, or nil: the JACK server went
// away or changed its period.
func (s *Session) Err() error {
	if cli := s.JACK(); cli != nil {
		return cli.Err()
	}
	return nil
}

// Running reports whether audio can still move: false once a Timer clock
// ran its Periods, after Stop, and after Close.
func (s *Session) Running() bool {
	if s.clk == nil {
		return false
	}
	return s.clk.Running()
}

// Wait returns once a Timer session's clock has run its Periods (or was
// stopped) and its pumps have handed over the last block.
func (s *Session) Wait() {
	if s.clk != nil && s.cfg.Backend == Timer {
		s.clk.Join()
	}
}

// Stop ends the audio: no period runs after it returns (a JACK client is
// closed, the clock joined). Counters stay readable until Close.
func (s *Session) Stop() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		cli := s.cli
		s.mu.Unlock()
		if cli != nil {
			cli.Close() // deactivates: no callback reads the clock after
		}
		if s.clk != nil {
			s.clk.Stop()
			s.clk.Join()
		}
	})
}

// Close stops everything the session started and releases its memory:
// the JACK client, the workers and the monitor, then the clock. It waits
// for every goroutine and thread that touches that memory (docs/design.md
// §1), is idempotent, and returns the supervisor's error, if any.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.Stop()
		if s.sup != nil {
			s.closeErr = s.sup.Close()
		}
		<-s.evDone
		if s.clk != nil {
			s.clk.Free()
		}
		if s.lock {
			rt.UnlockMemory()
		}
	})
	return s.closeErr
}

// events drains the supervisor's events (its channel drops what nobody
// reads) into the tally, OnEvent and EventLog; Close waits for it.
func (s *Session) events() {
	defer close(s.evDone)
	var enc *json.Encoder
	if s.cfg.EventLog != nil {
		enc = json.NewEncoder(s.cfg.EventLog)
	}
	for e := range s.sup.Events() {
		s.mu.Lock()
		switch e.Kind {
		case supervisor.EvFailover:
			s.tally.Failovers++
			if s.tally.ByPath == nil {
				s.tally.ByPath = map[string]int{}
			}
			s.tally.ByPath[e.Path.String()]++
			if e.FaultNS != 0 {
				s.detH.Add(e.Detection())
			}
			s.foH.Add(e.Failover())
		case supervisor.EvLaneFailed:
			s.tally.FailedLanes = append(s.tally.FailedLanes, e.Err.Error())
		}
		s.mu.Unlock()
		if s.cfg.OnEvent != nil {
			s.cfg.OnEvent(e)
		}
		if enc != nil {
			enc.Encode(EventJSON(e))
		}
	}
}

// Tally is what the events so far add up to.
func (s *Session) Tally() Tally {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tally
	t.ByPath = make(map[string]int, len(s.tally.ByPath))
	for k, v := range s.tally.ByPath {
		t.ByPath[k] = v
	}
	t.FailedLanes = append([]string(nil), s.tally.FailedLanes...)
	t.Detection, t.Failover = s.detH.Summary(), s.foH.Summary()
	return t
}

// Warnings is what degraded the run and was not said through Config.Warn.
func (s *Session) Warnings() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.warnings...)
}

// Privileged reports whether the session runs real-time: SCHED_FIFO
// allowed and, with LockMemory, memory locked.
func (s *Session) Privileged() bool { return s.privileged }

// WorkerPriority is the SCHED_FIFO priority of a JACK session's workers
// (one below the server's callback thread), 0 when they run ordinary.
func (s *Session) WorkerPriority() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.workerPrio
}

// Rate is the session's sample rate (under JACK, the server's).
func (s *Session) Rate() int { return s.rate }

// Config is the session's configuration with its defaults filled in.
func (s *Session) Config() Config { return s.cfg }

// LaneConfigs are the lanes as planned: chains resolved to kernels and variants.
func (s *Session) LaneConfigs() []shm.LaneConfig { return s.lanes }

// Periods is how many periods have run.
func (s *Session) Periods() uint64 {
	if s.clk == nil {
		return 0
	}
	return s.clk.Periods()
}

// Period is the duration of one block.
func (s *Session) Period() time.Duration {
	return time.Duration(int64(s.cfg.Block) * int64(time.Second) / int64(s.rate))
}

// LaneStats is lane l's clock counters (zero for Offline and after Close).
func (s *Session) LaneStats(l int) audioclock.LaneStats {
	if s.clk == nil {
		return audioclock.LaneStats{}
	}
	return s.clk.Stats(l)
}

// InjectFault makes lane l's owner fail with f at block (0: at once), to
// watch a spare take over. It fails while the lane is between owners.
func (s *Session) InjectFault(l int, f supervisor.Fault, block uint64) (supervisor.Injection, error) {
	return s.sup.InjectFault(l, f, block)
}

// Render runs in through lane l of an Offline session and returns its
// output, as fast as the worker goes.
func (s *Session) Render(l int, in []float32) ([]float32, error) {
	if s.cfg.Backend != Offline {
		return nil, errors.New("engine: Render needs an Offline session")
	}
	out, _, err := render.Slice(s.sup.Region().Lane(l), in, s.RenderOptions(l))
	return out, err
}

// RenderOptions are the options runtime/render needs to render lane l of
// an Offline session safely: it stops when the supervisor gives the lane
// up, and garbage output (past the session's ceiling) is refused, its owner
// replaced and no more input pushed until it is.
func (s *Session) RenderOptions(l int) render.Options {
	return render.Options{
		Abort:   func() error { return s.sup.LaneFailed(l) },
		Ceiling: s.cfg.Output.ceiling(),
		Refuse:  func(b, epoch uint64) { s.sup.RefuseOutput(l, b, epoch) },
		Epoch:   func() uint64 { return s.sup.OwnerEpoch(l) },
	}
}

// Lane is lane l's shared memory, for runtime/render on an Offline
// session; valid until Close.
func (s *Session) Lane(l int) *shm.Lane { return s.sup.Region().Lane(l) }

// LaneFailed is non-nil once the supervisor gave lane l up.
func (s *Session) LaneFailed(l int) error { return s.sup.LaneFailed(l) }

// Supervisor and Clock are the session's parts, for figures this package
// does not gather. Their accessors stay safe after Close (they read zero
// or return ErrClosed), but neither may be closed or freed but by Close.
func (s *Session) Supervisor() *supervisor.Supervisor { return s.sup }
func (s *Session) Clock() *audioclock.Clock           { return s.clk }

// JACK is a JACK session's client once Start opened it, else nil; its
// counters stay readable after Stop and Close.
func (s *Session) JACK() *jack.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cli
}

// classify turns start-up failures the user can fix into ConfigErrors.
func classify(err error) error {
	var se *supervisor.SpawnError
	if errors.As(err, &se) {
		if msg := kernelComplaint(se.Output); msg != "" {
			return &ConfigError{Lane: -1, Detail: fmt.Sprintf("worker %s: %s", se.Worker, msg), Err: err}
		}
	}
	if errors.Is(err, supervisor.ErrWorkerBinary) || errors.As(err, &se) {
		return &ConfigError{Lane: -1, Detail: err.Error(), Err: err}
	}
	return err
}

// Params is the live parameter control of a running Timer or JACK session:
// Set changes a kernel's parameter on a lane at a block boundary, checked
// like the chain's own values, and failover stays bit-exact through it
// (docs/design.md decision 8). The same *Params every call.
func (s *Session) Params() (*supervisor.Params, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.params != nil {
		return s.params, nil
	}
	if s.clk == nil {
		return nil, errors.New("engine: live parameters need a Timer or JACK session (an Offline render takes its changes in render.Options.Changes)")
	}
	stages := make([][]chain.Stage, len(s.cfg.Lanes))
	for i, l := range s.cfg.Lanes {
		st, err := chain.Parse(l.Chain, s.cfg.Catalog)
		if err != nil { // checked by New already
			return nil, err
		}
		stages[i] = st
	}
	p, err := s.sup.Params(s.clk, stages)
	if err != nil {
		return nil, err
	}
	s.params = p
	return p, nil
}
