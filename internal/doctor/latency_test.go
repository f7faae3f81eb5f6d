package doctor

import (
	"strings"
	"testing"
	"time"

	"github.com/understudy-rt/understudy/internal/rttest"
)

func TestRecommend(t *testing.T) {
	p := time.Second * 64 / 48000
	cases := []struct {
		worst   time.Duration
		latency int
		hang    time.Duration
	}{
		{7 * time.Millisecond, 6, 8 * time.Millisecond}, // the VM
		{0, 1, 700 * time.Microsecond},
		{50 * time.Microsecond, 1, 800 * time.Microsecond},
		{900 * time.Microsecond, 2, 1600 * time.Microsecond},
		{23 * time.Millisecond, 18, 24 * time.Millisecond},
	}
	for _, c := range cases {
		l, h := Recommend(c.worst, p)
		if l != c.latency || h != c.hang {
			t.Errorf("Recommend(%v) = %d, %v; want %d, %v", c.worst, l, h, c.latency, c.hang)
		}
		// What it recommends must hold what was measured.
		if time.Duration(l)*p < c.worst+p/2 || h <= c.worst {
			t.Errorf("Recommend(%v) = %d, %v does not fit it", c.worst, l, h)
		}
	}
}

func TestBucket(t *testing.T) {
	for _, c := range []struct {
		ns   int64
		want int
	}{{0, 0}, {999, 0}, {1000, 1}, {1999, 1}, {2000, 2}, {3999, 2}, {4000, 3}, {7_000_000, 13}, {1 << 62, HistBuckets - 1}} {
		if got := bucket(c.ns); got != c.want {
			t.Errorf("bucket(%d ns) = %d, want %d", c.ns, got, c.want)
		}
	}
	if bucketLabel(0) != "< 1 µs" || bucketLabel(1) != "1 µs - 2 µs" || bucketLabel(13) != "4.096 ms - 8.192 ms" {
		t.Errorf("labels: %q %q %q", bucketLabel(0), bucketLabel(1), bucketLabel(13))
	}
}

func TestCheckLatency(t *testing.T) {
	c := Config{Rate: 48000, Block: 64, Latency: 2, HangTimeout: 667 * time.Microsecond}
	res := LatencyResult{Periods: 100, Worst: 7 * time.Millisecond, Prio: 70}
	judge(t, "latency", []verdict{
		{"too late", CheckLatency(res, c), Fail, []string{"7 ms late at SCHED_FIFO 70", "at this machine's 7 ms worst case, use --latency 6 --hang-timeout 8ms"}},
		{"fits", CheckLatency(LatencyResult{Periods: 100, Worst: 80 * time.Microsecond, Prio: 70}, c), OK, []string{"fits --latency 2"}},
		{"over the hang timeout only", CheckLatency(LatencyResult{Periods: 100, Worst: 700 * time.Microsecond}, c), Fail, []string{"ordinary priority", "--hang-timeout 1.4ms"}},
		{"nothing", CheckLatency(LatencyResult{}, c), Warn, []string{"no wake-ups"}},
	})
}

// TestProbeLoopAllocatesNothing: the loop that runs at real-time priority.
func TestProbeLoopAllocatesNothing(t *testing.T) {
	res := &LatencyResult{Period: 50 * time.Microsecond}
	if a := testing.AllocsPerRun(5, func() { probeLoop(res, 20) }); a != 0 {
		t.Errorf("probeLoop allocates %v times a run", a)
	}
	if res.Periods != 6*20 {
		t.Errorf("measured %d wake-ups, want %d", res.Periods, 6*20)
	}
}

// TestProbeLatency runs the probe for real: the number of wake-ups is the
// duration over the period, less the periods a late wake-up skipped, and
// every one is in the histogram.
func TestProbeLatency(t *testing.T) {
	p := time.Second * 64 / 48000
	res := ProbeLatency(p, 300*time.Millisecond, 70)
	want := uint64(300 * time.Millisecond / p)
	var inHist uint64
	for _, n := range res.Hist {
		inHist += n
	}
	if res.Periods+res.Missed < want || res.Periods > want || inHist != res.Periods {
		t.Errorf("%d wake-ups, %d skipped, %d in the histogram; want %d in all", res.Periods, res.Missed, inHist, want)
	}
	var b strings.Builder
	WriteLatency(&b, res, Config{Rate: 48000, Block: 64, Latency: 2, HangTimeout: 667 * time.Microsecond})
	if !strings.Contains(b.String(), "worst case") || !strings.Contains(b.String(), "< 1 µs") && res.Hist[0] > 0 {
		t.Errorf("histogram:\n%s", b.String())
	}
	if res.Prio == 0 {
		rttest.SkipOrFail(t, "the probe ran at ordinary priority: %v", res.FIFOErr)
	}
}
