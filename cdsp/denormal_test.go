package cdsp_test

import (
	"runtime"
	"testing"

	"github.com/understudy-rt/understudy/cdsp"
	"github.com/understudy-rt/understudy/cdsp/gotwin"
)

// onFreshThread runs f on an OS thread of its own. The goroutine exits
// without unlocking, so the runtime retires the thread, and any FP mode f
// set dies with it instead of leaking into other tests.
func onFreshThread(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		f()
	}()
	<-done
}

const decayFrames = 200000

type decay struct {
	last          float32
	subnormals    int // subnormal output samples
	lastNonZero   int // index of the last output that is not exactly zero
	twinDisagrees int // first sample where the Go twin differs, or -1
}

// impulseDecay feeds a resonant lowpass one impulse and then silence, long
// enough for the tail to fall through the whole float range.
func impulseDecay(t *testing.T, flush bool) decay {
	var d decay
	onFreshThread(func() {
		if flush {
			cdsp.FlushDenormals()
		}
		const frames = decayFrames
		params := []float32{100, 5, 1}
		k, _ := cdsp.Lookup("lowpass")
		inst, err := k.New(params, 1, 48000)
		if err != nil {
			t.Error(err)
			return
		}
		defer inst.Free()
		tw, _ := gotwin.New("lowpass", params, 1, 48000)
		buf := make([]float32, frames)
		buf[0] = 1
		twin := clone(buf)
		run(inst, buf, 1, 256)
		run(tw, twin, 1, 256) // Go's float32 ops use the same MXCSR/FPCR
		d.lastNonZero = -1
		for i, v := range buf {
			if isSubnormal(v) {
				d.subnormals++
			}
			if v != 0 {
				d.lastNonZero = i
			}
		}
		d.twinDisagrees = firstBitDiff(twin, buf)
		d.last = buf[frames-1]
	})
	return d
}

func TestDenormalsFlushed(t *testing.T) {
	d := impulseDecay(t, true)
	if d.subnormals != 0 {
		t.Fatalf("with FlushDenormals: %d subnormal outputs", d.subnormals)
	}
	if d.lastNonZero < 0 || d.lastNonZero > 150000 {
		t.Fatalf("with FlushDenormals: last non-zero output at %d, want the tail to reach exact zero", d.lastNonZero)
	}
	if runtime.GOARCH == "amd64" && d.twinDisagrees >= 0 {
		t.Fatalf("with FlushDenormals: the Go twin differs from C at sample %d", d.twinDisagrees)
	}
	t.Logf("with FlushDenormals: no subnormal outputs, exact zero after sample %d", d.lastNonZero)
}

// Without the flush the tail never reaches zero: once y is subnormal,
// -a1*y1 - a2*y2 rounds back to y1 and the filter sits on a constant
// subnormal for as long as the silence lasts, every sample of every section
// paying the subnormal penalty (a microcode assist per operation on Intel
// cores; this test's AMD EPYC hides most of it). Both implementations still
// agree bit for bit: IEEE gradual underflow is fully specified.
func TestDenormalsWithoutFlush(t *testing.T) {
	d := impulseDecay(t, false)
	if runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64" {
		if d.subnormals == 0 {
			t.Fatal("without FlushDenormals no subnormal output appeared: is this thread already flushing?")
		}
		if d.lastNonZero != decayFrames-1 || !isSubnormal(d.last) {
			t.Fatalf("without FlushDenormals the tail ended at %g (last non-zero at %d): expected it stuck on a subnormal", d.last, d.lastNonZero)
		}
	}
	if runtime.GOARCH == "amd64" && d.twinDisagrees >= 0 {
		t.Fatalf("without FlushDenormals: the Go twin differs from C at sample %d", d.twinDisagrees)
	}
	t.Logf("without FlushDenormals: %d of %d outputs subnormal; the tail is stuck at %g", d.subnormals, decayFrames, d.last)
}
