package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/understudy-rt/understudy/engine"
	"github.com/understudy-rt/understudy/internal/sdnotify"
	"github.com/understudy-rt/understudy/internal/stats"
	"github.com/understudy-rt/understudy/runtime/audioclock"
	"github.com/understudy-rt/understudy/runtime/catalog"
	"github.com/understudy-rt/understudy/runtime/shm"
	"github.com/understudy-rt/understudy/runtime/wav"
	"github.com/understudy-rt/understudy/supervisor"
)

const demoUsage = `Usage: understudy demo [flags]

Plays audio in real time through lanes of C kernels in worker processes and
injects a fault every --fault-every, cycling through every fault kind, while a
warm spare takes over each failed lane from its last committed state. Then it
renders the same input through a worker that suffers no fault and compares
the two outputs bit for bit.

Fault kinds (--faults all, none, or a comma list):
  segv  abort  bus  fpe    detected by the worker's last gasp
  kill  exit               detected by the worker's death word (pidfd as backstop)
  hang  stop               detected by the lane's deadline

Writes --out (32-bit float WAV, the input's channels, rate and length, latency
compensated) and --report (JSON). Run as root, or with CAP_SYS_NICE and
RLIMIT_MEMLOCK, for real-time priority; without, it runs on ordinary
scheduling and says so.

Flags:
`

// Priorities, highest first: the engine's (doctor and the report name them).
const (
	monitorPrio = engine.MonitorPrio
	clockPrio   = engine.ClockPrio
	workerPrio  = engine.WorkerPrio
)

type demoConfig struct {
	Duration    time.Duration `json:"duration_ns"`
	Rate        int           `json:"rate"`
	Block       int           `json:"block"`
	Lanes       int           `json:"lanes"`
	Spares      int           `json:"spares"`
	Latency     int           `json:"latency_periods"`
	Faults      []string      `json:"faults"`
	FaultEvery  time.Duration `json:"fault_every_ns"`
	HangTimeout time.Duration `json:"hang_timeout_ns"`
	Chain       string        `json:"chain"`
	Variant     string        `json:"variant"`
	outputFlags
	DeepIdle    bool   `json:"deep_idle"`
	Unsandboxed bool   `json:"unsandboxed,omitempty"`
	In          string `json:"in,omitempty"`
	Out         string `json:"out"`
	Report      string `json:"report"`
	ReproDir    string `json:"repro_dir"`
	Plot        string `json:"plot,omitempty"`
	Worker      string `json:"worker"`
}

func parseDemoFlags(args []string, stdout io.Writer) (*demoConfig, error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	// The flag package would print the whole usage after every mistake; we
	// print one line saying what was wrong, and the usage only when asked.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	c := &demoConfig{}
	var faults string
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "length of the generated signal (ignored with --in)")
	fs.IntVar(&c.Rate, "rate", 48000, "sample rate, Hz (8000..192000)")
	fs.IntVar(&c.Block, "block", 64, "frames per block (16..1024)")
	fs.IntVar(&c.Lanes, "lanes", 2, fmt.Sprintf("lanes, each a chain in its own worker (1..%d)", shm.MaxLanes))
	fs.IntVar(&c.Spares, "spares", 1, "warm spare workers shared by all lanes")
	fs.IntVar(&c.Latency, "latency", 2, fmt.Sprintf("output latency in periods (1..%d)", audioclock.MaxLatency))
	fs.StringVar(&faults, "faults", "all", "faults to inject: all, none, or a comma list of segv,bus,abort,fpe,kill,exit,hang,stop")
	fs.DurationVar(&c.FaultEvery, "fault-every", 250*time.Millisecond, "interval between injected faults")
	fs.DurationVar(&c.HangTimeout, "hang-timeout", 0, "a block pending longer than this means its worker hung (default: half a period, at least 500µs)")
	fs.StringVar(&c.Chain, "chain", "lowpass f=4000 q=0.7071 | gain db=-6", "kernels of each lane, '|' between stages")
	fs.StringVar(&c.Variant, "variant", "auto", "kernel variant for every worker: auto (fastest this CPU runs), scalar, sse2, avx2, ...")
	c.outputFlags.register(fs)
	fs.BoolVar(&c.DeepIdle, "deep-idle", false, "let idle CPUs halt (default: hold the CPU wake-up latency at 0 µs while playing, as root)")
	fs.BoolVar(&c.Unsandboxed, "unsandboxed", false, "run workers without their sandbox (uid drop, no capabilities, seccomp), to debug a kernel")
	fs.StringVar(&c.In, "in", "", "input WAV; its channels are split evenly over the lanes (default: a generated test signal)")
	fs.StringVar(&c.Out, "out", defaultOut, "output WAV (a regular file; its directory must exist, except the default ./out)")
	fs.StringVar(&c.Report, "report", defaultReport, "JSON report (a regular file; its directory must exist, except the default ./out)")
	fs.StringVar(&c.ReproDir, "repro-dir", "", "where a bypassed (poison) block is saved for understudy replay (default: --report's directory)")
	fs.StringVar(&c.Plot, "plot", "", "also draw the run into this .svg or .png: detection latency by path, timeline, clock lateness")
	fs.StringVar(&c.Worker, "worker", "", "understudy-worker executable (default: beside this program, then $PATH)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, demoUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil, errHelp
		}
		return nil, usagef("%v (see understudy demo --help)", err)
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q (see understudy demo --help)", fs.Arg(0))
	}
	switch {
	case c.Duration <= 0 && c.In == "":
		return nil, usagef("--duration %v must be positive", c.Duration)
	case c.FaultEvery <= 0:
		return nil, usagef("--fault-every %v must be positive", c.FaultEvery)
	case c.Plot != "" && !strings.HasSuffix(c.Plot, ".svg") && !strings.HasSuffix(c.Plot, ".png"):
		return nil, usagef("--plot %s: give a .svg or .png file", c.Plot)
	}
	// The numbers, as the engine will take them (a generated signal has
	// one channel a lane; an input's are checked once it is read).
	ec := c.engineConfig(1)
	if err := ec.Validate(); err != nil {
		return nil, demoErrs.settingError(err)
	}
	switch faults {
	case "all":
		for _, f := range supervisor.Faults {
			c.Faults = append(c.Faults, f.String())
		}
	case "none", "":
	default:
		for _, name := range strings.Split(faults, ",") {
			f, err := supervisor.ParseFault(strings.TrimSpace(name))
			if err != nil {
				return nil, usagef("--faults: %v", err)
			}
			c.Faults = append(c.Faults, f.String())
		}
	}
	if len(c.Faults) > 0 && c.Spares == 0 {
		return nil, usagef("--spares 0 with faults to inject: every fault would silence a lane; use --spares 1 or more, or --faults none")
	}
	if c.Worker == "" {
		c.Worker = defaultWorker()
	}
	return c, nil
}

var demoErrs = errStyle{oneChain: true, perLane: true}

// engineConfig is the demo's session, perLane channels a lane.
func (c *demoConfig) engineConfig(perLane int) engine.Config {
	lanes := make([]engine.Lane, c.Lanes)
	for i := range lanes {
		lanes[i] = engine.Lane{Chain: c.Chain, Channels: perLane}
	}
	o := c.Output
	return engine.Config{Backend: engine.Timer, Worker: c.Worker, Lanes: lanes, Rate: c.Rate, Block: c.Block,
		Latency: c.Latency, Spares: c.Spares, HangTimeout: c.HangTimeout, Variant: c.Variant, Output: &o,
		DeepIdle: c.DeepIdle, Unsandboxed: c.Unsandboxed, ReproDir: c.ReproDir}
}

// defaultWorker is the engine's: beside this program, then $PATH.
func defaultWorker() string { return engine.WorkerPath() }

type injected struct {
	inj       supervisor.Injection
	event     *supervisor.Event
	detectUS  float64
	failoverU float64
}

const (
	defaultOut    = "out/demo.wav"
	defaultReport = "out/demo-report.json"
)

func runDemo(args []string, stdout, stderr io.Writer) (err error) {
	c, err := parseDemoFlags(args, stdout)
	if err != nil {
		return err
	}
	warnUnsandboxed(c.Unsandboxed, stderr)

	// Input: every lane's samples, interleaved over its own channels.
	var channels, frames int
	var laneIn [][]float32
	if c.In != "" {
		a, err := wav.Read(c.In)
		if err != nil {
			return usagef("--in: %v", err)
		}
		if a.Rate != c.Rate {
			return usagef("--in %s is %d Hz but --rate is %d: pass --rate %d, or resample the file", c.In, a.Rate, c.Rate, a.Rate)
		}
		if err := checkInput(c.In, a.Channels, int64(a.Frames()), c.Lanes); err != nil {
			return err
		}
		channels, frames = a.Channels, a.Frames()
		laneIn = splitLanes(a.Samples, channels, c.Lanes)
		c.Duration = time.Duration(int64(frames) * int64(time.Second) / int64(c.Rate))
	} else {
		channels = c.Lanes
		frames = int(int64(c.Duration) * int64(c.Rate) / int64(time.Second))
		laneIn = generateSignal(c.Lanes, frames, c.Rate)
	}
	// Everything the engine can check, before any file is claimed.
	ec, err := engine.Check(c.engineConfig(channels / c.Lanes))
	if err != nil {
		return demoErrs.settingError(err)
	}

	// Claim the outputs first, so an unwritable path fails before any audio.
	// Only the defaults' ./out is created here: it is where the demo says
	// it writes, while a directory the user names must exist (a typo in it
	// should be an error, not a new directory tree).
	if c.Out == defaultOut || c.Report == defaultReport {
		if err := os.MkdirAll(filepath.Dir(defaultOut), 0o755); err != nil {
			return usagef("cannot create the directory %s for the default outputs: %v; pass --out and --report", filepath.Dir(defaultOut), err)
		}
	}
	out, err := wav.Create(c.Out, c.Rate, channels)
	if err != nil {
		return usagef("--out: %v", err)
	}
	defer func() {
		if err != nil {
			out.Abort()
		}
	}()
	if err := checkWritable(c.Report); err != nil {
		return usagef("--report: %v", err)
	}
	if c.ReproDir == "" {
		c.ReproDir = filepath.Dir(c.Report)
	} else if err := checkReproDir(c.ReproDir); err != nil {
		return err
	}
	ec.ReproDir = c.ReproDir
	if c.Plot != "" {
		if err := checkWritable(c.Plot); err != nil {
			return usagef("--plot: %v", err)
		}
	}

	rtRes, privileged, err := realtimeRun(c, ec, laneIn, stdout, stderr)
	if err != nil {
		return demoErrs.settingError(err)
	}

	// The reference: the same input, kernels and block size, in a worker
	// that suffers no fault, as fast as it goes.
	ref, err := referenceRun(ec, laneIn)
	if err != nil {
		return fmt.Errorf("reference run: %w", err)
	}
	mismatched := 0
	for l := range laneIn {
		for i := range ref[l] {
			if math.Float32bits(ref[l][i]) != math.Float32bits(rtRes.out[l][i]) {
				mismatched++
			}
		}
	}

	rep := buildReport(c, rtRes, privileged, mismatched)
	if err := out.Write(joinLanes(rtRes.out, channels, frames)); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := writeJSON(c.Report, rep); err != nil {
		return err
	}
	printSummary(stdout, c, rep)
	if c.Plot != "" {
		if err := drawDemo(c.Plot, c, rep); err != nil {
			return fmt.Errorf("--plot: %w", err)
		}
		fmt.Fprintf(stdout, "drew %s\n", c.Plot)
	}
	return nil
}

type rtResult struct {
	out        [][]float32
	blockFlags [][]uint32
	received   int
	stats      []audioclock.LaneStats
	events     []supervisor.Event
	injections []*injected
	lateMax    time.Duration
	monStalls  uint64
	deadlines  []laneDeadline
	overruns   uint64
	earlyFence uint64
	wordDeaths uint64
	lateHist   [32]uint64
	rtWarnings []string
	startNS    uint64
}

// realtimeRun plays laneIn through an engine session on its own timer,
// injecting faults, and gathers what the report needs.
func realtimeRun(c *demoConfig, ec engine.Config, laneIn [][]float32, stdout, stderr io.Writer) (*rtResult, bool, error) {
	per := ec.Lanes[0].Channels
	nBlocks := (len(laneIn[0])/per + c.Block - 1) / c.Block
	// The clock's pumps feed and drain it: input from laneIn, output into
	// res.out, each lane's blocks in order on its own goroutine.
	res := &rtResult{}
	res.out = make([][]float32, c.Lanes)
	res.blockFlags = make([][]uint32, c.Lanes)
	received := make([]int, c.Lanes) // per lane: one drainer writes each
	for l := range res.out {
		res.out[l] = make([]float32, len(laneIn[l]))
		res.blockFlags[l] = make([]uint32, nBlocks)
	}
	ec.Periods = uint64(nBlocks + c.Latency)
	ec.Feed = func(l int, n uint64, d []float32) (uint32, bool) {
		if n >= uint64(nBlocks) {
			return 0, false
		}
		per := uint64(len(d))
		m := copy(d, laneIn[l][n*per:min((n+1)*per, uint64(len(laneIn[l])))])
		clear(d[m:])
		if n == uint64(nBlocks-1) {
			return shm.BlockLast, true
		}
		return 0, true
	}
	ec.Drain = func(l int, n uint64, flags uint32, d []float32) {
		if n < uint64(nBlocks) {
			lo := n * uint64(len(d))
			copy(res.out[l][lo:min(lo+uint64(len(d)), uint64(len(res.out[l])))], d)
			res.blockFlags[l][n] = flags
		}
		received[l]++
	}
	var evMu sync.Mutex
	ec.OnEvent = func(e supervisor.Event) {
		evMu.Lock()
		res.events = append(res.events, e)
		evMu.Unlock()
	}
	ec.LockMemory = true
	ec.Warn = warner(stderr)
	s, err := engine.New(ec)
	if err != nil {
		return nil, false, err
	}
	defer s.Close()
	c.HangTimeout = s.Config().HangTimeout
	if err := s.Start(); err != nil {
		return nil, false, err
	}
	// Under systemd (Type=notify): ready now, watchdog fed while periods advance.
	defer sdnotify.Serve(s.Periods, stderr)()

	// Inject faults, cycling kinds and lanes, until shortly before the end so
	// the last failover completes while the clock still runs.
	var kinds []supervisor.Fault
	for _, n := range c.Faults {
		f, _ := supervisor.ParseFault(n)
		kinds = append(kinds, f)
	}
	stopInject := make(chan struct{})
	injDone := make(chan struct{})
	go func() {
		defer close(injDone)
		if len(kinds) == 0 {
			return
		}
		tick := time.NewTicker(c.FaultEvery)
		defer tick.Stop()
		lastAllowed := uint64(nBlocks) - uint64(max(int(100*time.Millisecond/s.Period()), 8))
		for i := 0; ; i++ {
			select {
			case <-stopInject:
				return
			case <-tick.C:
			}
			now := s.Periods()
			if now >= lastAllowed || uint64(nBlocks) < 16 {
				return
			}
			f := kinds[i%len(kinds)]
			inj, err := s.InjectFault(i%len(laneIn), f, now+2)
			if err != nil {
				continue // the lane is between owners: try the next tick
			}
			res.injections = append(res.injections, &injected{inj: inj})
		}
	}()

	// One live status line while it plays.
	st := newStatus(stderr)
	statusEvery := time.Second
	if st.tty {
		statusEvery = 200 * time.Millisecond
	}
	tick := time.NewTicker(statusEvery)
	for s.Running() {
		select {
		case <-tick.C:
			evMu.Lock()
			fo := countKind(res.events, supervisor.EvFailover)
			evMu.Unlock()
			xr, delivered := uint64(0), uint64(0)
			for l := range laneIn {
				ls := s.LaneStats(l)
				xr += ls.Xruns
				delivered += ls.Delivered
			}
			// Blocks as the summary counts them: output delivered, of the
			// input's; the first Latency periods deliver nothing.
			st.line("  %5.1f s  blocks %d/%d  failovers %d  xruns %d", float64(s.Periods())*s.Period().Seconds(),
				delivered, uint64(nBlocks)*uint64(len(laneIn)), fo, xr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	tick.Stop()
	st.end()
	close(stopInject)
	<-injDone
	s.Wait() // the thread and its pumps
	for _, n := range received {
		res.received += n
	}

	// Let the last failovers report (they finish within milliseconds).
	settle := time.Now().Add(2 * time.Second)
	for time.Now().Before(settle) {
		evMu.Lock()
		done := countKind(res.events, supervisor.EvFailover)+countKind(res.events, supervisor.EvNoSpare) >= len(res.injections)
		evMu.Unlock()
		if done {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // respawned spares' ready events
	sup, clk := s.Supervisor(), s.Clock()
	for l := range laneIn {
		res.stats = append(res.stats, s.LaneStats(l))
	}
	res.lateMax, res.lateHist = clk.Lateness()
	res.monStalls = sup.MonitorStalls()
	for l := range laneIn {
		ns, bound := sup.Deadline(l)
		res.deadlines = append(res.deadlines, laneDeadline{Lane: l, US: float64(ns) / 1e3, Bound: bound.String()})
	}
	res.overruns = sup.Overruns()
	res.earlyFence = sup.EarlyFences()
	res.wordDeaths = sup.WordDeaths()
	res.startNS = clk.StartNS()
	s.Close() // and with it every event
	res.rtWarnings = s.Warnings()
	// Match each injection to the failover of the worker it was aimed at.
	for _, in := range res.injections {
		for i := range res.events {
			e := &res.events[i]
			if (e.Kind == supervisor.EvFailover || e.Kind == supervisor.EvNoSpare) && e.PID == in.inj.PID {
				in.event = e
				if in.inj.Fault == supervisor.FaultKill {
					e.FaultNS = in.inj.InjectNS
				}
				break
			}
		}
	}
	return res, s.Privileged(), nil
}

// referenceRun renders laneIn offline through the same lanes: the output
// a run without faults must match bit for bit.
func referenceRun(ec engine.Config, laneIn [][]float32) ([][]float32, error) {
	ec.Backend, ec.Spares, ec.Feed, ec.Drain, ec.OnEvent, ec.LockMemory = engine.Offline, 0, nil, nil, nil, false
	s, err := engine.New(ec)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	out := make([][]float32, len(laneIn))
	for l := range laneIn {
		if out[l], err = s.Render(l, laneIn[l]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// loadCatalog checks the worker binary and asks it for its kernels; every
// failure is the user's to fix (a missing or wrong worker).
func loadCatalog(worker string, unsandboxed bool) (*catalog.Catalog, error) {
	cat, err := engine.LoadCatalog(context.Background(), worker, unsandboxed)
	return cat, errStyle{}.settingError(err)
}

// warnUnsandboxed says, once, that --unsandboxed took the workers' walls down.
func warnUnsandboxed(on bool, stderr io.Writer) {
	if on {
		fmt.Fprintln(stderr, "understudy: warning: --unsandboxed: workers run with this program's privileges and no seccomp filter; a kernel can reach everything it can")
	}
}

func countKind(evs []supervisor.Event, k supervisor.EventKind) int {
	n := 0
	for _, e := range evs {
		if e.Kind == k {
			n++
		}
	}
	return n
}

func splitLanes(s []float32, channels, lanes int) [][]float32 {
	per := channels / lanes
	frames := len(s) / channels
	out := make([][]float32, lanes)
	for l := range out {
		out[l] = make([]float32, frames*per)
		for f := 0; f < frames; f++ {
			copy(out[l][f*per:(f+1)*per], s[f*channels+l*per:f*channels+(l+1)*per])
		}
	}
	return out
}

func joinLanes(lanes [][]float32, channels, frames int) []float32 {
	per := channels / len(lanes)
	out := make([]float32, frames*channels)
	for l, s := range lanes {
		for f := 0; f < frames; f++ {
			copy(out[f*channels+l*per:f*channels+(l+1)*per], s[f*per:(f+1)*per])
		}
	}
	return out
}

// generateSignal makes one channel per lane: a logarithmic sine sweep from
// 50 Hz to 0.4·rate plus quiet white noise from a fixed seed, different per
// lane, so filters have something to do and runs are reproducible.
func generateSignal(lanes, frames, rate int) [][]float32 {
	out := make([][]float32, lanes)
	seed := uint32(0x9e3779b9)
	dur := float64(frames) / float64(rate)
	f0, f1 := 50.0, 0.4*float64(rate)
	for l := range out {
		out[l] = make([]float32, frames)
		phase := float64(l) * 0.25
		for i := range out[l] {
			t := float64(i) / float64(rate)
			// instantaneous frequency f0·(f1/f0)^(t/dur), phase its integral
			k := math.Log(f1/f0) / dur
			ph := 2*math.Pi*f0*(math.Exp(k*t)-1)/k + phase
			seed = seed*1664525 + 1013904223
			noise := (float64(seed>>8)/float64(1<<24) - 0.5) * 0.1
			out[l][i] = float32(0.5*math.Sin(ph) + noise)
		}
	}
	return out
}

func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminalFD(int(f.Fd()))
}

func sortedKinds(m map[string]*kindReport) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	order := map[string]int{}
	for i, f := range supervisor.Faults {
		order[f.String()] = i
	}
	sort.Slice(ks, func(i, j int) bool { return order[ks[i]] < order[ks[j]] })
	return ks
}

var _ = stats.Summarize
