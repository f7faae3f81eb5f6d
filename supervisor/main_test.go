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
	release := rttest.HoldWakeForRun()
	code := m.Run()
	release()
	os.Exit(code)
}
