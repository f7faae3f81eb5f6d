package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/understudy-rt/understudy/runtime/audioclock"
	"github.com/understudy-rt/understudy/runtime/catalog"
	"github.com/understudy-rt/understudy/runtime/chain"
	"github.com/understudy-rt/understudy/runtime/shm"
	"github.com/understudy-rt/understudy/supervisor"
)

// Backend is what drives a session's periods.
type Backend int

const (
	// Timer: the session's own clock thread, at Config.Rate, fed and
	// drained by Config.Feed and Config.Drain.
	Timer Backend = iota
	// JACK: a JACK server's process callback drives the clock; the lanes'
	// inputs and outputs are JACK ports, the rate is the server's.
	JACK
	// Offline: no clock; render through Session.Render or Session.Lane as
	// fast as the workers go.
	Offline
)

func (b Backend) String() string {
	switch b {
	case Timer:
		return "timer"
	case JACK:
		return "jack"
	case Offline:
		return "offline"
	}
	return fmt.Sprintf("Backend(%d)", int(b))
}

// Priorities (SCHED_FIFO), highest first: the monitor must preempt a worker
// spinning at its own priority, and the clock must preempt workers. Under
// JACK the callback thread takes the clock's place at whatever priority the
// server gives it, and workers go one below it.
const (
	MonitorPrio = 80
	ClockPrio   = 70
	WorkerPrio  = 60
)

// Lane is one lane: a chain of kernels ("lowpass f=1000 | gain db=-6",
// see `understudy kernels`) over Channels interleaved channels.
type Lane struct {
	Chain    string `json:"chain"`
	Channels int    `json:"channels"`
}

// Output says what a lane plays when its chain's block is late or refused,
// and how the switch sounds.
type Output struct {
	Fallback  string  `json:"fallback"`       // "dry" or "silence"
	CeilingDB float64 `json:"ceiling_db"`     // a louder sample (or NaN, Inf) makes its block garbage
	Declick   int     `json:"declick_frames"` // frames of ramp at every switch (0: none)
}

// DefaultOutput is the command line's default.
var DefaultOutput = Output{Fallback: "dry", CeilingDB: 24, Declick: 32}

// JACKConfig is a JACK session's client.
type JACKConfig struct {
	Name       string   // client name (default "understudy")
	Server     string   // server name ("" : $JACK_DEFAULT_SERVER, else the default)
	ConnectIn  []string // port patterns feeding the lanes' inputs, in order
	ConnectOut []string // port patterns the lanes' outputs feed, in order
}

// Config is a session's set-up. The zero values of the optional fields are
// the command line's defaults.
type Config struct {
	Backend Backend
	Worker  string // understudy-worker; "" : WorkerPath()
	Lanes   []Lane
	Rate    int    // frames per second (Timer, Offline); JACK takes the server's
	Block   int    // frames per block
	Latency int    // output latency in blocks (Timer, JACK; default 2)
	Periods uint64 // Timer: periods to run, input blocks + Latency (0: until Stop)
	Spares  int    // warm spare workers shared by the lanes
	// HangTimeout: a block pending longer means its worker hung (default
	// half a block, at least 500 µs).
	HangTimeout time.Duration
	Variant     string  // kernel variant: "" or "auto" picks the fastest this CPU runs
	Output      *Output // nil: DefaultOutput
	JACK        JACKConfig
	// Feed and Drain move a Timer session's audio, on the clock's own
	// goroutines, one per lane and direction (audioclock.Feed, Drain).
	Feed  audioclock.Feed
	Drain audioclock.Drain
	// OnEvent sees every supervisor event, in order, on the session's
	// event goroutine; EventLog gets each as a line of JSON (EventJSON).
	OnEvent  func(supervisor.Event)
	EventLog io.Writer
	// Warn is told what degrades the run (no real-time privilege, a
	// detection path missing) when it is found; nil: it is only in Warnings.
	Warn func(string)
	// LockMemory locks all the program's memory (mlockall) from New to
	// Close, when the privilege allows: process-wide, so for one session
	// at a time.
	LockMemory  bool
	DeepIdle    bool   // let idle CPUs halt (supervisor.Config.DeepIdle)
	Unsandboxed bool   // workers without their sandbox, to debug a kernel
	ReproDir    string // where a bypassed (poison) block is saved for `understudy replay` ("": the system's temporary directory)
	// Catalog is the worker's kernels, if already loaded; Context bounds
	// loading it.
	Catalog *catalog.Catalog
	Context context.Context
	// Tune adjusts the supervisor's configuration last, for what the
	// fields above do not cover (pinning, spinning, the restart policy).
	Tune func(*supervisor.Config)
}

// ConfigError is a setting the user must change: Field names it as the
// command line does ("block", "lane"), Lane is its lane or -1.
type ConfigError struct {
	Field  string
	Lane   int
	Detail string
	Err    error
}

func (e *ConfigError) Error() string {
	switch {
	case e.Field == "":
		return e.Detail
	case e.Lane >= 0:
		return fmt.Sprintf("lane %d: %s", e.Lane, e.Detail)
	}
	return e.Field + " " + e.Detail
}

func (e *ConfigError) Unwrap() error { return e.Err }

func bad(field, format string, args ...any) error {
	return &ConfigError{Field: field, Lane: -1, Detail: fmt.Sprintf(format, args...)}
}

// IsConfigError reports whether err is the user's to fix.
func IsConfigError(err error) bool {
	var ce *ConfigError
	return errors.As(err, &ce)
}

// Validate checks the numbers of a Config, without the worker: what
// Check and New refuse before anything else.
func (c *Config) Validate() error {
	minBlock := 16
	if c.Backend == Offline {
		minBlock = 1 // no clock: any block is only a unit of work
	}
	switch {
	case c.Backend < Timer || c.Backend > Offline:
		return bad("backend", "%d: use Timer, JACK or Offline", int(c.Backend))
	case c.Backend != JACK && (c.Rate < 8000 || c.Rate > 192000):
		return bad("rate", "%d is out of range: use 8000..192000 Hz", c.Rate)
	case c.Block < minBlock || c.Block > shm.MaxFrames:
		return bad("block", "%d is out of range: use %d..%d frames", c.Block, minBlock, shm.MaxFrames)
	case len(c.Lanes) < 1 || len(c.Lanes) > shm.MaxLanes:
		return bad("lanes", "%d: use 1..%d (what a region holds)", len(c.Lanes), shm.MaxLanes)
	case c.Spares < 0 || len(c.Lanes)+c.Spares > shm.MaxSlots/2:
		return bad("spares", "%d: lanes + spares must be at most %d", c.Spares, shm.MaxSlots/2)
	case c.Backend != Offline && (c.Latency < 1 || c.Latency > audioclock.MaxLatency):
		return bad("latency", "%d is out of range: use 1..%d blocks", c.Latency, audioclock.MaxLatency)
	case c.HangTimeout < 0:
		return bad("hang-timeout", "%v must be positive", c.HangTimeout)
	}
	for i, l := range c.Lanes {
		if l.Channels < 1 || l.Channels > shm.MaxChannels || l.Channels*c.Block > shm.SlotSamples {
			return &ConfigError{Field: "channels", Lane: -1, Detail: fmt.Sprintf(
				"%d (lane %d) at %d frames a block: use 1..%d channels, at most %d samples a block",
				l.Channels, i, c.Block, shm.MaxChannels, shm.SlotSamples)}
		}
		if strings.TrimSpace(l.Chain) == "" {
			return &ConfigError{Field: "lane", Lane: i, Detail: "no chain: give each lane from 0 a chain of kernels"}
		}
	}
	if c.Output != nil && c.Backend != Offline { // offline, no block is ever late
		return c.Output.Check(c.Block)
	}
	return nil
}

// Check says what is wrong with o for blocks of block frames.
func (o Output) Check(block int) error {
	switch {
	case o.Fallback != "dry" && o.Fallback != "silence":
		return bad("fallback", "%q: use dry or silence", o.Fallback)
	case o.CeilingDB < -60 || o.CeilingDB > 60 || o.CeilingDB != o.CeilingDB:
		return bad("ceiling-db", "%v is out of range: use -60..60 dBFS", o.CeilingDB)
	case o.Declick < 0 || o.Declick > block:
		return bad("declick", "%d: use 0..%d frames (at most a block)", o.Declick, block)
	}
	return nil
}

// ceiling is the largest magnitude an output sample may have.
func (o Output) ceiling() float32 { return float32(math.Pow(10, o.CeilingDB/20)) }

// apply sets the clock's fallback, ceiling and declick.
func (o Output) apply(cfg *audioclock.Config) {
	cfg.Fallback = audioclock.Dry
	if o.Fallback == "silence" {
		cfg.Fallback = audioclock.Silence
	}
	cfg.Ceiling = o.ceiling()
	cfg.Declick = o.Declick
	if o.Declick == 0 {
		cfg.Declick = -1 // the clock's "none"; its 0 means its default
	}
}

// Check validates everything in cfg that can be checked without running
// audio: the numbers, the worker (which it asks for its kernels, once),
// and every lane's chain at cfg.Rate (at 48 kHz for JACK, whose server
// decides; New checks again at its rate). It returns cfg with its defaults
// filled in and its Catalog loaded, for New.
func Check(cfg Config) (Config, error) {
	if cfg.Worker == "" {
		cfg.Worker = WorkerPath()
	}
	if cfg.Latency == 0 && cfg.Backend != Offline {
		cfg.Latency = 2
	}
	if cfg.Output == nil {
		o := DefaultOutput
		cfg.Output = &o
	}
	if cfg.Backend == JACK && cfg.JACK.Name == "" {
		cfg.JACK.Name = "understudy"
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	if cfg.Catalog == nil {
		ctx := cfg.Context
		if ctx == nil {
			ctx = context.Background()
		}
		cat, err := LoadCatalog(ctx, cfg.Worker, cfg.Unsandboxed)
		if err != nil {
			return cfg, err
		}
		cfg.Catalog = cat
	}
	rate := cfg.Rate
	if cfg.Backend == JACK {
		rate = 48000
	}
	_, err := plan(&cfg, rate)
	return cfg, err
}

// LoadCatalog checks the worker binary and asks it for its kernels; every
// failure is the user's to fix (a missing or wrong worker).
func LoadCatalog(ctx context.Context, worker string, unsandboxed bool) (*catalog.Catalog, error) {
	if err := supervisor.CheckWorker(worker); err != nil {
		return nil, &ConfigError{Field: "", Lane: -1, Detail: err.Error(), Err: err}
	}
	cat, err := catalog.LoadContext(ctx, worker, unsandboxed)
	if err != nil {
		return nil, &ConfigError{Field: "", Lane: -1, Detail: err.Error(), Err: err}
	}
	return cat, nil
}

// plan turns every lane's chain into its lane configuration at rate.
func plan(cfg *Config, rate int) ([]shm.LaneConfig, error) {
	out := make([]shm.LaneConfig, len(cfg.Lanes))
	variant := cfg.Variant
	if variant == "" {
		variant = "auto"
	}
	for i, l := range cfg.Lanes {
		st, err := chain.Parse(l.Chain, cfg.Catalog)
		if err != nil {
			return nil, &ConfigError{Field: "chain", Lane: i, Detail: err.Error(), Err: err}
		}
		if out[i], err = chain.LaneConfig(st, l.Channels, cfg.Block, rate, variant); err != nil {
			if cfg.Backend == JACK && rate != 48000 {
				err = fmt.Errorf("at the server's %d Hz: %w", rate, err)
			}
			return nil, &ConfigError{Field: "chain", Lane: i, Detail: err.Error(), Err: err}
		}
	}
	return out, nil
}
