package engine_test

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/understudy-rt/understudy/engine"
	"github.com/understudy-rt/understudy/supervisor"
)

func timerConfig() engine.Config {
	return engine.Config{Lanes: []engine.Lane{{Chain: "gain db=-6", Channels: 1}, {Chain: "lowpass f=1000", Channels: 2}},
		Rate: 48000, Block: 64, Latency: 2, Spares: 1}
}

// Every class of setting New refuses comes back as a ConfigError naming
// it, before any process starts.
func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		field string
		edit  func(*engine.Config)
	}{
		{"rate", func(c *engine.Config) { c.Rate = 1000 }},
		{"block", func(c *engine.Config) { c.Block = 8 }},
		{"block", func(c *engine.Config) { c.Backend, c.Block = engine.Offline, 0 }},
		{"lanes", func(c *engine.Config) { c.Lanes = nil }},
		{"spares", func(c *engine.Config) { c.Spares = -1 }},
		{"latency", func(c *engine.Config) { c.Latency = 99 }},
		{"hang-timeout", func(c *engine.Config) { c.HangTimeout = -time.Millisecond }},
		{"channels", func(c *engine.Config) { c.Lanes[1].Channels = 0 }},
		{"lane", func(c *engine.Config) { c.Lanes[1].Chain = " " }},
		{"fallback", func(c *engine.Config) { c.Output = &engine.Output{Fallback: "loud", CeilingDB: 24} }},
		{"ceiling-db", func(c *engine.Config) { c.Output = &engine.Output{Fallback: "dry", CeilingDB: 99} }},
		{"declick", func(c *engine.Config) { c.Output = &engine.Output{Fallback: "dry", Declick: 65} }},
		{"chain", func(c *engine.Config) { c.Lanes[1].Chain = "nosuchkernel" }},
		{"chain", func(c *engine.Config) { c.Lanes[0].Chain = "lowpass f=99999" }},
		{"chain", func(c *engine.Config) { c.Variant = "nosuchvariant" }},
		{"", func(c *engine.Config) { c.Worker = "/nonexistent/understudy-worker" }},
	} {
		cfg := timerConfig()
		c.edit(&cfg)
		before := len(workers())
		s, err := engine.New(cfg)
		if s != nil {
			s.Close()
		}
		var ce *engine.ConfigError
		require.True(t, errors.As(err, &ce), "%s: %v is no ConfigError", c.field, err)
		require.Equal(t, c.field, ce.Field, "%v", err)
		require.Equal(t, 1, len(strings.Split(err.Error(), "\n")), "one line: %q", err)
		require.Len(t, workers(), before, "%s: a worker was left", c.field)
	}
}

// workers lists this process's children, as the kernel keeps them per
// thread (zombies too: an unreaped worker is a leak as well).
func workers() []string {
	var out []string
	lists, _ := filepath.Glob("/proc/self/task/*/children")
	for _, l := range lists {
		b, _ := os.ReadFile(l)
		out = append(out, strings.Fields(string(b))...)
	}
	return out
}

func regions() int {
	maps, _ := os.ReadFile("/proc/self/maps")
	return strings.Count(string(maps), "memfd:understudy-region")
}

// Sessions stopped and closed at any moment, in any order, from several
// goroutines at once, while readers and a fault injector race them: every
// stop returns, nothing runs or stays mapped after Close, and every worker
// is gone. The race detector and a use after unmap (a SIGSEGV) are what
// this catches; the counts at the end are what it asserts.
func TestCloseInAnyOrderStress(t *testing.T) {
	iterations := 60
	if testing.Short() {
		iterations = 16
	}
	seed, err := strconv.ParseUint(os.Getenv("UNDERSTUDY_STRESS_SEED"), 10, 64)
	if err != nil {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (UNDERSTUDY_STRESS_SEED reruns it)", seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	stops := []struct {
		name string
		do   func(*engine.Session)
	}{
		{"Stop", func(s *engine.Session) { s.Stop() }},
		{"Close", func(s *engine.Session) { s.Close() }},
		{"Wait", func(s *engine.Session) { s.Wait() }},
	}
	flowed := 0
	for i := range iterations {
		var drained atomic.Int64
		cfg := timerConfig()
		cfg.Drain = func(int, uint64, uint32, []float32) { drained.Add(1) }
		cfg.Feed = func(int, uint64, []float32) (uint32, bool) { return 0, true }
		cfg.Tune = func(c *supervisor.Config) { c.RestartLimit = -1 } // kills back to back
		cfg.Periods = uint64(rng.IntN(2)) * 64                        // 0: until Stop
		s, err := engine.New(cfg)
		require.NoError(t, err)
		started := rng.IntN(3) > 0
		if started {
			require.NoError(t, s.Start())
			time.Sleep(time.Duration(rng.IntN(20000)) * time.Microsecond)
		}
		// Readers, as a status line would, and a fault injector, racing
		// the stops below.
		done := make(chan struct{})
		var watchers sync.WaitGroup
		hammer := func(every time.Duration, f func(k int)) {
			watchers.Add(1)
			go func() {
				defer watchers.Done()
				for k := 0; ; k++ {
					select {
					case <-done:
						return
					case <-time.After(every):
					}
					f(k)
				}
			}()
		}
		hammer(0, func(int) {
			s.Periods()
			s.LaneStats(1)
			s.Tally()
			s.Running()
			s.Supervisor().Counts()
			s.Clock().Lateness()
		})
		hammer(time.Millisecond, func(k int) { s.InjectFault(k%2, supervisor.FaultKill, 0) })
		// Stop parts in a random order, all at once every third time.
		order := rng.Perm(len(stops))
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			if i%3 == 2 {
				var wg sync.WaitGroup
				for _, p := range order {
					wg.Add(1)
					go func() { defer wg.Done(); stops[p].do(s) }()
				}
				wg.Wait()
			}
			for j, p := range order {
				// Wait on a clock that runs until Stop returns once
				// something stops it: here, nothing would.
				if stops[p].name == "Wait" && cfg.Periods == 0 && j == 0 {
					continue
				}
				stops[p].do(s)
			}
			s.Close()
		}()
		select {
		case <-stopped:
		case <-time.After(20 * time.Second):
			t.Fatalf("iteration %d: stopping in order %v hung", i, order)
		}
		close(done)
		watchers.Wait()
		require.False(t, s.Running(), "iteration %d", i)
		require.Zero(t, s.Periods(), "iteration %d: a closed session reads zero", i)
		require.ErrorIs(t, s.Start(), engine.ErrClosed, "iteration %d", i)
		require.Zero(t, regions(), "iteration %d: region still mapped", i)
		require.Empty(t, workers(), "iteration %d: workers left", i)
		if drained.Load() > 0 {
			flowed++
		}
	}
	t.Logf("%d sessions, %d with audio drained before their stop", iterations, flowed)
	require.Positive(t, flowed, "no session ran audio: the stress test tested nothing")
}
