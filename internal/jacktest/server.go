package jacktest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/understudy-rt/understudy/internal/rttest"
	"github.com/understudy-rt/understudy/internal/workerbin"
)

var depsOnce sync.Once

// RequireJACK makes sure jackd, jack_wait and libjack are installed. When one
// is missing under UNDERSTUDY_REQUIRE_RT=1 (CI, as root) it runs
// scripts/jack-deps and says so in the log; when still missing the test
// skips, or fails under UNDERSTUDY_REQUIRE_RT=1. A developer's `go test`
// never installs anything: it skips, naming the script.
func RequireJACK(t testing.TB) {
	t.Helper()
	require(t, have, "jackd2 (jackd, jack_wait, libjack.so.0)")
}

// RequirePipeWire is RequireJACK for PipeWire and its JACK library
// (pipewire, pw-jack), which scripts/jack-deps installs too.
func RequirePipeWire(t testing.TB) {
	t.Helper()
	require(t, func() bool { return onPath("pipewire", "pw-jack") }, "pipewire and pipewire-jack")
}

func require(t testing.TB, present func() bool, what string) {
	t.Helper()
	if present() {
		return
	}
	depsOnce.Do(func() {
		if !rttest.Required() || os.Geteuid() != 0 {
			return
		}
		root, err := workerbin.ModuleRoot()
		if err != nil {
			return
		}
		t.Logf("%s missing: running scripts/jack-deps to install it", what)
		out, err := exec.Command(filepath.Join(root, "scripts", "jack-deps")).CombinedOutput()
		t.Logf("%s", bytes.TrimSpace(out))
		if err != nil {
			t.Logf("scripts/jack-deps: %v", err)
		}
	})
	if !present() {
		rttest.SkipOrFail(t, "needs %s: run scripts/jack-deps as root", what)
	}
}

func onPath(bins ...string) bool {
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			return false
		}
	}
	return true
}

func have() bool {
	if !onPath("jackd", "jack_wait", "jack_lsp") {
		return false
	}
	for _, d := range []string{"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"} {
		if _, err := os.Stat(filepath.Join(d, "libjack.so.0")); err == nil {
			return true
		}
	}
	return false
}

// freeName picks a server name from a small fixed pool, the first no jackd
// runs under. Not a fresh name each time: jackd keeps at most 8 servers in
// its shared registry and reclaims a dead server's entry only for a server of
// the same name, so unique names would fill it with the dead (a jackd that
// was killed never unregisters) until none can start.
func freeName() string {
	for i := 0; ; i++ {
		name := fmt.Sprintf("ustest%d", i)
		if i == 5 || !running(name) {
			return name
		}
	}
}

// running says whether a jackd with -n name is alive.
func running(name string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) < 3 || filepath.Base(args[0]) != "jackd" {
			continue
		}
		for k := 0; k+1 < len(args); k++ {
			if (args[k] == "-n" || args[k] == "--name") && args[k+1] == name {
				return true
			}
		}
	}
	return false
}

// startLocked starts cmd from an OS thread that outlives it, and closes done
// once cmd has exited. Pdeathsig follows the thread that forked, not the
// process: a child forked from an ordinary thread is killed whenever Go ends
// that thread (as it does when a goroutine that locked it, such as a
// supervisor's monitor, exits), which killed test servers mid-test.
func startLocked(cmd *exec.Cmd, done chan struct{}) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, after cmd.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			errc <- err
			return
		}
		errc <- nil
		cmd.Wait()
		close(done)
	}()
	return <-errc
}

// Server is one jackd of a test's own.
type Server struct {
	Name string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	mu   sync.Mutex
	done chan struct{}
}

// StartServer starts `jackd -n <unique> -R -d dummy -r rate -p period` (and,
// if that never comes up, the same without -R), waits for it with
// `jack_wait -s <name> -w`, and stops it, with its whole process group, when
// the test ends.
func StartServer(t testing.TB, rate, period int) *Server {
	t.Helper()
	RequireJACK(t)
	name := freeName()
	var last string
	for _, rtFlag := range []bool{true, false} {
		s := &Server{Name: name, log: &bytes.Buffer{}, done: make(chan struct{})}
		args := []string{"-n", name}
		if rtFlag {
			args = append(args, "-R")
		} else {
			args = append(args, "-r")
		}
		args = append(args, "-d", "dummy", "-r", fmt.Sprint(rate), "-p", fmt.Sprint(period))
		s.cmd = exec.Command("jackd", args...)
		s.cmd.Stdout = lockedWriter{s}
		s.cmd.Stderr = lockedWriter{s}
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := startLocked(s.cmd, s.done); err != nil {
			t.Fatalf("jackd: %v", err)
		}
		t.Cleanup(s.Stop)
		// jack_wait polls by opening a client, which prints libjack's
		// complaints until the server is there: kept only for a failure.
		w := exec.Command("jack_wait", "-s", name, "-w", "-t", "10")
		out, err := w.CombinedOutput()
		if err == nil && s.Alive() {
			t.Logf("jackd %s up", strings.Join(args, " "))
			return s
		}
		last = fmt.Sprintf("jackd %s: jack_wait: %v %s; server log:\n%s", strings.Join(args, " "), err, out, s.Log())
		s.Stop()
	}
	t.Fatalf("no JACK server came up: %s", last)
	return nil
}

type lockedWriter struct{ s *Server }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.log.Write(p)
}

// Log is what the server printed so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Alive says whether jackd still runs.
func (s *Server) Alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Kill ends the server at once (SIGKILL to its process group), and removes
// the shared-memory files a killed jackd leaves behind under its name.
func (s *Server) Kill() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	s.removeLeftovers()
}

func (s *Server) removeLeftovers() {
	left, _ := filepath.Glob("/dev/shm/*" + s.Name + "*")
	for _, f := range left {
		os.Remove(f)
	}
}

// Stop ends the server: SIGTERM to its process group, SIGKILL after 3 s.
// Idempotent.
func (s *Server) Stop() {
	if !s.Alive() {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(3 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.removeLeftovers()
}

// Lsp runs jack_lsp against the server with extra flags: its standard
// output, the listing. What libjack says on standard error (unprivileged,
// "Cannot lock down ... memory area") is not part of it; it comes with the
// error when jack_lsp fails.
func (s *Server) Lsp(flags ...string) (string, error) {
	var stderr strings.Builder
	cmd := exec.Command("jack_lsp", append([]string{"-s", s.Name}, flags...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}
