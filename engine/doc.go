// Package engine runs lanes of C DSP kernels in supervised worker
// processes, live or offline: the one pipeline understudy's demo, process
// and run commands use, for Go programs to embed.
//
// A session is one set of lanes. Each lane is a chain of kernels
// (`understudy kernels` lists them) in a worker process of its own, with warm
// spares that take a failed lane over from its last committed block, so the
// output goes on bit-exact through crashes, hangs and kills. Its periods are
// driven by the session's own timer (Timer: your Feed and Drain move the
// audio), by a JACK server's process callback (JACK: the lanes are JACK
// ports), or by nothing (Offline: Render as fast as the workers go):
//
//	s, err := engine.New(engine.Config{
//		Lanes:   []engine.Lane{{Chain: "lowpass f=1000 | gain db=-6", Channels: 2}},
//		Rate:    48000, Block: 64, Latency: 2, Spares: 1,
//		Feed:    func(lane int, n uint64, in []float32) (uint32, bool) { /* fill in */ return 0, true },
//		Drain:   func(lane int, n uint64, flags uint32, out []float32) { /* use out */ },
//		OnEvent: func(e supervisor.Event) { log.Println(e.Kind, e.Lane) },
//	})
//	if err != nil { ... }      // a *ConfigError is a setting to change
//	defer s.Close()
//	s.Start()                  // audio moves; Stop or Periods ends it
//
// For JACK, set Backend: engine.JACK and JACK: engine.JACKConfig{ConnectIn:
// []string{"system:capture_"}}; the rate is the server's and Start opens the
// client. New checks everything (numbers, the worker, every chain) before any audio
// runs; Check does the same without starting anything. Feed and Drain run on
// the clock's own goroutines and must not keep the slices they are handed.
// Close stops the audio, the workers and every goroutine that touches the
// session's shared memory before it is unmapped; it is idempotent and safe
// from any goroutine, as Stop is. The worker executable is found by
// WorkerPath ($UNDERSTUDY_WORKER, beside the program, $PATH; `understudy
// worker-path` prints it). Priorities (SCHED_FIFO, when allowed): monitor
// above the clock (or JACK's callback thread) above the workers.
package engine
