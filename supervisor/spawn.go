package supervisor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/smallnest/ringbuffer"
	"golang.org/x/sys/unix"
)

// ErrWorkerBinary means the worker executable is missing or not executable.
var ErrWorkerBinary = errors.New("worker binary unusable")

// SpawnError is a worker that could not be started or failed its handshake.
type SpawnError struct {
	Worker string
	Slot   int
	Reason string // what happened
	Output string // the worker's last output lines
	Err    error
	// ExitCode is the worker's exit status when it exited during its
	// handshake, else -1: 65 means host and worker disagree on the layout
	// or ABI, the one failure a rebuild fixes.
	ExitCode int
}

// exitLayout is the worker's exit status for a region it cannot speak to.
const exitLayout = 65

func (e *SpawnError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "worker %s (slot %d): %s", e.Worker, e.Slot, e.Reason)
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if out := strings.TrimSpace(e.Output); out != "" {
		fmt.Fprintf(&b, "; it said: %s", out)
	}
	if e.layoutMismatch() {
		b.WriteString(". Rebuild it with `make` so host and worker match, or pass the right one with --worker")
	}
	return b.String()
}

func (e *SpawnError) Unwrap() error { return e.Err }

// layoutMismatch: the worker refused the region's layout or ABI, the one
// failure a rebuild fixes. Its status alone is not enough: a worker also
// exits 65 when the system refuses it something (mapping its slot, closing
// inherited fds), and a rebuild would not help there.
func (e *SpawnError) layoutMismatch() bool {
	return e.ExitCode == exitLayout && strings.Contains(e.Output, "layout differs")
}

// CheckWorker fails early, with the fix, when path cannot be executed.
func CheckWorker(path string) error { return checkWorkerBinary(path) }

func checkWorkerBinary(path string) error {
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %s: %v; build it with `make` or pass --worker PATH", ErrWorkerBinary, path, err)
	case st.IsDir():
		return fmt.Errorf("%w: %s is a directory; pass the understudy-worker executable with --worker", ErrWorkerBinary, path)
	case unix.Access(path, unix.X_OK) != nil:
		return fmt.Errorf("%w: %s is not executable; chmod +x it, or pass the understudy-worker executable with --worker", ErrWorkerBinary, path)
	}
	return nil
}

// spawner forks every worker from one goroutine locked to one OS thread for
// the supervisor's whole life: PR_SET_PDEATHSIG fires when the *thread* that
// forked a child exits (golang/go#27505), so forking from arbitrary threads
// would kill workers whenever Go retired a thread.
type spawner struct {
	reqs chan spawnReq
	done chan struct{}
}

type spawnReq struct {
	path  string
	argv  []string
	files []uintptr
	reply chan spawnResult
}

type spawnResult struct {
	pid, pidfd int
	err        error
}

func startSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq), done: make(chan struct{})}
	started := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the supervisor
		close(started)
		defer close(s.done)
		for r := range s.reqs {
			pidfd := -1
			attr := &syscall.ProcAttr{
				Files: r.files,
				Sys:   &syscall.SysProcAttr{PidFD: &pidfd, Pdeathsig: syscall.SIGKILL},
			}
			pid, err := syscall.ForkExec(r.path, r.argv, attr)
			r.reply <- spawnResult{pid: pid, pidfd: pidfd, err: err}
		}
	}()
	<-started
	return s
}

func (s *spawner) spawn(path string, argv []string, files []uintptr) (pid, pidfd int, err error) {
	reply := make(chan spawnResult, 1)
	s.reqs <- spawnReq{path: path, argv: argv, files: files, reply: reply}
	r := <-reply
	return r.pid, r.pidfd, r.err
}

func (s *spawner) stop() {
	close(s.reqs)
	<-s.done
}

// workerArgs is a worker's command line. Its priority and CPU are not on
// it: the host sets them from outside (placeWorker), because a sandboxed
// worker may not change its own scheduling.
func workerArgs(cfg *Config, slot int, gen uint32) []string {
	a := []string{cfg.Worker,
		"--slot-fd", "3", "--doorbell-fd", "4", "--ctl-fd", "5",
		"--slot", strconv.Itoa(slot), "--gen", strconv.FormatUint(uint64(gen), 10),
		"--parent", strconv.Itoa(os.Getpid()),
		"--spin-us", strconv.Itoa(cfg.SpinMicros),
	}
	return append(a, sandboxArgs(cfg)...)
}

// outputTail keeps the last bytes a worker printed on stderr and stdout, for
// its failure events and error messages: a ring that overwrites its oldest
// bytes, so a kernel that prints without end costs the host 4 KiB. Filled
// by the worker's drain goroutine, read by the control plane; never touched
// by the monitor. The zero value is ready to use.
type outputTail struct {
	mu sync.Mutex // held across each read of the pipe and its copy into the ring
	rb *ringbuffer.RingBuffer
	f  *os.File // the pipe's read end while it is drained
}

const outputTailBytes = 4096

// Write keeps the last outputTailBytes of everything written. The ring
// itself, given more than it holds, would keep the first bytes.
func (t *outputTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.write(p)
	return len(p), nil
}

func (t *outputTail) write(p []byte) {
	if t.rb == nil {
		t.rb = ringbuffer.New(outputTailBytes).SetOverwrite(true)
	}
	if len(p) > outputTailBytes {
		p = p[len(p)-outputTailBytes:]
	}
	if len(p) > 0 {
		t.rb.Write(p)
	}
}

func (t *outputTail) String() string {
	t.catchUp()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rb == nil {
		return ""
	}
	return string(t.rb.Bytes(nil))
}

// drain copies the worker's output from the pipe into the ring until the
// pipe ends, then closes it and drained. Each read and its copy happen
// under t.mu, so that catchUp can tell that nothing is in flight.
func (t *outputTail) drain(pr *os.File, drained chan<- struct{}) {
	defer close(drained)
	rc, err := pr.SyscallConn()
	if err == nil {
		t.mu.Lock()
		t.f = pr
		t.mu.Unlock()
		buf := make([]byte, 512)
		rc.Read(func(fd uintptr) bool {
			t.mu.Lock()
			defer t.mu.Unlock()
			return t.readAll(int(fd), buf)
		})
	} else {
		io.Copy(t, pr)
	}
	t.mu.Lock()
	t.f = nil
	t.mu.Unlock()
	pr.Close()
}

// readAll moves what the pipe holds into the ring, without blocking. It
// says whether the pipe is done (its end, or an error); false means it is
// empty for now. t.mu is held.
func (t *outputTail) readAll(fd int, buf []byte) (done bool) {
	for {
		n, err := unix.Read(fd, buf)
		if n > 0 {
			t.write(buf[:n])
			continue
		}
		if err == unix.EINTR {
			continue
		}
		return err != unix.EAGAIN
	}
}

// catchUp takes into the ring whatever the worker wrote that the drain
// goroutine has not read yet. A worker's write into its pipe is complete
// when the call returns, so once a worker is dead its last words are
// either in the ring or in the pipe: after catchUp they are all in the
// ring, with no wait for the pipe's end (which comes only after the kernel
// has torn the process's memory down).
func (t *outputTail) catchUp() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f == nil {
		return
	}
	rc, err := t.f.SyscallConn()
	if err != nil {
		return
	}
	var buf [512]byte
	rc.Control(func(fd uintptr) { t.readAll(int(fd), buf[:]) })
}
