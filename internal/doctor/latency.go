package doctor

import (
	"fmt"
	"io"
	"math/bits"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/rt"
)

// HistBuckets is the histogram's size: bucket 0 counts wake-ups under 1 µs
// late, bucket i those in [2^(i-1), 2^i) µs; the last takes everything above.
const HistBuckets = 32

// LatencyResult is what a latency probe saw.
type LatencyResult struct {
	Period  time.Duration
	Periods uint64 // wake-ups measured
	Missed  uint64 // periods skipped because a wake-up came more than a period late
	Hist    [HistBuckets]uint64
	Worst   time.Duration
	Prio    int   // SCHED_FIFO priority it ran at; 0 if refused
	FIFOErr error // why not, when Prio is 0
	Locked  bool  // memory was locked during the probe
	Polling bool  // idle CPUs were held polling (/dev/cpu_dma_latency at 0), as the host holds them
}

// MaxProbe bounds a probe's length: it holds a real-time thread.
const MaxProbe = 10 * time.Minute

// ProbeLatency is a cyclictest-like probe: one locked OS thread at SCHED_FIFO
// prio sleeps to absolute deadlines every period, as the audio clock does,
// and records how late each wake-up is, for duration. When FIFO is refused
// it measures at ordinary priority and says so in FIFOErr.
func ProbeLatency(period, duration time.Duration, prio int) LatencyResult {
	res := LatencyResult{Period: period}
	if period <= 0 || duration <= 0 {
		return res
	}
	duration = min(duration, MaxProbe)
	// Like the host, lock memory so a page fault is not what we measure.
	if rt.Probe().MemLock && rt.LockMemory() == nil {
		res.Locked = true
		defer rt.UnlockMemory()
	}
	// And hold idle CPUs polling, as the host does while it plays (unless
	// --deep-idle): on a VM a halted vCPU wakes milliseconds late.
	if h, err := rt.HoldWakeLatency(0); err == nil {
		res.Polling = true
		defer h.Release()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: Go ends the thread, and its priority with it
		if err := rt.SetThreadFIFO(prio); err != nil {
			res.FIFOErr = err
		} else {
			res.Prio = prio
		}
		probeLoop(&res, uint64(duration/period))
		if res.Prio != 0 {
			rt.SetThreadOther()
		}
	}()
	<-done
	return res
}

// probeLoop sleeps n periods; it allocates nothing, and its one system call
// a period is the sleep.
func probeLoop(res *LatencyResult, n uint64) {
	period := int64(res.Period)
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	// time.Since reads CLOCK_MONOTONIC through the vDSO; base + elapsed is
	// the absolute time clock_nanosleep's deadlines are in.
	base, t0 := ts.Nano(), time.Now()
	next := base + period
	for i := uint64(0); i < n; i++ {
		ts = unix.NsecToTimespec(next)
		for unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &ts, nil) == unix.EINTR {
		}
		now := base + int64(time.Since(t0))
		late := max(now-next, 0)
		res.Hist[bucket(late)]++
		res.Worst = max(res.Worst, time.Duration(late))
		res.Periods++
		next += period
		// A wake-up more than a period late has passed the next deadlines
		// too: skip them, so the next sample measures a wake-up of its own.
		for next <= now {
			next += period
			res.Missed++
		}
	}
}

func bucket(lateNS int64) int {
	return min(bits.Len64(uint64(lateNS/1000)), HistBuckets-1)
}

// Recommend derives settings that this worst case fits: the latency holds a
// late wake-up plus the kernel's own share of a period (half, as the default
// hang timeout assumes), and the hang timeout does not mistake a late
// wake-up for a hang.
func Recommend(worst, period time.Duration) (latency int, hang time.Duration) {
	need := worst + period/2
	latency = max(int((need+period-1)/period), 1)
	step := 100 * time.Microsecond
	if need >= 2*time.Millisecond {
		step = time.Millisecond
	}
	hang = max((need+step-1)/step*step, 500*time.Microsecond)
	return latency, hang
}

// CheckLatency judges a probe against the configured latency and hang
// timeout.
func CheckLatency(res LatencyResult, c Config) Result {
	r := Result{Name: "latency"}
	period := c.Period()
	headroom := time.Duration(c.Latency) * period
	lat, hang := Recommend(res.Worst, period)
	rec := fmt.Sprintf("at this machine's %s worst case, use --latency %d --hang-timeout %s", dur(res.Worst), lat, hang)
	at := fmt.Sprintf("SCHED_FIFO %d", res.Prio)
	if res.Prio == 0 {
		at = "ordinary priority (FIFO refused)"
	}
	switch {
	case res.Periods == 0:
		r.Status = Warn
		r.Finding = "no wake-ups measured"
	case res.Worst+period/2 > headroom || res.Worst >= c.HangTimeout:
		r.Status = Fail
		r.Finding = fmt.Sprintf("worst wake-up %s late at %s, over the configured --latency %d (%s) or --hang-timeout %s: expect xruns and healthy workers killed as hung",
			dur(res.Worst), at, c.Latency, dur(headroom), dur(c.HangTimeout))
		r.Fix = rec
	default:
		r.Finding = fmt.Sprintf("worst wake-up %s late at %s fits --latency %d (%s) and --hang-timeout %s; %s",
			dur(res.Worst), at, c.Latency, dur(headroom), dur(c.HangTimeout), rec)
	}
	return r
}

// WriteLatency prints the probe's histogram.
func WriteLatency(w io.Writer, res LatencyResult, c Config) {
	at := fmt.Sprintf("SCHED_FIFO %d", res.Prio)
	if res.Prio == 0 {
		at = fmt.Sprintf("ordinary priority (SCHED_FIFO refused: %v)", res.FIFOErr)
	}
	locked := "memory locked"
	if !res.Locked {
		locked = "memory not locked"
	}
	if res.Polling {
		locked += ", idle CPUs held polling"
	} else {
		locked += ", idle CPUs free to halt (/dev/cpu_dma_latency not writable)"
	}
	fmt.Fprintf(w, "latency probe: %d wake-ups every %s (%d frames at %d Hz) at %s, %s\n",
		res.Periods, dur(res.Period), c.Block, c.Rate, at, locked)
	last := 0
	var peak uint64
	for i, n := range res.Hist {
		if n > 0 {
			last = i
			peak = max(peak, n)
		}
	}
	for i := 0; i <= last; i++ {
		n := res.Hist[i]
		bar := 0
		if n > 0 {
			// Log scale, so a single stall still shows beside thousands of
			// on-time wake-ups.
			bar = 1 + int(40*float64(bits.Len64(n))/float64(bits.Len64(peak)))
		}
		fmt.Fprintf(w, "  %20s  %8d  %s\n", bucketLabel(i), n, strings.Repeat("#", bar))
	}
	if res.Missed > 0 {
		fmt.Fprintf(w, "  %d periods passed while a wake-up was more than a period late\n", res.Missed)
	}
	fmt.Fprintf(w, "worst case %s; configured --latency %d (%s of headroom at %s a period), --hang-timeout %s\n",
		dur(res.Worst), c.Latency, dur(time.Duration(c.Latency)*c.Period()), dur(c.Period()), dur(c.HangTimeout))
}

func bucketLabel(i int) string {
	us := func(v uint64) string {
		if v >= 1000 {
			return fmt.Sprintf("%g ms", float64(v)/1000)
		}
		return fmt.Sprintf("%d µs", v)
	}
	switch {
	case i == 0:
		return "< 1 µs"
	case i == HistBuckets-1:
		return ">= " + us(1<<(i-1))
	default:
		return us(1<<(i-1)) + " - " + us(1<<i)
	}
}

// dur prints a duration with three significant digits at most.
func dur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.3g s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.3g ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.3g µs", float64(d)/float64(time.Microsecond))
	}
}
