// Package rttest decides what a test does when the machine cannot give it
// real-time privileges: skip by default, so `go test` stays green on laptops
// and CI without them, but fail when UNDERSTUDY_REQUIRE_RT=1, so a machine
// that is supposed to run the real-time tests cannot quietly skip them all.
package rttest

import (
	"fmt"
	"os"
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
