// Package bench measures what it costs to run a C kernel each way a user
// could: pure Go, cgo in-process, a supervised C worker through the shared
// memory ring (spin and futex wakeups), and a C worker behind a pipe (what
// one would build without understudy), with a bare cross-process futex
// ping-pong as the floor for any wakeup. `make bench` turns the output into
// bench/results.json and bench/RESULTS.md (see bench/report).
package bench

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/understudy-rt/understudy/cdsp"
	"github.com/understudy-rt/understudy/cdsp/gotwin"
	"github.com/understudy-rt/understudy/engine"
	"github.com/understudy-rt/understudy/internal/rttest"
	"github.com/understudy-rt/understudy/internal/workerbin"
	"github.com/understudy-rt/understudy/runtime/shm"
	"github.com/understudy-rt/understudy/supervisor"
)

// The kernel every transport runs: a 2-section lowpass, mono, at its defaults
// otherwise, so the work per sample is the same everywhere.
const (
	kernelName  = "lowpass"
	kernelChain = "lowpass f=1000 q=0.7071 sections=2"
)

var frameSizes = []int{16, 64, 256, 1024}

func kernelParams(b *testing.B) []float32 {
	k, err := cdsp.Lookup(kernelName)
	if err != nil {
		b.Fatal(err)
	}
	p, err := k.Resolve([]float32{1000, 0.7071, 2})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func signal(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(math.Sin(float64(i) * 0.01))
	}
	return s
}

// perSample reports the median block's cost per sample, and the block's
// p50 and p99: on a shared machine the mean is whatever the worst
// preemption made it.
func perSample(b *testing.B, frames int, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p50 := float64(lat[len(lat)/2].Nanoseconds())
	b.ReportMetric(p50/float64(frames), "ns/sample")
	b.ReportMetric(p50, "ns-p50")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "ns-p99")
}

func BenchmarkTransport(b *testing.B) {
	params := kernelParams(b)
	for _, frames := range frameSizes {
		b.Run(fmt.Sprintf("go/scalar/frames=%d", frames), func(b *testing.B) {
			flushLocked(b)
			p, err := gotwin.New(kernelName, params, 1, 48000)
			if err != nil {
				b.Fatal(err)
			}
			buf := signal(frames)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				p.Process(buf)
				lat = append(lat, time.Since(t0))
			}
			perSample(b, frames, lat)
			b.ReportMetric(1, "ftz-daz")
		})
		b.Run(fmt.Sprintf("cgo/scalar/frames=%d", frames), func(b *testing.B) {
			flushLocked(b)
			k, _ := cdsp.Lookup(kernelName)
			inst, err := k.New(params, 1, 48000)
			if err != nil {
				b.Fatal(err)
			}
			defer inst.Free()
			buf := signal(frames)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				inst.Process(buf)
				lat = append(lat, time.Since(t0))
			}
			perSample(b, frames, lat)
			b.ReportMetric(1, "ftz-daz")
		})
		for _, mode := range []struct {
			name       string
			workerSpin int
			hostSpin   time.Duration
		}{{"shm-spin", 200, 200 * time.Microsecond}, {"shm-futex", -1, 0}} {
			b.Run(fmt.Sprintf("%s/scalar/frames=%d", mode.name, frames), func(b *testing.B) {
				// Worker on CPU 1, this goroutine on CPU 0: two spinners on
				// one core would wait out each other's spin.
				lane := supervisedLane(b, frames, mode.workerSpin)
				rttest.PinToCPU0(b)
				prod, cons := shm.NewProducer(lane.In()), shm.NewConsumer(lane.Out())
				in := signal(frames)
				lat := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					blk, _ := prod.Peek()
					copy(blk.Samples(frames), in)
					blk.SetHeader(uint64(i), frames, 0, 0)
					prod.Publish()
					var o *shm.Block
					for o == nil {
						cons.Wait(mode.hostSpin, time.Second)
						o, _ = cons.Peek()
					}
					copy(in, o.Samples(frames))
					cons.Release()
					lat = append(lat, time.Since(t0))
				}
				perSample(b, frames, lat)
				b.ReportMetric(1, "ftz-daz") // the worker's own mode
			})
		}
		// The pipe worker (csrc/tests/pipe_worker.c) leaves the IEEE
		// default: this row reports no ftz-daz.
		b.Run(fmt.Sprintf("pipe/scalar/frames=%d", frames), func(b *testing.B) {
			cmd := exec.Command(pipeWorker(b), kernelName, strconv.Itoa(frames), "1")
			w, _ := cmd.StdinPipe()
			r, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() { w.Close(); cmd.Wait() }()
			br := bufio.NewReader(r)
			buf := make([]byte, 4*frames)
			in := signal(frames)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				for j, v := range in {
					binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(v))
				}
				if _, err := w.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(br, buf); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			perSample(b, frames, lat)
		})
	}
}

// flushLocked puts this benchmark's thread in the workers' FP mode
// (FTZ+DAZ), so the in-process rows run as a worker does; they report the
// metric ftz-daz=1 after their loop (ResetTimer drops metrics). The
// goroutine ends locked, which retires the thread and its mode with it.
func flushLocked(*testing.B) {
	runtime.LockOSThread()
	cdsp.FlushDenormals()
}

// BenchmarkFutexPingPong is the floor: a round trip between two processes
// through a shared futex, nothing else. Reported as ns-p50/ns-p99 of one
// round trip, like the ring's futex path.
func BenchmarkFutexPingPong(b *testing.B) {
	bin := buildC(b, "futex_pingpong", "csrc/tests/futex_pingpong.c")
	b.ResetTimer()
	out, err := exec.Command(bin, strconv.Itoa(max(b.N, 1000))).Output()
	if err != nil {
		b.Fatal(err)
	}
	var p50, p99 float64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "p50 %g p99 %g", &p50, &p99); err != nil {
		b.Fatalf("futex_pingpong said %q", out)
	}
	b.ReportMetric(p50, "ns-p50")
	b.ReportMetric(p99, "ns-p99")
}

// supervisedLane is one offline engine session's lane, its worker pinned
// to CPU 1 and spinning spin µs before it sleeps.
func supervisedLane(b *testing.B, frames, spin int) *shm.Lane {
	w, err := workerbin.Path()
	if err != nil {
		b.Fatal(err)
	}
	s, err := engine.New(engine.Config{Backend: engine.Offline, Worker: w, Rate: 48000, Block: frames, Variant: "scalar",
		Lanes: []engine.Lane{{Chain: kernelChain, Channels: 1}},
		Tune:  func(c *supervisor.Config) { c.WorkerCPU, c.SpinMicros = 1, spin }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s.Lane(0)
}

func pipeWorker(b *testing.B) string {
	root, err := workerbin.ModuleRoot()
	if err != nil {
		b.Fatal(err)
	}
	srcs, _ := filepath.Glob(filepath.Join(root, "cdsp", "*.c"))
	var keep []string
	for _, s := range srcs {
		if !strings.HasSuffix(s, "_cgo.c") {
			keep = append(keep, s)
		}
	}
	return buildC(b, "pipe_worker", append([]string{"csrc/tests/pipe_worker.c", "csrc/us_registry.c"}, rel(root, keep)...)...)
}

func rel(root string, paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i], _ = filepath.Rel(root, p)
	}
	return out
}

// buildC compiles a helper program with the worker's flags.
func buildC(b *testing.B, name string, srcs ...string) string {
	root, err := workerbin.ModuleRoot()
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), name)
	args := []string{"-std=gnu11", "-O2", "-ffp-contract=off", "-fno-fast-math", "-I" + filepath.Join(root, "csrc"), "-I" + filepath.Join(root, "cdsp"), "-o", bin}
	for _, s := range srcs {
		args = append(args, filepath.Join(root, s))
	}
	args = append(args, "-lm")
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		b.Fatalf("gcc %s: %v\n%s", name, err, out)
	}
	return bin
}
