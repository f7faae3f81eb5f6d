package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/understudy-rt/understudy/internal/doctor"
	"github.com/understudy-rt/understudy/runtime/audioclock"
	"github.com/understudy-rt/understudy/runtime/shm"
)

const doctorUsage = `Usage: understudy doctor [flags]

Checks whether this machine, and the user running it, can hold understudy's
real-time deadlines: one line per check (ok, warn or fail), with the fix.
Run it as the user who will run understudy. It tries what the host will do:
SCHED_FIFO at the monitor's and the clock's priorities on a throwaway thread,
locking its memory, and setting a throwaway worker to SCHED_FIFO from outside.

With --latency DURATION it then sleeps to a deadline every period at the
clock's priority, as the audio clock does, and prints how late the wake-ups
were, against the configured --periods and --hang-timeout, with settings the
measured worst case fits.

Exit status: 0 no check failed, 1 a check failed, 2 bad usage.

Flags:
`

func runDoctor(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var c doctor.Config
	var probe time.Duration
	fs.DurationVar(&probe, "latency", 0, fmt.Sprintf("run the latency probe for this long (e.g. 10s; at most %v)", doctor.MaxProbe))
	fs.IntVar(&c.Latency, "periods", 2, "output latency in periods to judge the probe against (demo's --latency)")
	fs.IntVar(&c.Rate, "rate", 48000, "sample rate, Hz (8000..192000)")
	fs.IntVar(&c.Block, "block", 64, "frames per block (16..1024)")
	fs.DurationVar(&c.HangTimeout, "hang-timeout", 0, "hang timeout to judge the probe against (default: half a period, at least 500µs)")
	fs.IntVar(&c.Lanes, "lanes", 2, "lanes, which size the worker's shared memory")
	fs.StringVar(&c.Worker, "worker", "", "understudy-worker executable (default: $UNDERSTUDY_WORKER, then beside this program, then $PATH)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, doctorUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return errHelp
		}
		return usagef("%v (see understudy doctor --help)", err)
	}
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected argument %q (see understudy doctor --help)", fs.Arg(0))
	case probe < 0 || probe > doctor.MaxProbe:
		return usagef("--latency %v is out of range: use 0 (no probe) up to %v", probe, doctor.MaxProbe)
	case c.Rate < 8000 || c.Rate > 192000:
		return usagef("--rate %d is out of range: use 8000..192000 Hz", c.Rate)
	case c.Block < 16 || c.Block > shm.MaxFrames:
		return usagef("--block %d is out of range: use 16..%d frames", c.Block, shm.MaxFrames)
	case c.Latency < 1 || c.Latency > audioclock.MaxLatency:
		return usagef("--periods %d is out of range: use 1..%d", c.Latency, audioclock.MaxLatency)
	case c.Lanes < 1 || c.Lanes > shm.MaxLanes:
		return usagef("--lanes %d: a region holds 1..%d lanes", c.Lanes, shm.MaxLanes)
	case c.HangTimeout < 0:
		return usagef("--hang-timeout %v must be positive", c.HangTimeout)
	}
	if c.HangTimeout == 0 {
		c.HangTimeout = max(c.Period()/2, 500*time.Microsecond)
	}
	if c.Worker == "" {
		c.Worker = os.Getenv("UNDERSTUDY_WORKER")
	}
	if c.Worker == "" {
		c.Worker = defaultWorker()
	}
	c.MonitorPrio, c.ClockPrio, c.WorkerPrio = monitorPrio, clockPrio, workerPrio

	// The supervisor's default: an idle worker spins this long before it sleeps.
	c.SpinUS = 20

	rs := doctor.Run(c)
	fails := doctor.Write(stdout, rs)
	n := len(rs)
	if probe > 0 {
		fmt.Fprintln(stdout)
		res := doctor.ProbeLatency(c.Period(), probe, c.ClockPrio)
		doctor.WriteLatency(stdout, res, c)
		fails += doctor.Write(stdout, []doctor.Result{doctor.CheckLatency(res, c)})
		n++
	}
	if fails > 0 {
		return fmt.Errorf("%d of %d checks failed", fails, n)
	}
	return nil
}
