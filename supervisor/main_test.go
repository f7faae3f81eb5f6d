package supervisor

import (
	"os"
	"runtime"
	"testing"
)

// Like the command, tests give the monitor spare Ps: see cmd/understudy.
func TestMain(m *testing.M) {
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), 8))
	os.Exit(m.Run())
}
