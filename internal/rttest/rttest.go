// Package rttest decides what a test does when the machine cannot give it
// real-time privileges: skip by default, so `go test` stays green on laptops
// and CI without them, but fail when UNDERSTUDY_REQUIRE_RT=1, so a machine
// that is supposed to run the real-time tests cannot quietly skip them all.
package rttest

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/understudy-rt/understudy/rt"
)

// RequireEnv is the environment variable that turns skips into failures
// when set to "1".
const RequireEnv = "UNDERSTUDY_REQUIRE_RT"

// Required reports whether missing real-time features must fail tests.
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// RequireRT skips t (or fails it, under UNDERSTUDY_REQUIRE_RT=1) unless the
// process may use SCHED_FIFO and lock its memory. It returns what Probe found.
func RequireRT(t testing.TB) rt.Privileges {
	t.Helper()
	p := rt.Probe()
	if !p.FIFO || !p.MemLock {
		SkipOrFail(t, "needs real-time privileges: %s", p.Warning())
	}
	return p
}

// SkipOrFail skips t with the formatted reason, or fails it under
// UNDERSTUDY_REQUIRE_RT=1. Either way t stops here.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (failing instead of skipping because %s=1)", reason, RequireEnv)
	}
	t.Skip(reason)
}

// HoldWakeEnv, set to 1 (as `make bench` does), makes HoldWakeForRun hold
// the CPU wake-up latency at 0 µs for a whole test binary's run: the setting
// a real-time supervisor runs under, so that benchmarks of wake-ups measure
// what a user's lanes get.
const HoldWakeEnv = "UNDERSTUDY_HOLD_WAKE"

// HoldWakeForRun applies HoldWakeEnv; call it from TestMain and call the
// result when m.Run returns.
func HoldWakeForRun() (release func()) {
	if os.Getenv(HoldWakeEnv) != "1" {
		return func() {}
	}
	h, err := rt.HoldWakeLatency(0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s=1 but the hold failed, idle CPUs may halt: %v\n", HoldWakeEnv, err)
		return func() {}
	}
	return func() { h.Release() }
}

// Attempt is one run of a real-time scenario as its checks judged it.
type Attempt struct {
	// Problems are the checks that failed.
	Problems []string
	// Disturbed says what the machine did to the run that no code under
	// test could have prevented (a failover of a worker nobody faulted, a
	// clock wake-up later than the output's headroom), or is empty.
	Disturbed []string
	// Report, if set, logs what helps read a failure; it runs only for the
	// attempt whose problems fail the test.
	Report func()
}

// UnderNoise runs scenario until one attempt is either clean (the test
// passes) or failed undisturbed (a problem the machine does not explain: the
// test fails). An attempt whose problems coincide with a disturbance proves
// nothing either way and is run again, up to attempts times in all; if the
// machine disturbs them all, the test fails and says so. Timing figures
// belong to benchmarks; this keeps correctness checks (every block
// delivered, bit-exact, the expected detection path) from failing on a
// shared machine's stall, without letting a real failure pass.
func UnderNoise(t testing.TB, attempts int, scenario func(attempt int) Attempt) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		a := scenario(attempt)
		why := strings.Join(a.Disturbed, "; ")
		switch {
		case len(a.Problems) > 0 && why != "" && attempt < attempts:
			t.Logf("attempt %d disturbed by the machine (%s); its problems prove nothing: %s",
				attempt, why, strings.Join(a.Problems, "; "))
			continue
		case len(a.Problems) > 0:
			if a.Report != nil {
				a.Report()
			}
			for _, p := range a.Problems {
				t.Error(p)
			}
			if why != "" {
				t.Errorf("all %d attempts were disturbed by the machine; the last by %s", attempt, why)
			}
		case why != "":
			t.Logf("passed despite: %s", why)
		}
		return
	}
}

// UseRT says whether a test that runs better at real-time priority, but
// whose checks hold without it (failover paths, bit-exact output), gets it:
// yes where the privileges are there, and under UNDERSTUDY_REQUIRE_RT=1,
// where their absence fails the test. Without them it runs on ordinary
// scheduling and says so, instead of skipping.
func UseRT(t testing.TB) bool {
	t.Helper()
	if Required() {
		RequireRT(t)
		return true
	}
	if p := rt.Probe(); !p.FIFO || !p.MemLock {
		t.Logf("running on ordinary scheduling: %s", p.Warning())
		return false
	}
	return true
}

// PinToCPU0 locks the calling goroutine to its thread on CPU 0 until the
// test or benchmark ends, when the thread may run on both CPUs again.
func PinToCPU0(t testing.TB) {
	runtime.LockOSThread()
	if err := rt.SetThreadAffinity([]int{0}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rt.SetThreadAffinity([]int{0, 1})
		runtime.UnlockOSThread()
	})
}
