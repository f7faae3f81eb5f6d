package supervisor

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/understudy-rt/understudy/runtime/audioclock"
	"github.com/understudy-rt/understudy/runtime/catalog"
	"github.com/understudy-rt/understudy/runtime/chain"
	"github.com/understudy-rt/understudy/runtime/shm"
)

// No garbage reaches the output: a block with NaN (here from a state the
// kernel poisoned, which would go on making NaN forever) or a sample past
// the ceiling is replaced by the fallback, the owner is killed (path
// garbage), and its successor re-initialises the chain, so the lane is
// back to the kernel's own output within a few blocks.
func TestGarbageNeverReachesTheOutput(t *testing.T) {
	worker := hostileWorker(t)
	cat, err := catalog.Load(worker)
	require.NoError(t, err)
	for _, m := range []struct {
		name string
		mode int
	}{{"nan-state", modeNaNState}, {"loud", modeLoud}} {
		t.Run(m.name, func(t *testing.T) {
			st, err := chain.Parse("hostile mode="+itoa(m.mode), cat)
			require.NoError(t, err)
			lc, err := chain.LaneConfig(st, 1, 64, 48000, "scalar")
			require.NoError(t, err)
			const blocks, trigger, latency = 400, 100, 10
			sup, err := New(Config{Worker: worker, Lanes: []shm.LaneConfig{lc}, Spares: 1, WorkerCPU: -1, HangTimeout: 5 * time.Millisecond})
			require.NoError(t, err)
			defer sup.Close()
			in := testSignal(1, blocks*64)[0]
			in[trigger*64] = hostileTrigger
			out := make([]float32, len(in))
			flags := make([]uint32, blocks)
			clk, err := audioclock.New(audioclock.Config{Rate: 48000, Frames: 64, Latency: latency, Periods: blocks + latency, CPU: -1,
				// Silence: the dry input holds the trigger, itself past the ceiling.
				Fallback: audioclock.Silence, Doorbell: sup.Doorbell(), Lanes: []*shm.Lane{sup.Region().Lane(0)},
				Feed: func(l int, n uint64, d []float32) (uint32, bool) {
					if n >= blocks {
						return 0, false
					}
					copy(d, in[n*64:])
					return 0, true
				},
				Drain: func(l int, n uint64, f uint32, d []float32) {
					if n < blocks {
						copy(out[n*64:], d)
						flags[n] = f
					}
				}})
			require.NoError(t, err)
			defer clk.Free()
			var mu sync.Mutex
			var events []Event
			go func() {
				for e := range sup.Events() {
					mu.Lock()
					events = append(events, e)
					mu.Unlock()
				}
			}()
			require.NoError(t, sup.Start(clk))
			if err := clk.Start(); err != nil && !isNoRT(err) {
				t.Fatal(err)
			}
			clk.Join()
			require.Eventually(t, func() bool {
				mu.Lock()
				defer mu.Unlock()
				for _, e := range events {
					if e.Kind == EvFailover && e.Path == PathGarbage {
						return true
					}
				}
				return false
			}, 5*time.Second, 5*time.Millisecond, "no failover by the garbage path")
			for i, x := range out {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) || math.Abs(float64(x)) > audioclock.DefaultCeiling {
					t.Fatalf("sample %d (block %d) is %v: garbage reached the output", i, i/64, x)
				}
			}
			require.Positive(t, clk.Stats(0).Garbage, "no block counted as garbage")
			mu.Lock()
			var fo Event
			for _, e := range events {
				if e.Kind == EvFailover && e.Path == PathGarbage {
					fo = e
					break
				}
			}
			mu.Unlock()
			require.True(t, fo.Reinit, "the successor did not re-initialise the chain")
			require.Equal(t, uint64(trigger), fo.Block, "the garbage was blamed on another block")
			// Recovered: the last 100 blocks are the identity kernel's output.
			for b := blocks - 100; b < blocks; b++ {
				require.Zero(t, flags[b]&shm.BlockBypassed, "block %d still on the fallback", b)
				require.Zero(t, mismatches(in[b*64:(b+1)*64], out[b*64:(b+1)*64]), "block %d not the kernel's output", b)
			}
		})
	}
}

func itoa(n int) string {
	return string(rune('0'+n/10)) + string(rune('0'+n%10))
}
