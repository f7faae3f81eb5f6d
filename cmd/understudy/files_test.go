package main

// The CLI's files, tested as a user meets them: bin/understudy run as a
// process of its own, on real files, device nodes, FIFOs, sockets and pipes.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/understudy-rt/understudy/internal/workerbin"
	"github.com/understudy-rt/understudy/runtime/wav"
	"golang.org/x/sys/unix"
)

func host(t *testing.T) string {
	t.Helper()
	p, err := workerbin.HostPath()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type hostRun struct {
	code           int
	pid            int
	stdout, stderr []byte
}

// runHost runs bin/understudy with args and stdin (nil: none), bounded at
// 2 minutes so a hang fails the test instead of stalling the suite.
func runHost(t *testing.T, stdin io.Reader, args ...string) hostRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, host(t), args...)
	var o, e bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &o, &e
	err := cmd.Run()
	r := hostRun{stdout: o.Bytes(), stderr: e.Bytes()}
	if cmd.Process != nil {
		r.pid = cmd.Process.Pid
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.code = 128 + int(ws.Signal())
		}
	default:
		t.Fatalf("understudy %v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("understudy %v hung: %s", args, e.Bytes())
	}
	return r
}

// workersOf lists the processes started with --parent pid: a host's
// workers. They die with their host by PDEATHSIG, which takes the kernel a
// moment, so a host's leftovers are looked for until they are gone or 2 s
// have passed.
func workersOf(pid int) []int {
	var left []int
	for end := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left = left[:0]
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			if bytes.Contains(b, []byte("\x00--parent\x00"+strconv.Itoa(pid)+"\x00")) {
				n, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				left = append(left, n)
			}
		}
		if len(left) == 0 || time.Now().After(end) {
			return left
		}
	}
}

// checkClean asserts what every failed run must leave: one line on stderr,
// no temporary file in dir, no worker alive.
func checkClean(t *testing.T, r hostRun, dir string) {
	t.Helper()
	if lines := strings.Count(strings.TrimSpace(string(r.stderr)), "\n") + 1; lines != 1 {
		t.Errorf("want one line on stderr, got %d:\n%s", lines, r.stderr)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
	if w := workersOf(r.pid); len(w) != 0 {
		t.Errorf("workers %v outlived their host", w)
	}
}

func writeInput(t *testing.T, path string, channels, frames int) *wav.Audio {
	t.Helper()
	a := &wav.Audio{Rate: 48000, Channels: channels, Samples: make([]float32, channels*frames)}
	for i := range a.Samples {
		a.Samples[i] = float32(math.Sin(float64(i)*0.001)) * 0.5
	}
	if err := wav.WriteFile(path, a); err != nil {
		t.Fatal(err)
	}
	return a
}

// --out takes only regular files. As root, renaming over /dev/null used to
// replace the system's null device with the rendered WAV; here a device
// node of the same numbers is made in a temporary directory, with a FIFO, a
// socket and a directory, and each must come through untouched.
func TestOutRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.wav")
	writeInput(t, in, 2, 4800)
	targets := map[string]string{}
	dev := filepath.Join(dir, "null")
	if err := unix.Mknod(dev, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Logf("mknod needs root (%v): the device node case is skipped", err)
	} else {
		targets["a character device"] = dev
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	targets["a FIFO"] = fifo
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	targets["a socket"] = sock
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	targets["a directory"] = sub
	for what, p := range targets {
		t.Run(what, func(t *testing.T) {
			before, _ := os.Lstat(p)
			r := runHost(t, nil, "process", "--worker", worker(t), "--in", in, "--out", p, "--chain", "gain db=-6")
			if r.code != 2 || !strings.Contains(string(r.stderr), what) || !strings.Contains(string(r.stderr), p) {
				t.Errorf("exit %d, %q; want 2 and a line naming %s and %s", r.code, r.stderr, p, what)
			}
			after, err := os.Lstat(p)
			if err != nil || after.Mode() != before.Mode() || !os.SameFile(before, after) {
				t.Errorf("%s was replaced: %v", p, after.Mode())
			}
			if st, ok := after.Sys().(*syscall.Stat_t); ok && what == "a character device" && st.Rdev != unix.Mkdev(1, 3) {
				t.Errorf("the device node now has numbers %#x", st.Rdev)
			}
			checkClean(t, r, dir)
			r = runHost(t, nil, "demo", "--worker", worker(t), "--duration", "100ms", "--out", p, "--report", filepath.Join(dir, "r.json"))
			if r.code != 2 || !strings.Contains(string(r.stderr), what) {
				t.Errorf("demo: exit %d, %q; want 2 and a line naming %s", r.code, r.stderr, what)
			}
			checkClean(t, r, dir)
		})
	}
}

// A missing directory is an error, not a directory created on the quiet.
func TestOutNeedsItsDirectory(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.wav")
	writeInput(t, in, 2, 4800)
	missing := filepath.Join(dir, "no", "such")
	for _, cmd := range [][]string{
		{"process", "--in", in, "--out", filepath.Join(missing, "out.wav"), "--chain", "gain"},
		{"demo", "--duration", "100ms", "--out", filepath.Join(missing, "out.wav"), "--report", filepath.Join(dir, "r.json")},
		{"demo", "--duration", "100ms", "--out", filepath.Join(dir, "d.wav"), "--report", filepath.Join(missing, "r.json")},
	} {
		r := runHost(t, nil, append(cmd, "--worker", worker(t))...)
		if r.code != 2 || !strings.Contains(string(r.stderr), "does not exist") {
			t.Errorf("%v: exit %d, %q; want 2 and that the directory does not exist", cmd, r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "no")); err == nil {
			t.Errorf("%v created %s", cmd, filepath.Join(dir, "no"))
		}
		checkClean(t, r, dir)
	}
}

// --in - and --out - stream through pipes: the WAV on standard output has
// the streaming sizes, the same samples as a file render, and nothing but
// the WAV is written there.
func TestProcessStreamsThroughPipes(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.wav"), filepath.Join(dir, "out.wav")
	writeInput(t, in, 4, 48000+100)
	args := []string{"process", "--worker", worker(t), "--chain", "lowpass f=2000 | gain db=-3", "--lanes", "2"}
	if r := runHost(t, nil, append(args, "--in", in, "--out", out)...); r.code != 0 {
		t.Fatalf("file render: exit %d: %s", r.code, r.stderr)
	}
	want, err := wav.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(in)
	// Through an io.Reader that is not an *os.File, exec gives the child a
	// pipe, as a shell pipeline would.
	r := runHost(t, struct{ io.Reader }{bytes.NewReader(raw)}, append(args, "--in", "-", "--out", "-")...)
	if r.code != 0 {
		t.Fatalf("pipe render: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(string(r.stderr), "standard input → standard output") {
		t.Errorf("the summary should go to stderr when stdout carries the WAV: %q", r.stderr)
	}
	if got := binary.LittleEndian.Uint32(r.stdout[4:]); got != 0xFFFFFFFF {
		t.Errorf("RIFF size %#x on a pipe, want the streaming 0xFFFFFFFF", got)
	}
	got, err := wav.Decode(bytes.NewReader(r.stdout), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	if got.Channels != want.Channels || got.Rate != want.Rate || len(got.Samples) != len(want.Samples) {
		t.Fatalf("stream %d ch %d Hz %d samples, file %d ch %d Hz %d samples", got.Channels, got.Rate, len(got.Samples), want.Channels, want.Rate, len(want.Samples))
	}
	for i := range want.Samples {
		if math.Float32bits(got.Samples[i]) != math.Float32bits(want.Samples[i]) {
			t.Fatalf("sample %d: %g through pipes, %g through files", i, got.Samples[i], want.Samples[i])
		}
	}
}

// An input that turns out truncated partway through the render is bad
// input like any other: exit 2, one line, no output, nothing left.
func TestTruncatedInputMidRender(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.wav"), filepath.Join(dir, "out.wav")
	writeInput(t, in, 2, 48000)
	st, _ := os.Stat(in)
	if err := os.Truncate(in, st.Size()-1000); err != nil {
		t.Fatal(err)
	}
	r := runHost(t, nil, "process", "--worker", worker(t), "--in", in, "--out", out, "--chain", "gain")
	if r.code != 2 || !strings.Contains(string(r.stderr), "truncated data") {
		t.Errorf("exit %d, %q; want 2 and that the data is truncated", r.code, r.stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s was written", out)
	}
	checkClean(t, r, dir)
}

// A FIFO on --in that nobody writes to ends the run after --read-timeout.
func TestInFIFOWithoutWriterGivesUp(t *testing.T) {
	dir := t.TempDir()
	fifo, out := filepath.Join(dir, "in.fifo"), filepath.Join(dir, "out.wav")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runHost(t, nil, "process", "--worker", worker(t), "--in", fifo, "--out", out, "--chain", "gain", "--read-timeout", "300ms")
	if r.code != 2 || !strings.Contains(string(r.stderr), "nothing is writing to it") {
		t.Errorf("exit %d, %q; want 2 and that nothing writes to the FIFO", r.code, r.stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s was written", out)
	}
	checkClean(t, r, dir)
}

// SIGTERM or SIGINT mid-render: the run stops with 128+signal and one line,
// the output file is absent (not partial), its temporary file is gone and
// no worker is left. The input comes through a FIFO the test holds open,
// so the signal lands while the render is provably under way: some output
// has reached the temporary file, and the rest of the input has not come.
func TestSignalMidRenderLeavesNothing(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			dir := t.TempDir()
			fifo, out := filepath.Join(dir, "in.fifo"), filepath.Join(dir, "out.wav")
			if err := unix.Mkfifo(fifo, 0o644); err != nil {
				t.Fatal(err)
			}
			// A read timeout far longer than the test's bound below: the
			// signal, not the timeout, must be what ends the run.
			cmd := exec.Command(host(t), "process", "--worker", worker(t), "--in", fifo, "--out", out, "--chain", "gain db=-6", "--read-timeout", "10m")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// A streamed header and 1 s of stereo audio; the rest never comes.
			var hdr bytes.Buffer
			w, _ := wav.NewStream(&hdr, "x", 48000, 2)
			w.Write(make([]float32, 2*48000))
			w.Close()
			if _, err := f.Write(hdr.Bytes()); err != nil {
				t.Fatal(err)
			}
			// The output being written has no name (O_TMPFILE): it is found
			// among the host's open files, as "dir/#inode (deleted)".
			for end := time.Now().Add(30 * time.Second); !writing(cmd.Process.Pid, dir); time.Sleep(5 * time.Millisecond) {
				if time.Now().After(end) {
					t.Fatalf("no output was being written; stderr: %s", stderr.Bytes())
				}
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			stopped := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
			err = cmd.Wait()
			if !stopped.Stop() {
				t.Fatalf("%s did not stop the run within a minute", unix.SignalName(sig))
			}
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			}
			r := hostRun{code: code, pid: cmd.Process.Pid, stderr: stderr.Bytes()}
			if code != 128+int(sig) || !strings.Contains(string(r.stderr), "stopped by "+unix.SignalName(sig)) {
				t.Errorf("exit %d, %q; want %d and that %s stopped it", code, r.stderr, 128+int(sig), unix.SignalName(sig))
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a partial %s was published", out)
			}
			if n, _ := os.ReadDir(dir); len(n) != 1 {
				t.Errorf("the directory holds %v, want only the FIFO", n)
			}
			checkClean(t, r, dir)
		})
	}
}

// writing says whether pid has an unnamed file in dir open with more than
// a header in it: output under way.
func writing(pid int, dir string) bool {
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		target, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(target, dir+"/") || !strings.HasSuffix(target, "(deleted)") {
			continue
		}
		if st, err := os.Stat(fd); err == nil && st.Size() > 1000 {
			return true
		}
	}
	return false
}

// Standard output redirected to a file gets a WAV with its real sizes.
func TestOutDashToAFileHasRealSizes(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.wav"), filepath.Join(dir, "redirected.wav")
	a := writeInput(t, in, 2, 10000)
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(host(t), "process", "--worker", worker(t), "--in", in, "--out", "-", "--chain", "gain db=0")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = f, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, stderr.Bytes())
	}
	f.Close()
	raw, _ := os.ReadFile(out)
	if got, want := binary.LittleEndian.Uint32(raw[len(raw)-4*len(a.Samples)-4:]), uint32(4*len(a.Samples)); got != want {
		t.Errorf("data size %d, want %d", got, want)
	}
	got, err := wav.Read(out)
	if err != nil || len(got.Samples) != len(a.Samples) {
		t.Fatalf("%v, %d samples, want %d", err, len(got.Samples), len(a.Samples))
	}
	for i := range a.Samples {
		if got.Samples[i] != a.Samples[i] {
			t.Fatalf("sample %d: %g, want %g (unity gain)", i, got.Samples[i], a.Samples[i])
		}
	}
}

// Memory follows the block size, not the file: 100 s of stereo piped
// through process peaks no higher than 20 s does (give or take the
// allocator), where reading it whole would need 30 MB more.
func TestProcessMemoryIsBounded(t *testing.T) {
	peak := func(seconds int) int64 {
		frames := 48000 * seconds
		pr, pw := io.Pipe()
		go func() {
			w, _ := wav.NewStream(pw, "gen", 48000, 2)
			blk := make([]float32, 2*4800)
			for i := range blk {
				blk[i] = float32(i%100) / 200
			}
			for i := 0; i < frames/4800; i++ {
				if w.Write(blk) != nil {
					break
				}
			}
			w.Close()
			pw.Close()
		}()
		cmd := exec.Command(host(t), "process", "--worker", worker(t), "--in", "-", "--out", "-", "--chain", "lowpass f=1000 | gain db=-6")
		cmd.Stdin = pr
		var stderr bytes.Buffer
		n := &countingWriter{}
		cmd.Stdout, cmd.Stderr = n, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: %s", err, stderr.Bytes())
		}
		if want := int64(2 * 4 * frames); n.n < want {
			t.Fatalf("%d bytes out, want at least %d", n.n, want)
		}
		return cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB
	}
	short, long := peak(20), peak(100)
	t.Logf("peak RSS %d KiB for 20 s, %d KiB for 100 s of stereo", short, long)
	if long > short+8<<10 {
		t.Errorf("peak RSS grew from %d to %d MiB with 80 s (30 MB) more audio: memory follows the file", short>>10, long>>10)
	}
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
