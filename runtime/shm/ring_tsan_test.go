package shm

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/understudy-rt/understudy/internal/workerbin"
)

// The C ring endpoints (csrc/us_ring.h) under ThreadSanitizer: a producer
// and a consumer thread, futex sleeps on every full and empty ring, every
// block checked. Go's race detector cannot see the C side; TSan can. The same
// program built with the acquire/release pairs dropped must be caught, or
// this test proves nothing.
func TestCRingUnderThreadSanitizer(t *testing.T) {
	root, err := workerbin.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	build := func(name string, extra ...string) string {
		bin := filepath.Join(t.TempDir(), name)
		args := append([]string{"-std=gnu11", "-O1", "-g", "-fsanitize=thread", "-Wno-tsan",
			"-I" + filepath.Join(root, "csrc"), "-o", bin, filepath.Join(root, "csrc/tests/ring_stress.c"), "-lpthread"}, extra...)
		if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
			t.Fatalf("gcc -fsanitize=thread: %v\n%s", err, out)
		}
		return bin
	}
	good := build("ring_stress")
	for _, mode := range []struct{ blocks, spin string }{{"200000", "0"}, {"500000", "1"}} {
		out, err := exec.Command(good, mode.blocks, mode.spin).CombinedOutput()
		if err != nil || strings.Contains(string(out), "WARNING: ThreadSanitizer") {
			t.Fatalf("ring_stress %s %s: %v\n%s", mode.blocks, mode.spin, err, out)
		}
		t.Logf("%s", strings.TrimSpace(string(out)))
	}
	broken := build("ring_stress_broken", "-DUS_TEST_DROP_ORDERING")
	out, _ := exec.Command(broken, "20000", "0").CombinedOutput()
	if !strings.Contains(string(out), "ThreadSanitizer: data race") {
		t.Fatalf("with the ordering dropped, TSan reported no race:\n%s", out)
	}
}
