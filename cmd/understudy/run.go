package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/understudy-rt/understudy/internal/metrics"
	"github.com/understudy-rt/understudy/internal/sdnotify"
	"github.com/understudy-rt/understudy/internal/stats"
	"github.com/understudy-rt/understudy/rt"
	"github.com/understudy-rt/understudy/runtime/audioclock"
	"github.com/understudy-rt/understudy/runtime/chain"
	"github.com/understudy-rt/understudy/runtime/jack"
	"github.com/understudy-rt/understudy/runtime/shm"
	"github.com/understudy-rt/understudy/supervisor"
)

const runUsage = `Usage: understudy run --backend jack [flags]

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

func parseRunFlags(args []string, stdout io.Writer) (*runConfig, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	c := &runConfig{}
	var lanes, connIn, connOut laneFlags
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
			return nil, errHelp
		}
		return nil, usagef("%v (see understudy run --help)", err)
	}
	c.ConnectIn, c.ConnectOut = connIn, connOut
	switch {
	case fs.NArg() > 0:
		return nil, usagef("unexpected argument %q (see understudy run --help)", fs.Arg(0))
	case c.Backend == "":
		return nil, usagef("--backend is required: understudy run --backend jack")
	case c.Backend != "jack":
		return nil, usagef("--backend %q: the one backend is jack", c.Backend)
	case c.Block < 16 || c.Block > shm.MaxFrames:
		return nil, usagef("--block %d is out of range: use 16..%d frames", c.Block, shm.MaxFrames)
	case c.Channels < 1 || c.Channels > shm.MaxChannels || c.Channels*c.Block > shm.SlotSamples:
		return nil, usagef("--channels %d at --block %d: use 1..%d channels, at most %d samples a block", c.Channels, c.Block, shm.MaxChannels, shm.SlotSamples)
	case c.Latency < 1 || c.Latency > audioclock.MaxLatency:
		return nil, usagef("--latency %d is out of range: use 1..%d blocks", c.Latency, audioclock.MaxLatency)
	case c.Duration < 0:
		return nil, usagef("--duration %v must be positive", c.Duration)
	}
	if err := c.outputFlags.check(c.Block); err != nil {
		return nil, err
	}
	if len(lanes) > 0 {
		c.LaneChains = make([]string, len(lanes))
		for _, l := range lanes {
			i, ch, ok := strings.Cut(l, "=")
			n, err := strconv.Atoi(strings.TrimSpace(i))
			if !ok || err != nil || n < 0 || n >= len(lanes) || n >= shm.MaxLanes {
				return nil, usagef("--lane %q: write I=CHAIN with I from 0 to %d, one per lane", l, min(len(lanes), shm.MaxLanes)-1)
			}
			if c.LaneChains[n] != "" {
				return nil, usagef("--lane %d given twice", n)
			}
			c.LaneChains[n] = strings.TrimSpace(ch)
		}
		c.Lanes = len(lanes)
	} else {
		if c.Lanes < 1 || c.Lanes > shm.MaxLanes {
			return nil, usagef("--lanes %d: use 1..%d", c.Lanes, shm.MaxLanes)
		}
		for i := 0; i < c.Lanes; i++ {
			c.LaneChains = append(c.LaneChains, c.Chain)
		}
	}
	if c.Spares < 0 || c.Lanes+c.Spares > shm.MaxSlots/2 {
		return nil, usagef("--spares %d: lanes + spares must be at most %d", c.Spares, shm.MaxSlots/2)
	}
	if c.Worker == "" {
		c.Worker = defaultWorker()
	}
	return c, nil
}

// runReport is what a live run leaves behind.
type runReport struct {
	Config       *runConfig        `json:"config"`
	Client       string            `json:"client"`
	ServerPeriod int               `json:"server_period_frames"`
	SampleRate   int               `json:"sample_rate"`
	CallbackPrio int               `json:"callback_priority"`
	WorkerPrio   int               `json:"worker_priority"`
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
	c, err := parseRunFlags(args, stdout)
	if err != nil {
		return err
	}
	warnUnsandboxed(c.Unsandboxed, stderr)
	cat, err := loadCatalog(c.Worker, c.Unsandboxed)
	if err != nil {
		return err
	}
	// Every lane's chain is checked before any audio runs.
	lanes := make([]shm.LaneConfig, c.Lanes)
	for i, spec := range c.LaneChains {
		if spec == "" {
			return usagef("--lane %d is missing: give one --lane I=CHAIN for each lane from 0", i)
		}
		st, err := chain.Parse(spec, cat)
		if err != nil {
			return usagef("lane %d: %v", i, err)
		}
		// The rate is the server's; the chain's design is checked at 48 kHz
		// here and again at the server's rate below.
		if lanes[i], err = chain.LaneConfig(st, c.Channels, c.Block, 48000, c.Variant); err != nil {
			return usagef("lane %d: %v", i, err)
		}
	}
	var events io.Writer
	if c.Events == "-" {
		events = stdout
	} else if c.Events != "" {
		f, err := os.Create(c.Events)
		if err != nil {
			return usagef("--events: %v", err)
		}
		defer f.Close()
		events = f
	}
	if c.Report != "" {
		if err := checkWritable(c.Report); err != nil {
			return usagef("--report: %v", err)
		}
	}

	// The server's rate decides the lanes' design: ask it first, with a
	// throwaway clock over throwaway lanes.
	rate, err := jackRate(c, lanes)
	if err != nil {
		return err
	}
	for i, spec := range c.LaneChains {
		st, _ := chain.Parse(spec, cat)
		if lanes[i], err = chain.LaneConfig(st, c.Channels, c.Block, rate, c.Variant); err != nil {
			return usagef("lane %d at the server's %d Hz: %v", i, rate, err)
		}
	}
	if c.HangTimeout == 0 {
		c.HangTimeout = max(time.Duration(int64(c.Block)*int64(time.Second)/int64(rate))/2, 500*time.Microsecond)
	}

	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), 8))
	priv := rt.Probe()
	monPrio := 0
	if priv.FIFO {
		monPrio = monitorPrio
	} else if w := priv.Warning(); w != "" {
		fmt.Fprintf(stderr, "understudy: warning: %s\n", w)
	}
	sup, err := supervisor.New(supervisor.Config{Worker: c.Worker, Lanes: lanes, Spares: c.Spares, HangTimeout: c.HangTimeout,
		MonitorPrio: monPrio, WorkerCPU: -1, Unsandboxed: c.Unsandboxed})
	if err != nil {
		return classify(err)
	}
	defer sup.Close()
	refs := make([]*shm.Lane, len(lanes))
	for i := range refs {
		refs[i] = sup.Region().Lane(i)
	}
	ccfg := audioclock.Config{Rate: rate, Frames: c.Block, Latency: c.Latency, CPU: -1, Doorbell: sup.Doorbell(), Lanes: refs}
	c.outputFlags.apply(&ccfg)
	clk, err := audioclock.New(ccfg)
	if err != nil {
		return err
	}
	defer clk.Free()

	rep := &runReport{Config: c, ByPath: map[string]int{}}
	var client atomic.Pointer[jack.Client] // for the DSP load, once open
	met := metrics.New(metrics.Sources{Lanes: len(lanes), Lane: clk.Stats, Workers: sup.Counts,
		DSPLoad: func() float64 {
			if c := client.Load(); c != nil {
				return c.CPULoad()
			}
			return 0
		}})
	defer met.Close()
	// A run lasts days: what the events say is folded into counters and
	// fixed-size histograms as they come, never kept one by one.
	var evMu sync.Mutex
	var detH, foH stats.Hist
	evDone := make(chan struct{})
	go func() {
		defer close(evDone)
		enc := (*json.Encoder)(nil)
		if events != nil {
			enc = json.NewEncoder(events)
		}
		for e := range sup.Events() {
			met.Observe(e)
			evMu.Lock()
			switch e.Kind {
			case supervisor.EvFailover:
				rep.Failovers++
				rep.ByPath[e.Path.String()]++
				if e.FaultNS != 0 {
					detH.Add(e.Detection())
				}
				foH.Add(e.Failover())
			case supervisor.EvLaneFailed:
				rep.FailedLanes = append(rep.FailedLanes, e.Err.Error())
			}
			evMu.Unlock()
			if enc != nil {
				enc.Encode(eventJSON(e))
			}
			if e.Kind == supervisor.EvLaneFailed {
				fmt.Fprintf(stderr, "understudy: %v\n", e.Err)
			}
		}
	}()
	if err := sup.Start(clk); err != nil {
		return classify(err)
	}
	cli, err := jack.Open(jack.Config{Name: c.Name, Server: c.Server, Clock: clk, ConnectInputs: c.ConnectIn, ConnectOutputs: c.ConnectOut})
	if err != nil {
		return jackError(err)
	}
	defer cli.Close()
	if err := cli.Activate(); err != nil {
		return jackError(err)
	}
	// Workers below the callback thread, so a hung one cannot starve the
	// server; the monitor above it.
	rep.CallbackPrio = cli.RTPriority()
	if rep.CallbackPrio > 1 && priv.FIFO {
		rep.WorkerPrio = rep.CallbackPrio - 1
		if err := sup.SetWorkerPriority(rep.WorkerPrio); err != nil {
			rep.Warnings = append(rep.Warnings, err.Error())
		}
		if rep.CallbackPrio >= monPrio {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("the JACK callback runs at FIFO %d, at or above the monitor's %d", rep.CallbackPrio, monPrio))
		}
	} else {
		rep.Warnings = append(rep.Warnings, "the JACK callback is not real-time (start jackd with -R): workers run on ordinary scheduling")
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(stderr, "understudy: warning: %s\n", w)
	}
	rep.Client, rep.ServerPeriod, rep.SampleRate = cli.Name(), cli.BufferSize(), cli.SampleRate()
	client.Store(cli)
	if c.Metrics != "" {
		addr, err := met.Serve(c.Metrics)
		if err != nil {
			return usagef("%v", err)
		}
		fmt.Fprintf(stderr, "understudy: metrics on http://%s/metrics\n", addr)
	}
	fmt.Fprintf(stderr, "understudy: JACK client %s, %d lanes × %d channels, %d Hz, server period %d, block %d, added latency %d frames\n",
		rep.Client, c.Lanes, c.Channels, rep.SampleRate, rep.ServerPeriod, c.Block, cli.LatencyFrames())
	defer sdnotify.Serve(clk.Periods, stderr)()
	defer startControl(os.Stdin, stderr, sup, clk, cat, c.LaneChains)() // control.go: live parameters

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var until <-chan time.Time
	if c.Duration > 0 {
		until = time.After(c.Duration)
	}
	started := time.Now()
	tty := isTTY(stderr)
	status := time.NewTicker(time.Second)
	defer status.Stop()
	rep.Stopped = "duration"
loop:
	for {
		select {
		case s := <-sigs:
			rep.Stopped = s.String()
			break loop
		case <-until:
			break loop
		case <-status.C:
			if err := cli.Err(); err != nil {
				rep.Stopped, rep.ServerError = "server", err.Error()
				break loop
			}
			evMu.Lock()
			fo := rep.Failovers
			evMu.Unlock()
			var xr uint64
			for l := range lanes {
				xr += clk.Stats(l).Xruns
			}
			line := fmt.Sprintf("  %6.1f s  blocks %d  failovers %d  xruns %d  server xruns %d", time.Since(started).Seconds(),
				cli.Stats().Blocks, fo, xr, cli.Stats().ServerXruns)
			if tty {
				fmt.Fprintf(stderr, "\r%s\x1b[K", line)
			} else {
				fmt.Fprintln(stderr, line)
			}
		}
	}
	if tty {
		fmt.Fprintln(stderr)
	}
	if err := cli.Err(); err != nil && rep.ServerError == "" {
		rep.Stopped, rep.ServerError = "server", err.Error()
	}
	rep.Seconds = time.Since(started).Seconds()
	st := cli.Stats()
	hist := cli.CallbackTimes()
	rep.CallbackUS = stats.Summary{N: int(st.Callbacks), P50: float64(hist.Quantile(0.5)) / 1e3,
		P99: float64(hist.Quantile(0.99)) / 1e3, Max: float64(st.CallbackMax) / 1e3}
	rep.Callbacks, rep.Blocks, rep.ServerXruns = st.Callbacks, st.Blocks, st.ServerXruns
	cli.Close()
	for l := range lanes {
		rep.Lanes = append(rep.Lanes, laneReport(clk.Stats(l)))
	}
	sup.Close()
	<-evDone
	rep.DetectionUS, rep.FailoverUS = detH.Summary(), foH.Summary()
	var xruns uint64
	for _, l := range rep.Lanes {
		xruns += l.Xruns
	}
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

// jackRate asks the server its sample rate, with a client that never
// activates over a throwaway clock: the lanes' filters are designed for it.
func jackRate(c *runConfig, lanes []shm.LaneConfig) (int, error) {
	r, err := shm.Create([]shm.LaneConfig{{Channels: 1, Frames: c.Block, Rate: 48000}})
	if err != nil {
		return 0, err
	}
	defer r.Close()
	l := r.Lane(0)
	clk, err := audioclock.New(audioclock.Config{Rate: 48000, Frames: c.Block, Latency: c.Latency, CPU: -1, Doorbell: -1,
		Lanes: []*shm.Lane{l}})
	if err != nil {
		return 0, err
	}
	defer clk.Free()
	cli, err := jack.Open(jack.Config{Name: c.Name + "-probe", Server: c.Server, Clock: clk})
	if err != nil {
		return 0, jackError(err)
	}
	defer cli.Close()
	return cli.SampleRate(), nil
}

// jackError turns the JACK package's typed errors into one line with the
// fix; a missing server or library is the user's to fix (exit 2).
func jackError(err error) error {
	var je *jack.Error
	if errors.As(err, &je) && (errors.Is(err, jack.ErrNoLibrary) || errors.Is(err, jack.ErrNoServer) ||
		errors.Is(err, jack.ErrBlockSize) || errors.Is(err, jack.ErrName)) {
		return usagef("%v", err)
	}
	return err
}

// eventJSON is one event as a line of --events.
func eventJSON(e supervisor.Event) map[string]any {
	m := map[string]any{"kind": e.Kind.String(), "lane": e.Lane, "slot": e.Slot, "pid": e.PID}
	switch e.Kind {
	case supervisor.EvFailover, supervisor.EvNoSpare:
		m["path"] = e.Path.String()
		m["block"] = e.Block
		m["detect_ns"] = e.DetectNS
		m["new_pid"] = e.NewPID
		if e.FaultNS != 0 { // known only for injected faults
			m["detection_us"] = float64(e.Detection()) / 1e3
		}
		m["failover_us"] = float64(e.Failover()) / 1e3
		m["poisoned"] = e.Poisoned
	case supervisor.EvWorkerExited:
		m["exit_code"], m["exit_signal"] = e.ExitCode, e.ExitSignal
	case supervisor.EvSpawnFailed, supervisor.EvLaneFailed:
		m["error"] = e.Err.Error()
	}
	return m
}
