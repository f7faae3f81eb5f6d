package supervisor

import (
	"math"
	"testing"
	"time"

	"github.com/understudy-rt/understudy/runtime/chain"
	"github.com/understudy-rt/understudy/runtime/shm"
)

// unityLane starts one worker whose chain is a unity gain, so every output
// sample must equal its input bit for bit.
func unityLane(t testing.TB, frames, spin int) (*Supervisor, *shm.Lane) {
	return unityLaneOn(t, frames, spin, -1)
}

// unityLaneOn is unityLane with the worker pinned to cpu (-1: any).
func unityLaneOn(t testing.TB, frames, spin, cpu int) (*Supervisor, *shm.Lane) {
	st, err := chain.Parse("gain db=0", testCatalog(t))
	if err != nil {
		t.Fatal(err)
	}
	lc, err := chain.LaneConfig(st, 1, frames, 48000, "auto")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Worker: testWorker(t), Lanes: []shm.LaneConfig{lc}, WorkerCPU: cpu, SpinMicros: spin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Start(nil); err != nil {
		t.Fatal(err)
	}
	return s, s.Region().Lane(0)
}

// pump pushes n numbered blocks through the lane with the given waits and
// checks every block that comes back: number in order, samples unchanged.
// A lost wakeup shows as a stall, which fails the test instead of hanging it.
// With pingPong, every other thousand blocks go one at a time, so both sides
// find the ring empty and sleep on every block.
func pump(t testing.TB, lane *shm.Lane, n int, frames int, spin time.Duration, pingPong bool) {
	prod := shm.NewProducer(lane.In())
	cons := shm.NewConsumer(lane.Out())
	const stall = 5 * time.Second
	var pushed, got uint64
	fulls, empties := 0, 0
	for got < uint64(n) {
		for pushed < uint64(n) {
			if pingPong && (got/1000)%2 == 0 && pushed > got {
				break
			}
			b, err := prod.Peek()
			if err != nil {
				t.Fatal(err)
			}
			if b == nil {
				fulls++
				break
			}
			s := b.Samples(frames)
			for i := range s {
				s[i] = math.Float32frombits(pattern(pushed, i))
			}
			b.SetHeader(pushed, frames, 0, 0)
			prod.Publish()
			pushed++
		}
		b, err := cons.Peek()
		if err != nil {
			t.Fatal(err)
		}
		if b == nil {
			empties++
			start := time.Now()
			if err := cons.Wait(spin, stall); err != nil {
				t.Fatal(err)
			}
			if b, _ = cons.Peek(); b == nil {
				t.Fatalf("no output for block %d after %v (pushed %d): a lost wakeup", got, time.Since(start), pushed)
			}
		}
		if b.Number() != got || b.Frames() != frames {
			t.Fatalf("block %d came back as number %d with %d frames", got, b.Number(), b.Frames())
		}
		s := b.Samples(frames)
		for i := range s {
			if math.Float32bits(s[i]) != pattern(got, i) {
				t.Fatalf("block %d sample %d changed on the way", got, i)
			}
		}
		cons.Release()
		got++
	}
	if fulls == 0 || empties == 0 {
		t.Errorf("the ring was full %d times and empty %d times; the test should see both", fulls, empties)
	}
}

// Go producer → C consumer and back, a million blocks: wrap-around, full and
// empty rings, the spin path.
func TestRingRoundTripSpin(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 50_000
	}
	_, lane := unityLane(t, 16, 50)
	start := time.Now()
	pump(t, lane, n, 16, 50*time.Microsecond, false)
	t.Logf("%d blocks in %v", n, time.Since(start))
}

// The same with both sides sleeping on the futex at every empty ring: a lost
// wakeup would stall it.
func TestRingRoundTripFutex(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 20_000
	}
	_, lane := unityLane(t, 16, -1)
	start := time.Now()
	pump(t, lane, n, 16, 0, true)
	t.Logf("%d blocks in %v", n, time.Since(start))
}

// The Go side of the ring allocates nothing per block.
func TestRingGoSideAllocatesNothing(t *testing.T) {
	_, lane := unityLane(t, 64, 50)
	prod := shm.NewProducer(lane.In())
	cons := shm.NewConsumer(lane.Out())
	var n uint64
	allocs := testing.AllocsPerRun(20000, func() {
		b, _ := prod.Peek()
		for b == nil {
			b, _ = prod.Peek()
		}
		b.SetHeader(n, 64, 0, 0)
		prod.Publish()
		n++
		var o *shm.Block
		for o == nil {
			cons.Wait(50*time.Microsecond, time.Second)
			o, _ = cons.Peek()
		}
		cons.Release()
	})
	if allocs != 0 {
		t.Errorf("%.2f allocations per block", allocs)
	}
}

// pattern is a normal float in [0.5, 1) unique to (block, sample): workers
// flush denormals to zero, so the test must not send any.
func pattern(block uint64, i int) uint32 {
	return 0x3f000000 | ((uint32(block)*2654435761 + uint32(i)*40503) & 0x7fffff)
}
