// Package doctor checks whether a machine, and the user running it, can hold
// understudy's real-time deadlines, and says how to fix what it cannot.
//
// Every check is a pure function of what it reads (file contents, limits,
// the outcome of a trial), so each branch is tested with fixture strings; a
// thin reader feeds it the real files. Trials that change something (a
// thread's priority, locked memory, a throwaway worker) undo it before
// returning.
package doctor

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Status is a check's verdict.
type Status int

const (
	OK   Status = iota
	Warn        // works, but a deadline may be missed or a fix would help
	Fail        // understudy cannot run at real-time priority as configured
)

func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Warn:
		return "warn"
	default:
		return "fail"
	}
}

// Result is one check's line.
type Result struct {
	Status  Status
	Name    string
	Finding string
	Fix     string // "" when there is nothing to do
}

// Config is what the checks measure against: the priorities and the period
// the host will run at, and the worker it will start.
type Config struct {
	MonitorPrio, ClockPrio, WorkerPrio int
	Worker                             string // understudy-worker executable
	Lanes                              int    // sizes the worker's shared memory
	Rate, Block                        int    // the audio period
	Latency                            int    // output latency in periods, as demo --latency
	HangTimeout                        time.Duration
	SpinUS                             int // how long a worker spins before it sleeps
}

// Period is one block at the configured rate.
func (c Config) Period() time.Duration {
	return time.Duration(int64(c.Block) * int64(time.Second) / int64(c.Rate))
}

// Names of every check Run performs, in order. The command's test checks
// that a real run prints each.
var Names = []string{
	"rtprio", "memlock", "rttime", "audio-group",
	"fifo", "mlock", "worker-fifo", "worker-memlock",
	"rt-throttle", "cgroup-rt",
	"preempt", "threadirqs", "high-res-timers", "nohz", "clocksource", "isolated-cpus",
	"governor", "smt", "cpu-dma-latency", "swappiness",
	"hypervisor", "cpu",
	"audio-server",
}

// Run performs every check, in the order of Names.
func Run(c Config) []Result {
	host := readHostLimits()
	rs := []Result{
		checkRTPrio(host, c.MonitorPrio),
		checkMemLock(host),
		checkRTTime(host.rtTime, c.Period(), c.SpinUS),
		readAudioGroup(),
	}
	rs = append(rs, checkFIFOTrial(tryFIFO(c)))
	rs = append(rs, checkMLockTrial(tryMLock()))
	w := tryWorker(c)
	rs = append(rs, checkWorkerFIFO(w, c.WorkerPrio), checkWorkerMemLock(w))
	rs = append(rs,
		checkRTThrottle(readTrimmed("/proc/sys/kernel/sched_rt_runtime_us"), readTrimmed("/proc/sys/kernel/sched_rt_period_us")),
		readCgroupRT(),
	)
	k := readKernel()
	rs = append(rs,
		checkPreempt(k),
		checkThreadIRQs(k),
		checkHighRes(k),
		checkNoHZ(k),
		readClocksource(),
		readIsolated(),
		readGovernor(),
		readSMT(),
		readCPUDMALatency(),
		checkSwappiness(readTrimmed("/proc/sys/vm/swappiness")),
		readHypervisor(),
		readCPU(),
		readAudioServers(c.MonitorPrio),
	)
	return rs
}

// Write prints one line per result and returns how many failed.
func Write(w io.Writer, rs []Result) (fails int) {
	width := 0
	for _, r := range rs {
		width = max(width, len(r.Name))
	}
	for _, r := range rs {
		text := r.Finding
		if r.Fix != "" {
			text += " — fix: " + r.Fix
		}
		// One line each, whatever a file or an errno put in the text.
		fmt.Fprintf(w, "%-4s  %-*s  %s\n", r.Status, width, r.Name, oneLine(text))
		if r.Status == Fail {
			fails++
		}
	}
	return fails
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
