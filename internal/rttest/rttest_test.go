package rttest_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/understudy-rt/understudy/internal/rttest"
)

const helperEnv = "UNDERSTUDY_RTTEST_HELPER"

// runHelper runs this test binary's TestHelperSkipOrFail in a child, so the
// real testing package decides what Skip and Fatal do.
func runHelper(t *testing.T, require bool) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperSkipOrFail$", "-test.v")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, rttest.RequireEnv+"=") && !strings.HasPrefix(kv, "GOCOVERDIR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, helperEnv+"=1")
	if require {
		cmd.Env = append(cmd.Env, rttest.RequireEnv+"=1")
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestSkipOrFailSkipsByDefault(t *testing.T) {
	out, err := runHelper(t, false)
	if err != nil || !strings.Contains(out, "--- SKIP: TestHelperSkipOrFail") || !strings.Contains(out, "no widget 7") {
		t.Errorf("child: err=%v; want exit 0 and a SKIP with the reason:\n%s", err, out)
	}
	if strings.Contains(out, "after SkipOrFail") {
		t.Errorf("test continued after SkipOrFail:\n%s", out)
	}
}

func TestSkipOrFailFailsWhenRequired(t *testing.T) {
	out, err := runHelper(t, true)
	if err == nil || !strings.Contains(out, "--- FAIL: TestHelperSkipOrFail") ||
		!strings.Contains(out, "no widget 7") || !strings.Contains(out, rttest.RequireEnv+"=1") {
		t.Errorf("child: err=%v; want a failure naming the reason and %s=1:\n%s", err, rttest.RequireEnv, out)
	}
	if strings.Contains(out, "after SkipOrFail") {
		t.Errorf("test continued after SkipOrFail:\n%s", out)
	}
}

func TestHelperSkipOrFail(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return // the body of a child process; nothing to do when run directly
	}
	rttest.SkipOrFail(t, "no widget %d", 7)
	t.Log("after SkipOrFail")
}

func TestRequireRT(t *testing.T) {
	p := rttest.RequireRT(t)
	// Reaching here means RequireRT judged the privileges sufficient.
	if !p.FIFO || !p.MemLock {
		t.Errorf("RequireRT returned %+v without skipping", p)
	}
}
