package supervisor

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/understudy-rt/understudy/internal/rttest"
	"github.com/understudy-rt/understudy/rt"
	"github.com/understudy-rt/understudy/runtime/audioclock"
	"github.com/understudy-rt/understudy/runtime/shm"
)

func vmLck(t *testing.T) uint64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmLck:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmLck in /proc/self/status")
	return 0
}

// A running supervisor and clock, locked as the host locks them, have these
// locked and nothing else: what rt locked (program, Go heap, the monitor's
// stack top), the region, and the clock's memory and stack top. Not Go's
// reserved address space (gigabytes under mlockall), not other threads'
// stacks. And the probe, asked before any of it existed, covered it without
// asking for more than its stated slack.
func TestHostLocksOnlyWhatRealTimeThreadsTouch(t *testing.T) {
	rttest.RequireRT(t)
	if got := vmLck(t); got != 0 {
		t.Fatalf("VmLck is %d bytes before the test: an earlier test left memory locked", got)
	}
	const lanes, frames = 2, 64
	shared := uint64(shm.HostBytes(testLanes(t, lanes, frames, 48000))) + audioclock.MemBytes(frames, []int{1, 1})
	if shared > rt.DefaultShared {
		t.Errorf("the default run's region and clock take %d bytes, more than rt.DefaultShared (%d) that Probe assumes", shared, rt.DefaultShared)
	}
	need := rt.ProbeLock(rt.FIFOMin, shared).MemLockNeed

	if err := rt.LockMemory(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.UnlockMemory() })
	r := newRig(t, rigConfig{lanes: lanes, spares: 1, blocks: 3000, frames: frames, rt: true})
	r.play()
	for r.clk.Periods() < 100 && r.clk.Running() {
		time.Sleep(time.Millisecond)
	}
	if !r.clk.Running() {
		t.Fatal("the clock stopped before it could be measured")
	}
	got := vmLck(t)
	l := rt.LockedNow()
	// The kernel locks whole pages.
	region, clock := (uint64(r.sup.Region().Size())+4095)&^4095, r.clk.LockedBytes()
	bound := l.Total() + region + clock
	t.Logf("VmLck %.1f MiB: program %.1f MiB, Go heap %.1f MiB, real-time stacks %d KiB, region %.1f MiB, clock %.1f MiB; probe asked for %.1f MiB",
		mb(got), mb(l.Image), mb(l.Heap), l.Stacks>>10, mb(region), mb(clock), mb(need))
	// Go's scavenger may since have handed free heap pages back, which
	// unlocks them (docs/design.md §7): the heap is the one part that can
	// be short of what was locked.
	if got > bound || got < bound-l.Heap {
		t.Errorf("VmLck %d bytes; want what was locked, %d (%+v, region %d, clock %d), less at most the heap's %d; locked mappings:%s",
			got, bound, l, region, clock, l.Heap, lockedMappings(t))
	}
	if l.Stacks != rt.StackLockBytes {
		t.Errorf("real-time Go threads locked %d bytes of stack; want the monitor's %d (StackLockErr: %v)", l.Stacks, rt.StackLockBytes, rt.StackLockErr())
	}
	if wantClock := audioclock.MemBytes(frames, []int{1, 1}) + rt.StackLockBytes; clock != wantClock {
		t.Errorf("the clock locked %d bytes; want its memory and its thread's stack top, %d", clock, wantClock)
	}
	if bound > need {
		t.Errorf("%d bytes locked exceeds the %d the probe asked RLIMIT_MEMLOCK for", bound, need)
	}
	if need-bound > rt.HeapSlack {
		t.Errorf("the probe asked for %d bytes, %d more than was locked: more than its heap slack (%d)", need, need-bound, rt.HeapSlack)
	}
	r.clk.Stop()
	r.finish(EvFailover, 0)
}

func mb(b uint64) float64 { return float64(b) / (1 << 20) }

// lockedMappings lists the locked mappings (/proc/self/smaps), for a
// failure's message.
func lockedMappings(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return err.Error()
	}
	var out strings.Builder
	var head string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			head = line
			continue
		}
		if rest, ok := strings.CutPrefix(line, "VmFlags:"); ok {
			for _, fl := range strings.Fields(rest) {
				if fl == "lo" {
					out.WriteString("\n  " + head)
				}
			}
		}
	}
	return out.String()
}
