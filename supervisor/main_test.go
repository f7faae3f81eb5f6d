package supervisor

import (
	"os"
	"runtime"
	"testing"

	"github.com/understudy-rt/understudy/internal/rttest"
)

// Like the command, tests give the monitor spare Ps: see cmd/understudy.
func TestMain(m *testing.M) {
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), 8))
	// Poison blocks save repro files, by default in the temporary
	// directory: the tests' go with the run.
	tmp, err := os.MkdirTemp("", "understudy-supervisor-test-")
	if err == nil {
		os.Setenv("TMPDIR", tmp)
	}
	release := rttest.HoldWakeForRun()
	code := m.Run()
	release()
	if err == nil {
		os.RemoveAll(tmp)
	}
	os.Exit(code)
}
