package bench

import (
	"os"
	"testing"

	"github.com/understudy-rt/understudy/internal/rttest"
)

func TestMain(m *testing.M) {
	release := rttest.HoldWakeForRun()
	code := m.Run()
	release()
	os.Exit(code)
}
