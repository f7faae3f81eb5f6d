package cdsp_test

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/understudy-rt/understudy/cdsp"
	"github.com/understudy-rt/understudy/cdsp/gotwin"
)

// benchCase is one kernel setup BenchmarkKernels times.
type benchCase struct {
	name, extra string
	params      []float32
	channels    int // 0: stereo
}

var benchCases = []benchCase{
	{"gain", "", []float32{-6}, 0},
	{"mix", "inputs=2", []float32{-0.5, 0.5}, 0},
	{"mix", "inputs=8", []float32{-1, 1, -0.6, 0.6, -0.2, 0.2, 0, 0.9}, 8},
	{"lowpass", "sections=1", []float32{1000, 0.7071, 1}, 0},
	{"lowpass", "sections=8", []float32{1000, 0.7071, 8}, 0},
	{"lowpass", "sections=8/channels=8", []float32{1000, 0.7071, 8}, 8},
	{"fir", "taps=64", []float32{1000, 64}, 0},
	{"fir", "taps=512", []float32{1000, 512}, 0},
	{"fir", "taps=4096", []float32{1000, 4096}, 0},
}

// benchInput is the buffer a benchmark processes in place, call after
// call. Processing one buffer over and over drives it down (a -6 dB gain
// halves it every call) into the subnormals, where x86 without FTZ/DAZ takes
// a slow path on every sample (and a gain sticks there: the smallest
// subnormal times 0.5 rounds back to itself), and under FTZ/DAZ to zeros:
// neither is audio. Restoring it every 16 calls keeps it noise-like (above
// -100 dB) for a copy amortised to 1/16 per call.
type benchInput struct {
	src, buf []float32
	calls    int
}

func newBenchInput(frames, channels int) *benchInput {
	src := noise(frames, channels, 1)
	return &benchInput{src: src, buf: slices.Clone(src)}
}

// next is the buffer for the next call.
func (in *benchInput) next() []float32 {
	if in.calls++; in.calls%16 == 0 {
		copy(in.buf, in.src)
	}
	return in.buf
}

// BenchmarkKernels times each kernel's variants and its Go twin on stereo
// blocks (mix also on 8 channels, its most inputs, and the 8-section
// lowpass on 8 channels, a full AVX2 vector of channels), as
// BenchmarkKernels/<kernel>/<variant>/frames=<n>[/<param>=<v>] (the form
// bench/report reads), with the Go twin as variant "go". ns/sample is per
// sample of one channel: ns/op / (frames * channels). Every case runs
// under FTZ/DAZ, as the workers do, and reports it as the metric ftz-daz=1,
// which bench/report prints under the table.
func BenchmarkKernels(b *testing.B) {
	for _, c := range benchCases {
		channels := c.channels
		if channels == 0 {
			channels = 2
		}
		variants := append(cdsp.Variants(c.name), "go")
		for _, v := range variants {
			for _, frames := range []int{16, 64, 256, 1024, 4096} {
				name := fmt.Sprintf("%s/%s/frames=%d", c.name, v, frames)
				if c.extra != "" {
					name += "/" + c.extra
				}
				b.Run(name, func(b *testing.B) {
					// The workers' FP mode, on a thread of this goroutine's
					// own: it exits locked, so the thread and its mode retire.
					runtime.LockOSThread()
					cdsp.FlushDenormals()
					var p proc
					if v == "go" {
						tw, err := gotwin.New(c.name, c.params, channels, 48000)
						if err != nil {
							b.Fatal(err)
						}
						p = tw
					} else {
						p = newV(b, c.name, v, c.params, channels, 48000)
					}
					in := newBenchInput(frames, channels)
					p.Process(in.next()) // first-use work (the twin's scratch) stays out of the timing
					b.SetBytes(int64(4 * len(in.buf)))
					start := time.Now()
					for b.Loop() {
						p.Process(in.next())
					}
					ns := float64(time.Since(start).Nanoseconds()) / float64(b.N)
					b.ReportMetric(ns/float64(frames*channels), "ns/sample")
					b.ReportMetric(1, "ftz-daz")
				})
			}
		}
	}
}

// Whatever a benchmark does to its buffer, the kernel never sees a subnormal
// or a silent buffer: checked here in the IEEE default mode (no FTZ/DAZ,
// where subnormals would appear) with the Go twins, which give the kernels'
// bits, over more calls than a subnormal needs to appear (the gain case
// reaches one after about 150).
func TestBenchInputsStayAudio(t *testing.T) {
	onFreshThread(func() {
		for _, c := range benchCases {
			channels := c.channels
			if channels == 0 {
				channels = 2
			}
			tw, err := gotwin.New(c.name, c.params, channels, 48000)
			if err != nil {
				t.Error(err)
				return
			}
			in := newBenchInput(64, channels)
			for call := 0; call < 2000; call++ {
				buf := in.next()
				loud := false
				for i, v := range buf {
					if isSubnormal(v) {
						t.Errorf("%s %s: call %d gets a subnormal input at sample %d: %g", c.name, c.extra, call, i, v)
						return
					}
					loud = loud || math.Abs(float64(v)) > 1e-5
				}
				if !loud {
					t.Errorf("%s %s: call %d gets a buffer below -100 dB", c.name, c.extra, call)
					return
				}
				tw.Process(buf)
			}
		}
	})
}
