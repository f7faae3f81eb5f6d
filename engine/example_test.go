package engine_test

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/understudy-rt/understudy/engine"
	"github.com/understudy-rt/understudy/supervisor"
)

// A lane that generates a tone, played in real time on the session's own
// timer for 100 blocks; Drain is handed every block, in order.
func Example() {
	const blocks = 100
	var drained atomic.Int64
	s, err := engine.New(engine.Config{
		Lanes: []engine.Lane{{Chain: "sine f=440 db=-6 | lowpass f=2000", Channels: 1}},
		Rate:  48000, Block: 64, Latency: 2, Spares: 1,
		Periods: blocks + 2, // the input's blocks and the latency
		Feed:    func(lane int, n uint64, in []float32) (uint32, bool) { return 0, n < blocks },
		Drain:   func(lane int, n uint64, flags uint32, out []float32) { drained.Add(1) },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	if err := s.Start(); err != nil {
		fmt.Println(err)
		return
	}
	s.Wait() // the clock ran its periods
	fmt.Println("blocks drained:", drained.Load())
	// Output: blocks drained: 100
}

// Offline, a lane renders as fast as its worker goes: -6 dB of a constant.
func ExampleSession_Render() {
	s, err := engine.New(engine.Config{Backend: engine.Offline,
		Lanes: []engine.Lane{{Chain: "gain db=-6", Channels: 1}}, Rate: 48000, Block: 64})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	in := make([]float32, 256)
	for i := range in {
		in[i] = 1
	}
	out, err := s.Render(0, in)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d samples, each %.4f\n", len(out), out[255])
	// Output: 256 samples, each 0.5012
}

// A worker that crashes mid-render (SIGSEGV at block 40): the spare takes
// the lane over from its last committed block, and the output is the same,
// bit for bit, as a render nobody crashed.
func ExampleSession_InjectFault() {
	render := func(crash bool) []float32 {
		failovers := make(chan supervisor.Event, 4)
		s, err := engine.New(engine.Config{Backend: engine.Offline, Spares: 1,
			Lanes: []engine.Lane{{Chain: "lowpass f=1000 | gain db=-3", Channels: 1}}, Rate: 48000, Block: 64,
			OnEvent: func(e supervisor.Event) {
				if e.Kind == supervisor.EvFailover {
					failovers <- e
				}
			}})
		if err != nil {
			panic(err)
		}
		defer s.Close()
		if crash {
			if _, err := s.InjectFault(0, supervisor.FaultSegv, 40); err != nil {
				panic(err)
			}
		}
		in := make([]float32, 64*100)
		for i := range in {
			in[i] = float32(math.Sin(float64(i) * 0.05))
		}
		out, err := s.Render(0, in)
		if err != nil {
			panic(err)
		}
		if crash {
			select {
			case e := <-failovers:
				fmt.Printf("lane %d failed over at block %d\n", e.Lane, e.Block)
			case <-time.After(5 * time.Second):
				fmt.Println("no failover")
			}
		}
		return out
	}
	clean, crashed := render(false), render(true)
	same := len(clean) == len(crashed)
	for i := range clean {
		same = same && math.Float32bits(clean[i]) == math.Float32bits(crashed[i])
	}
	fmt.Println("bit-exact:", same)
	// Output:
	// lane 0 failed over at block 40
	// bit-exact: true
}

// Turning a knob while the lane plays: the change applies at a block
// boundary a few blocks ahead (Set says which), ramps where the kernel
// ramps, and a worker that dies mid-automation is replaced without a wrong
// sample. A value the kernel's schema refuses changes nothing.
func ExampleSession_Params() {
	const blocks = 200
	var last atomic.Uint32
	s, err := engine.New(engine.Config{
		Lanes: []engine.Lane{{Chain: "gain db=0", Channels: 1}},
		Rate:  48000, Block: 64, Latency: 2, Spares: 1,
		Periods: blocks + 2,
		Feed: func(lane int, n uint64, in []float32) (uint32, bool) {
			for i := range in {
				in[i] = 0.5
			}
			return uint32(len(in)), n < blocks
		},
		Drain: func(lane int, n uint64, flags uint32, out []float32) {
			last.Store(math.Float32bits(out[len(out)-1]))
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	if err := s.Start(); err != nil {
		fmt.Println(err)
		return
	}
	p, err := s.Params()
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := p.Set(0, 0, "db", -6); err != nil { // lane 0, kernel 0 of its chain
		fmt.Println(err)
		return
	}
	_, err = p.Set(0, 0, "db", 99)
	fmt.Println("db=99 refused:", err != nil)
	s.Wait()
	fmt.Printf("last sample: %.4f\n", math.Float32frombits(last.Load()))
	// Output:
	// db=99 refused: true
	// last sample: 0.2506
}
