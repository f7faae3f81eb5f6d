// The SDK end to end: the example kernel is built into a worker with the
// Makefile and with CMake, each worker is asked for its kernels, and a file
// is rendered through it under supervision (with a kill in the middle) and
// compared bit for bit with the same arithmetic in Go.
package examples_test

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/understudy-rt/understudy/engine"
	"github.com/understudy-rt/understudy/internal/workerbin"
	"github.com/understudy-rt/understudy/runtime/catalog"
	"github.com/understudy-rt/understudy/runtime/chain"
	"github.com/understudy-rt/understudy/supervisor"
)

func root(t *testing.T) string {
	r, err := workerbin.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func run(t *testing.T, dir string, name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// buildUser builds a worker carrying kernel into out with the SDK's make
// target.
func buildUser(t *testing.T, kernel, out string) {
	t.Helper()
	if err := workerbin.BuildUser(kernel, out); err != nil {
		t.Fatal(err)
	}
}

func buildWithMake(t *testing.T) string {
	out := filepath.Join(t.TempDir(), "softclip-worker")
	buildUser(t, "examples/softclip/softclip.c", out)
	return out
}

func buildWithCMake(t *testing.T) string {
	if _, err := exec.LookPath("cmake"); err != nil {
		t.Fatal("cmake is not installed: `make test` installs it (make deps), or apt-get install cmake")
	}
	build := t.TempDir()
	run(t, root(t), "cmake", "-S", "examples/softclip", "-B", build, "-DCMAKE_BUILD_TYPE=Release")
	run(t, root(t), "cmake", "--build", build, "-j2")
	return filepath.Join(build, "softclip-worker")
}

// drive is the kernel's own 10^(db/20) loop, in float32 like the C.
func drive(db float32) float32 {
	g := float32(1)
	for d := float32(0); d+1 <= db; d++ {
		g *= float32(1.12201845)
	}
	return g
}

func TestSoftclipWorkerBuiltBothWays(t *testing.T) {
	for _, b := range []struct {
		name  string
		build func(*testing.T) string
	}{{"make", buildWithMake}, {"cmake", buildWithCMake}} {
		t.Run(b.name, func(t *testing.T) {
			worker := b.build(t)
			cat, err := catalog.Load(worker)
			if err != nil {
				t.Fatal(err)
			}
			k, ok := cat.Lookup("softclip")
			if !ok || len(k.Params) != 1 || k.Params[0].Name != "drive" {
				t.Fatalf("worker lists softclip as %+v", k)
			}
			if _, ok := cat.Lookup("lowpass"); !ok {
				t.Error("a user worker should still carry the built-in kernels")
			}
			if _, err := chain.Parse("softclip drive=99", cat); err == nil || !strings.Contains(err.Error(), "out of range") {
				t.Errorf("drive=99: %v", err)
			}
			s, err := engine.New(engine.Config{Backend: engine.Offline, Worker: worker, Catalog: cat, Spares: 1,
				Lanes: []engine.Lane{{Chain: "softclip drive=12", Channels: 2}}, Rate: 48000, Block: 128})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			in := make([]float32, 2*128*20000)
			for i := range in {
				in[i] = float32(math.Sin(float64(i)*0.003)) * 1.5
			}
			done := make(chan struct{})
			var out []float32
			var rerr error
			go func() {
				defer close(done)
				out, rerr = s.Render(0, in)
			}()
			for s.Lane(0).Committed() < 500 {
				time.Sleep(50 * time.Microsecond)
			}
			if _, err := s.InjectFault(0, supervisor.FaultKill, 0); err != nil {
				t.Fatal(err)
			}
			<-done
			if rerr != nil {
				t.Fatal(rerr)
			}
			d := drive(12)
			for i, x := range in {
				v := x * d
				a := v
				if a < 0 {
					a = -a
				}
				if want := v / (1 + a); math.Float32bits(out[i]) != math.Float32bits(want) {
					t.Fatalf("sample %d: %g, want %g", i, out[i], want)
				}
			}
		})
	}
}

// A kernel built for another ABI version is refused with a clear error.
func TestKernelOfAnotherABIIsRefused(t *testing.T) {
	worker := softclipAs(t, ".abi_version = 999,")
	_, err := catalog.Load(worker)
	if err == nil || !strings.Contains(err.Error(), "softclip was built for ABI 999") {
		t.Errorf("loading a worker with an ABI-999 kernel: %v", err)
	}
}

// A kernel of ABI 1 (before live parameters) still loads and runs, with
// every parameter fixed: the worker never reads the fields ABI 2 added,
// which the old struct does not have. The rewritten source sets one of
// them anyway, to show that it is not read.
func TestKernelOfABI1StillLoads(t *testing.T) {
	worker := softclipAs(t, ".abi_version = 1, .live = 1u,")
	cat, err := catalog.Load(worker)
	if err != nil {
		t.Fatalf("loading a worker with an ABI-1 kernel: %v", err)
	}
	k, ok := cat.Lookup("softclip")
	if !ok || len(k.Params) != 1 || k.Params[0].Live {
		t.Fatalf("worker lists the ABI-1 softclip as %+v, want drive not live", k)
	}
	st, err := chain.Parse("softclip drive=12", cat)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := chain.Live(st[0], "drive", 6, 1, 48000); err == nil {
		t.Error("a live change of an ABI-1 kernel's parameter was accepted")
	}
	s, err := engine.New(engine.Config{Backend: engine.Offline, Worker: worker, Catalog: cat,
		Lanes: []engine.Lane{{Chain: "softclip drive=12", Channels: 1}}, Rate: 48000, Block: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	in := make([]float32, 64*100)
	for i := range in {
		in[i] = float32(math.Sin(float64(i)*0.01)) * 1.5
	}
	out, err := s.Render(0, in)
	if err != nil {
		t.Fatal(err)
	}
	d := drive(12)
	for i, x := range in {
		v := x * d
		if want := v / (1 + float32(math.Abs(float64(v)))); math.Float32bits(out[i]) != math.Float32bits(want) {
			t.Fatalf("sample %d: %g, want %g", i, out[i], want)
		}
	}
}

// softclipAs builds a worker carrying the softclip example with its
// `.abi_version = US_KERNEL_ABI_VERSION,` line replaced by abi.
func softclipAs(t *testing.T, abi string) string {
	t.Helper()
	code, err := os.ReadFile(filepath.Join(root(t), "examples/softclip/softclip.c"))
	if err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(string(code), ".abi_version = US_KERNEL_ABI_VERSION,", abi, 1)
	if src == string(code) {
		t.Fatal("could not rewrite the example's ABI version")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "k.c"), []byte(src), 0o644)
	worker := filepath.Join(dir, "worker")
	buildUser(t, filepath.Join(dir, "k.c"), worker)
	return worker
}
