package wav

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// specialFiles makes one of each kind of non-regular file in dir: what
// Create must refuse to replace and Open must refuse to read.
func specialFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	dev := filepath.Join(dir, "null")
	// The null device's numbers (1, 3), made here so the test never risks
	// the system's own /dev/null.
	if err := unix.Mknod(dev, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err == nil {
		m["a character device"] = dev
	} else {
		t.Logf("mknod: %v (not root?): the device case is skipped", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	m["a FIFO"] = fifo
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	m["a socket"] = sock
	d := filepath.Join(dir, "adir")
	os.Mkdir(d, 0o755)
	m["a directory"] = d
	return m
}

func TestCreateRefusesNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	for what, p := range specialFiles(t, dir) {
		before, _ := os.Lstat(p)
		_, err := Create(p, 48000, 2)
		if err == nil || !strings.Contains(err.Error(), what) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v; want a refusal naming the path and %s", p, err, what)
		}
		after, _ := os.Lstat(p)
		if after == nil || after.Mode() != before.Mode() {
			t.Errorf("%s was replaced: mode %v, was %v", p, after.Mode(), before.Mode())
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

// A device node that appears at the path while a render runs is not
// replaced at Close either.
func TestCloseRefusesANodeThatAppeared(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.wav")
	w, err := Create(p, 48000, 1)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(make([]float32, 100))
	if err := unix.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "a FIFO") {
		t.Errorf("Close over a FIFO: %v", err)
	}
	if st, _ := os.Lstat(p); st == nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was replaced")
	}
	if n := names(t, dir); len(n) != 1 {
		t.Errorf("left behind: %v", n)
	}
}

func TestOpenRefusesNonWAVKinds(t *testing.T) {
	for what, p := range specialFiles(t, t.TempDir()) {
		if what == "a FIFO" {
			continue // a FIFO is a stream to read: see the FIFO tests
		}
		_, err := Open(p, time.Second)
		if err == nil || !strings.Contains(err.Error(), what) {
			t.Errorf("%s: %v; want a refusal saying it is %s", p, err, what)
		}
	}
}

// A stream's header says "until the end" and the reader takes it so; every
// bit comes back.
func TestStreamRoundTrip(t *testing.T) {
	for _, ch := range []int{1, 2, 6} {
		var b bytes.Buffer
		w, err := NewStream(&b, "stdout", 44100, ch)
		if err != nil {
			t.Fatal(err)
		}
		want := signal(ch, 20000, 3)
		for i := 0; i < len(want); i += 7 * ch {
			if err := w.Write(want[i:min(i+7*ch, len(want))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		raw := b.Bytes()
		if got := le.Uint32(raw[4:]); got != streamedSize {
			t.Errorf("RIFF size %#x, want the streaming %#x", got, streamedSize)
		}
		if got := le.Uint32(raw[len(raw)-4*len(want)-4:]); got != streamedSize {
			t.Errorf("data size %#x, want the streaming %#x", got, streamedSize)
		}
		a, err := Decode(bytes.NewReader(raw), "stream")
		if err != nil {
			t.Fatal(err)
		}
		sameBits(t, a.Samples, want)
	}
}

// Standard output redirected to a file gets real sizes at Close.
func TestStreamToAFileIsPatched(t *testing.T) {
	p := filepath.Join(t.TempDir(), "redirected.wav")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewStream(f, "stdout", 48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := signal(2, 1000, 1)
	w.Write(want)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	raw, _ := os.ReadFile(p)
	if got := le.Uint32(raw[len(raw)-4*len(want)-4:]); got != uint32(4*len(want)) {
		t.Errorf("data size %d, want %d", got, 4*len(want))
	}
	a, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, a.Samples, want)
}

// A FIFO is read as it is written, and a reader gets blocks before the
// writer has finished.
func TestOpenStreamsAFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "in.fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	want := signal(2, 50000, 9)
	var file bytes.Buffer
	w, _ := NewStream(&file, "x", 48000, 2)
	w.Write(want)
	w.Close()
	raw := file.Bytes()
	half := len(raw) / 2
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		if _, err := f.Write(raw[:half]); err != nil {
			done <- err
			return
		}
		<-release // the rest only once the reader has had some
		_, err = f.Write(raw[half:])
		done <- err
	}()
	r, err := Open(fifo, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Frames() != -1 {
		t.Errorf("a streamed WAV declares %d frames, want -1 (unknown)", r.Frames())
	}
	var got []float32
	buf := make([]float32, 512)
	released := false
	for {
		n, err := r.ReadFrames(buf)
		got = append(got, buf[:n]...)
		if !released && len(got) > 0 {
			close(release)
			released = true
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sameBits(t, got, want)
}

// A FIFO nobody writes to gives up with an error that says so; one whose
// writer stops mid-stream too.
func TestFIFOWithoutWriterTimesOut(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "in.fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(fifo, 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "nothing is writing to it") {
		t.Fatalf("FIFO with no writer: %v", err)
	}

	// A writer that sends the header and half a block, then goes quiet.
	f, err := os.OpenFile(fifo, os.O_RDWR, 0) // O_RDWR: opening cannot block
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(riff(fmtChunk(tagFloat, 1, 48000, 32), ckSize("data", streamedSize, f32(1, 2, 3))))
	r, err := Open(fifo, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]float32, 64)
	var se *StallError
	for {
		_, err = r.ReadFrames(buf)
		if err != nil {
			break
		}
	}
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "writer stalled") {
		t.Errorf("stalled writer: %v", err)
	}
}

// The reader's memory is bounded by its buffer, not by the file: a stream
// of 64 MiB goes through in a fraction of that.
func TestReaderMemoryIsBounded(t *testing.T) {
	const frames = 8 << 20 // 8 Mi stereo float frames: 64 MiB of samples
	pr, pw := io.Pipe()
	go func() {
		w, _ := NewStream(pw, "x", 48000, 2)
		blk := make([]float32, 2*4096)
		for i := 0; i < frames/4096; i++ {
			if w.Write(blk) != nil {
				break
			}
		}
		w.Close()
		pw.Close()
	}()
	r, err := NewReader(pr, "pipe")
	if err != nil {
		t.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapInuse
	buf := make([]float32, 2*1024)
	total, peak := 0, uint64(0)
	for {
		n, err := r.ReadFrames(buf)
		total += n
		if total%(1<<22) < n {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if total != 2*frames {
		t.Fatalf("read %d samples, want %d", total, 2*frames)
	}
	if peak > before+16<<20 {
		t.Errorf("heap grew by %d MiB while streaming 64 MiB", (peak-before)>>20)
	}
}

// A process killed outright (SIGKILL: no deferred cleanup, no signal
// handler) while writing leaves nothing in the directory.
func TestWriterKilledLeavesNothing(t *testing.T) {
	if dir := os.Getenv("WAV_TEST_WRITE_INTO"); dir != "" {
		w, err := Create(filepath.Join(dir, "out.wav"), 48000, 2)
		if err != nil {
			os.Exit(3)
		}
		w.Write(make([]float32, 2*100000))
		os.Stdout.WriteString("writing\n")
		select {} // until killed
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWriterKilledLeavesNothing$")
	cmd.Env = append(os.Environ(), "WAV_TEST_WRITE_INTO="+dir)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 8)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "writing\n" {
		cmd.Process.Kill()
		t.Fatalf("helper: %q %v", line, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if n := names(t, dir); len(n) != 0 {
		t.Errorf("a killed writer left %q", n)
	}
}
