package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/understudy-rt/understudy/engine"
	"github.com/understudy-rt/understudy/internal/metrics"
	"github.com/understudy-rt/understudy/internal/sdnotify"
	"github.com/understudy-rt/understudy/internal/stats"
	"github.com/understudy-rt/understudy/runtime/audioclock"
	"github.com/understudy-rt/understudy/runtime/shm"
	"github.com/understudy-rt/understudy/supervisor"
)

const runUsage = `Usage: understudy run --backend jack [flags]
       understudy run --config session.json [flags]

Runs lanes of C kernels live, as a JACK client, until SIGINT or SIGTERM (or
--duration): per lane, as many input and output ports as it has channels.
Each JACK period moves one block into every lane and one block, --latency
periods older, out; a late block plays the fallback. A worker that crashes,
hangs or is killed is replaced by a warm spare from the lane's last
committed state, and the output goes on.

Lanes: --lanes N of --chain, each --channels wide, or one --lane I=CHAIN per
lane (I from 0) for different chains. A chain that starts with a generator
(sine, noise) needs no input.

The block (--block) must divide the server's period; the server's period
must be at most --latency blocks. Workers are set one priority below the
JACK callback thread, the monitor above it.

--config FILE: one JSON object keyed by these flags' names, e.g.
  {"backend": "jack", "lane": ["lowpass f=1000", "fir taps=512"],
   "connect": ["system:capture_"], "latency": 4, "duration": "10m"}
("lane" an array of chains, lane 0 first). Flags given too win; the file and
the flags are checked together before any audio runs.

` + chainHelp + "\n" + controlHelp + `
Flags:
`

type laneFlags []string

func (l *laneFlags) String() string     { return strings.Join(*l, ", ") }
func (l *laneFlags) Set(v string) error { *l = append(*l, v); return nil }

type runConfig struct {
	Backend     string        `json:"backend"`
	Name        string        `json:"name"`
	Server      string        `json:"server,omitempty"`
	Lanes       int           `json:"lanes"`
	Channels    int           `json:"channels"`
	Chain       string        `json:"chain"`
	LaneChains  []string      `json:"lane_chains"`
	Block       int           `json:"block"`
	Latency     int           `json:"latency_periods"`
	Spares      int           `json:"spares"`
	HangTimeout time.Duration `json:"hang_timeout_ns"`
	Variant     string        `json:"variant"`
	outputFlags
	ConnectIn   []string      `json:"connect_in,omitempty"`
	ConnectOut  []string      `json:"connect_out,omitempty"`
	Duration    time.Duration `json:"duration_ns,omitempty"`
	Events      string        `json:"events,omitempty"`
	Metrics     string        `json:"metrics,omitempty"`
	Report      string        `json:"report,omitempty"`
	Worker      string        `json:"worker"`
	Unsandboxed bool          `json:"unsandboxed,omitempty"`
}

func parseRunFlags(args []string, stdout io.Writer) (*runConfig, *errStyle, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	c := &runConfig{}
	var lanes, connIn, connOut laneFlags
	var config string
	fs.StringVar(&config, "config", "", "JSON file of settings, keyed by these flags' names (flags given too win)")
	fs.StringVar(&c.Backend, "backend", "", "audio backend: jack (required)")
	fs.StringVar(&c.Name, "name", "understudy", "JACK client name")
	fs.StringVar(&c.Server, "server", "", "JACK server name (default: $JACK_DEFAULT_SERVER, else JACK's default)")
	fs.IntVar(&c.Lanes, "lanes", 1, fmt.Sprintf("lanes of --chain (1..%d); ignored with --lane", shm.MaxLanes))
	fs.IntVar(&c.Channels, "channels", 2, fmt.Sprintf("channels per lane (1..%d)", shm.MaxChannels))
	fs.StringVar(&c.Chain, "chain", "lowpass f=4000 q=0.7071 | gain db=-6", "kernels of every lane, '|' between stages")
	fs.Var(&lanes, "lane", "I=CHAIN: lane I's own chain (repeat, from 0, for each lane)")
	fs.IntVar(&c.Block, "block", 64, fmt.Sprintf("frames per block (16..%d); must divide the server's period", shm.MaxFrames))
	fs.IntVar(&c.Latency, "latency", 4, fmt.Sprintf("added latency in blocks (1..%d)", audioclock.MaxLatency))
	fs.IntVar(&c.Spares, "spares", 1, "warm spare workers shared by the lanes")
	fs.DurationVar(&c.HangTimeout, "hang-timeout", 0, "a block pending longer than this means its worker hung (default: half a block, at least 500µs)")
	fs.StringVar(&c.Variant, "variant", "auto", "kernel variant: auto, scalar, sse2, avx2, ...")
	c.outputFlags.register(fs)
	fs.Var(&connIn, "connect", "JACK port pattern whose outputs feed the lanes' inputs, in order (repeatable), e.g. system:capture_")
	fs.Var(&connOut, "connect-out", "JACK port pattern fed by the lanes' outputs, in order (repeatable), e.g. system:playback_")
	fs.DurationVar(&c.Duration, "duration", 0, "stop after this long (default: run until SIGINT or SIGTERM)")
	fs.StringVar(&c.Events, "events", "", "write every event as one JSON object per line to this file, or - for stdout")
	fs.StringVar(&c.Report, "report", "", "write a JSON report here on exit")
	fs.StringVar(&c.Metrics, "metrics", "", "serve Prometheus metrics on this host:port (port 0 picks one and says which)")
	fs.StringVar(&c.Worker, "worker", "", "understudy-worker executable (default: beside this program, then $PATH)")
	fs.BoolVar(&c.Unsandboxed, "unsandboxed", false, "run workers without their sandbox, to debug a kernel")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, runUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil, nil, errHelp
		}
		return nil, nil, usagef("%v (see understudy run --help)", err)
	}
	if fs.NArg() > 0 {
		return nil, nil, usagef("unexpected argument %q (see understudy run --help)", fs.Arg(0))
	}
	st := &errStyle{file: config, fromFile: map[string]bool{}}
	if config != "" {
		if err := applyConfigFile(fs, config, st.fromFile); err != nil {
			return nil, nil, err
		}
	}
	// where names a setting as the user gave it: a flag, or a key of the file.
	where := func(name string) string {
		if st.fromFile[name] {
			return config + ": " + name
		}
		return "--" + name
	}
	c.ConnectIn, c.ConnectOut = connIn, connOut
	switch {
	case c.Backend == "":
		return nil, nil, usagef("--backend is required: understudy run --backend jack")
	case c.Backend != "jack":
		return nil, nil, usagef("%s %q: the one backend is jack", where("backend"), c.Backend)
	case c.Duration < 0:
		return nil, nil, usagef("%s %v must be positive", where("duration"), c.Duration)
	}
	if len(lanes) > 0 {
		c.LaneChains = make([]string, len(lanes))
		for _, l := range lanes {
			i, ch, ok := strings.Cut(l, "=")
			n, err := strconv.Atoi(strings.TrimSpace(i))
			if !ok || err != nil || n < 0 || n >= len(lanes) || n >= shm.MaxLanes {
				return nil, nil, usagef("%s %q: write I=CHAIN with I from 0 to %d, one per lane", where("lane"), l, min(len(lanes), shm.MaxLanes)-1)
			}
			if c.LaneChains[n] != "" {
				return nil, nil, usagef("%s %d given twice", where("lane"), n)
			}
			c.LaneChains[n] = strings.TrimSpace(ch)
		}
		c.Lanes = len(lanes)
	} else {
		for i := 0; i < c.Lanes; i++ {
			c.LaneChains = append(c.LaneChains, c.Chain)
		}
	}
	if c.Worker == "" {
		c.Worker = defaultWorker()
	}
	st.oneChain = len(lanes) == 0
	ec := c.engineConfig()
	if err := ec.Validate(); err != nil {
		return nil, nil, st.settingError(err)
	}
	return c, st, nil
}

// engineConfig is the session a run's settings describe.
func (c *runConfig) engineConfig() engine.Config {
	ec := engine.Config{Backend: engine.JACK, Worker: c.Worker, Block: c.Block, Latency: c.Latency, Spares: c.Spares,
		HangTimeout: c.HangTimeout, Variant: c.Variant, Output: &c.Output, Unsandboxed: c.Unsandboxed,
		JACK: engine.JACKConfig{Name: c.Name, Server: c.Server, ConnectIn: c.ConnectIn, ConnectOut: c.ConnectOut}}
	for _, ch := range c.LaneChains {
		ec.Lanes = append(ec.Lanes, engine.Lane{Chain: ch, Channels: c.Channels})
	}
	return ec
}

// repeatable are the flags a config file gives as a JSON array.
var repeatable = map[string]bool{"lane": true, "connect": true, "connect-out": true}

// applyConfigFile sets every flag the file names and the command line does
// not (the command line wins), and records which it set. The file is one
// JSON object keyed by the flags' names; "lane" is an array of chains, lane
// 0 first; "connect" and "connect-out" arrays of patterns; durations are
// strings ("10s"). TOML would need a dependency; JSON needs none.
func applyConfigFile(fs *flag.FlagSet, path string, fromFile map[string]bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return usagef("--config: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line := 1 + strings.Count(string(b[:min(int(se.Offset), len(b))]), "\n")
			return usagef("%s: line %d: %v", path, line, err)
		}
		return usagef("%s: %v: write one JSON object keyed by run's flag names", path, err)
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		f := fs.Lookup(k)
		switch {
		case k == "config":
			return usagef("%s: config: a config file cannot name another", path)
		case f == nil:
			return usagef("%s: unknown setting %q: the keys are run's flag names (see understudy run --help)", path, k)
		case onCommandLine[k]:
			continue
		}
		if repeatable[k] {
			var vs []string
			if err := json.Unmarshal(m[k], &vs); err != nil {
				return usagef("%s: %s: give an array of strings", path, k)
			}
			for i, v := range vs {
				if k == "lane" {
					v = fmt.Sprintf("%d=%s", i, v)
				}
				f.Value.Set(v)
			}
			fromFile[k] = true
			continue
		}
		var v any
		if err := json.Unmarshal(m[k], &v); err != nil {
			return usagef("%s: %s: %v", path, k, err)
		}
		var text string
		switch v := v.(type) {
		case string:
			text = v
		case bool:
			text = strconv.FormatBool(v)
		case float64:
			text = string(m[k])
		default:
			return usagef("%s: %s: give a string, a number or true/false", path, k)
		}
		if err := f.Value.Set(text); err != nil {
			return usagef("%s: %s %s: %v", path, k, text, err)
		}
		fromFile[k] = true
	}
	return nil
}

// runReport is what a live run leaves behind.
type runReport struct {
	Config       *runConfig        `json:"config"`
	Client       string            `json:"client"`
	ServerPeriod int               `json:"server_period_frames"`
	SampleRate   int               `json:"sample_rate"`
	CallbackPrio int               `json:"callback_priority"`
	WorkerPrio   int               `json:"worker_priority"`
	MonitorPrio  int               `json:"monitor_priority"`
	Seconds      float64           `json:"seconds"`
	Callbacks    uint64            `json:"callbacks"`
	Blocks       uint64            `json:"blocks"`
	ServerXruns  uint64            `json:"server_xruns"`
	CallbackUS   stats.Summary     `json:"callback_us"`
	Lanes        []laneReport      `json:"lanes"`
	Failovers    int               `json:"failovers"`
	ByPath       map[string]int    `json:"failovers_by_path"`
	DetectionUS  stats.Summary     `json:"detection_us"`
	FailoverUS   stats.Summary     `json:"failover_us"`
	FailedLanes  []string          `json:"failed_lanes,omitempty"`
	Warnings     []string          `json:"warnings,omitempty"`
	Stopped      string            `json:"stopped"`
	ServerError  string            `json:"server_error,omitempty"`
	LatencyHist  map[string]uint64 `json:"-"`
}

func runLive(args []string, stdout, stderr io.Writer) (err error) {
	c, errs, err := parseRunFlags(args, stdout)
	if err != nil {
		return err
	}
	warnUnsandboxed(c.Unsandboxed, stderr)
	// Every lane's chain is checked before any audio runs, at 48 kHz here
	// and again by New at the server's rate.
	ec, err := engine.Check(c.engineConfig())
	if err != nil {
		return errs.settingError(err)
	}
	if c.Events == "-" {
		ec.EventLog = stdout
	} else if c.Events != "" {
		f, err := os.Create(c.Events)
		if err != nil {
			return usagef("%s: %v", errs.name("events"), err)
		}
		defer f.Close()
		ec.EventLog = f
	}
	if c.Report != "" {
		if err := checkWritable(c.Report); err != nil {
			return usagef("%s: %v", errs.name("report"), err)
		}
	}

	rep := &runReport{Config: c}
	var sess atomic.Pointer[engine.Session] // for the metrics' sources, once running
	met := metrics.New(metrics.Sources{Lanes: c.Lanes,
		Lane: func(l int) audioclock.LaneStats {
			if s := sess.Load(); s != nil {
				return s.LaneStats(l)
			}
			return audioclock.LaneStats{}
		},
		Workers: func() (int, int, int) {
			if s := sess.Load(); s != nil {
				return s.Supervisor().Counts()
			}
			return 0, 0, 0
		},
		DSPLoad: func() float64 {
			if s := sess.Load(); s != nil && s.JACK() != nil {
				return s.JACK().CPULoad()
			}
			return 0
		}})
	defer met.Close()
	ec.OnEvent = func(e supervisor.Event) {
		met.Observe(e)
		if e.Kind == supervisor.EvLaneFailed {
			fmt.Fprintf(stderr, "understudy: %v\n", e.Err)
		}
	}
	ec.Warn = warner(stderr)
	s, err := engine.New(ec)
	if err != nil {
		return errs.settingError(err)
	}
	defer s.Close()
	c.HangTimeout = s.Config().HangTimeout
	if err := s.Start(); err != nil {
		return errs.settingError(err)
	}
	sess.Store(s)
	cli := s.JACK()
	rep.Warnings = s.Warnings()
	rep.CallbackPrio, rep.WorkerPrio, rep.MonitorPrio = cli.RTPriority(), s.WorkerPriority(), s.Supervisor().MonitorPriority()
	rep.Client, rep.ServerPeriod, rep.SampleRate = cli.Name(), cli.BufferSize(), cli.SampleRate()
	if c.Metrics != "" {
		addr, err := met.Serve(c.Metrics)
		if err != nil {
			return usagef("%v", err)
		}
		fmt.Fprintf(stderr, "understudy: metrics on http://%s/metrics\n", addr)
	}
	fmt.Fprintf(stderr, "understudy: JACK client %s, %d lanes × %d channels, %d Hz, server period %d, block %d, added latency %d frames\n",
		rep.Client, c.Lanes, c.Channels, rep.SampleRate, rep.ServerPeriod, c.Block, cli.LatencyFrames())
	defer sdnotify.Serve(s.Periods, stderr)()
	defer startControl(os.Stdin, stderr, s)() // control.go: live parameters

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var until <-chan time.Time
	if c.Duration > 0 {
		until = time.After(c.Duration)
	}
	started := time.Now()
	st := newStatus(stderr)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	rep.Stopped = "duration"
loop:
	for {
		select {
		case sig := <-sigs:
			rep.Stopped = sig.String()
			break loop
		case <-until:
			break loop
		case <-tick.C:
			if err := s.Err(); err != nil {
				rep.Stopped, rep.ServerError = "server", err.Error()
				break loop
			}
			var xr uint64
			for l := range c.Lanes {
				xr += s.LaneStats(l).Xruns
			}
			st.line("  %6.1f s  blocks %d  failovers %d  xruns %d  server xruns %d", time.Since(started).Seconds(),
				cli.Stats().Blocks, s.Tally().Failovers, xr, cli.Stats().ServerXruns)
		}
	}
	st.end()
	if err := s.Err(); err != nil && rep.ServerError == "" {
		rep.Stopped, rep.ServerError = "server", err.Error()
	}
	rep.Seconds = time.Since(started).Seconds()
	s.Stop()
	cs := cli.Stats()
	hist := cli.CallbackTimes()
	rep.CallbackUS = stats.Summary{N: int(cs.Callbacks), P50: float64(hist.Quantile(0.5)) / 1e3,
		P99: float64(hist.Quantile(0.99)) / 1e3, Max: float64(cs.CallbackMax) / 1e3}
	rep.Callbacks, rep.Blocks, rep.ServerXruns = cs.Callbacks, cs.Blocks, cs.ServerXruns
	var xruns uint64
	for l := range c.Lanes {
		ls := s.LaneStats(l)
		rep.Lanes = append(rep.Lanes, laneReport(ls))
		xruns += ls.Xruns
	}
	s.Close() // and with it every event
	t := s.Tally()
	rep.Failovers, rep.ByPath, rep.FailedLanes = t.Failovers, t.ByPath, t.FailedLanes
	rep.DetectionUS, rep.FailoverUS = t.Detection, t.Failover
	fmt.Fprintf(stdout, "understudy run: %.1f s, %d callbacks, %d blocks per lane, %d failovers (%s), %d xruns, callback µs p50/p99/max %s; stopped by %s\n",
		rep.Seconds, rep.Callbacks, rep.Blocks, rep.Failovers, pathCounts(rep.ByPath), xruns, triple(rep.CallbackUS), rep.Stopped)
	if c.Report != "" {
		if err := writeJSON(c.Report, rep); err != nil {
			return err
		}
	}
	if rep.ServerError != "" {
		return fmt.Errorf("the JACK server went away: %s", rep.ServerError)
	}
	if len(rep.FailedLanes) > 0 {
		return fmt.Errorf("%d lane(s) given up: %s", len(rep.FailedLanes), strings.Join(rep.FailedLanes, "; "))
	}
	return nil
}
