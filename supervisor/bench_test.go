package supervisor

import (
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/understudy-rt/understudy/internal/rttest"
	"github.com/understudy-rt/understudy/rt"
	"github.com/understudy-rt/understudy/runtime/shm"
)

// One block to a C worker and back through the shared-memory rings: spin
// path (both sides spin before sleeping) and futex path (both sleep at once).
func BenchmarkRingRoundTrip(b *testing.B) {
	for _, mode := range []struct {
		name       string
		workerSpin int
		hostSpin   time.Duration
	}{{"spin", 200, 200 * time.Microsecond}, {"futex", -1, 0}} {
		b.Run(mode.name, func(b *testing.B) {
			// Two spinners sharing a core would wait out each other's spin:
			// the worker gets CPU 1, this goroutine's thread CPU 0.
			_, lane := unityLaneOn(b, 64, mode.workerSpin, 1)
			pinToCPU0(b)
			prod := shm.NewProducer(lane.In())
			cons := shm.NewConsumer(lane.Out())
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				blk, _ := prod.Peek()
				blk.SetHeader(uint64(i), 64, 0, 0)
				prod.Publish()
				var o *shm.Block
				for o == nil {
					cons.Wait(mode.hostSpin, time.Second)
					o, _ = cons.Peek()
				}
				cons.Release()
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			reportPercentiles(b, lat)
		})
	}
}

// SIGKILL of a lane's owner to the monitor's decision (pidfd path), and on to
// the new owner's first commit, with a clock running at 64 frames / 48 kHz.
func BenchmarkKillToDetection(b *testing.B) {
	rttest.RequireRT(b)
	r := newRig(b, rigConfig{lanes: 1, spares: 1, blocks: 1 << 30, rt: true})
	r.play()
	r.waitPeriods(50)
	var det, fo []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ready := r.count(EvSpareReady)
		inj, err := r.sup.InjectFault(0, FaultKill, 0)
		for err != nil {
			time.Sleep(100 * time.Microsecond)
			inj, err = r.sup.InjectFault(0, FaultKill, 0)
		}
		for r.count(EvFailover) < i+1 || r.count(EvSpareReady) <= ready {
			time.Sleep(100 * time.Microsecond)
		}
		e := r.eventsOf(EvFailover)[i]
		det = append(det, time.Duration(e.DetectNS-inj.InjectNS))
		fo = append(fo, e.Failover())
	}
	b.StopTimer()
	r.clk.Stop()
	reportPercentiles(b, det)
	sort.Slice(fo, func(i, j int) bool { return fo[i] < fo[j] })
	if len(fo) > 0 {
		b.ReportMetric(float64(fo[len(fo)/2].Nanoseconds()), "failover-ns-p50")
		b.ReportMetric(float64(fo[len(fo)*99/100].Nanoseconds()), "failover-ns-p99")
	}
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "ns-p50")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "ns-p99")
	b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "ns-max")
}

// pinToCPU0 locks the benchmark goroutine to its thread on CPU 0 until the
// benchmark ends.
func pinToCPU0(b *testing.B) {
	runtime.LockOSThread()
	if err := rt.SetThreadAffinity([]int{0}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		rt.SetThreadAffinity([]int{0, 1})
		runtime.UnlockOSThread()
	})
}
