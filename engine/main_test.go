package engine_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/understudy-rt/understudy/engine"
	"github.com/understudy-rt/understudy/internal/rttest"
	"github.com/understudy-rt/understudy/internal/workerbin"
)

// The examples find the worker as a user's program does, through
// engine.WorkerPath: $UNDERSTUDY_WORKER, which this points at the tree's.
func TestMain(m *testing.M) {
	if os.Getenv(engine.WorkerEnv) == "" {
		w, err := workerbin.Path()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Setenv(engine.WorkerEnv, w)
	}
	release := rttest.HoldWakeForRun()
	code := m.Run()
	release()
	os.Exit(code)
}
