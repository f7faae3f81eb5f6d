package wav

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Writer writes a 32-bit float WAV into an unnamed file in its path's
// directory (O_TMPFILE; a hidden temporary file where the file system lacks
// it); Close names it and renames it to the path, Abort discards it. A Writer made by
// NewStream writes straight to its stream instead.
type Writer struct {
	path   string
	tmp    string
	f      *os.File
	stream io.Writer // NewStream's destination; nil for a file
	// patchAt is where a stream's header can be rewritten at Close (a
	// regular file on standard output, written from offset 0), or -1.
	patchAt  int64
	rate     int
	channels int
	buf      []byte
	data     int64 // data bytes accepted so far
	// err is the first failure. It is sticky so that Close refuses to
	// publish a file that is missing audio the caller meant to write.
	err   error
	state int
}

const (
	open = iota
	closed
	aborted
)

const flushAt = 1 << 16

// Create starts a float WAV at path. It fails at once, saying why, when the
// file could not be written there, so a long run is not wasted on output
// that cannot be saved.
func Create(path string, rate, channels int) (*Writer, error) {
	if path == "" {
		return nil, errors.New("wav: no output path given — name a .wav file to write")
	}
	if channels < 1 || channels > maxChannels {
		return nil, fmt.Errorf("%s: cannot write %d channels — a WAV here holds 1 to %d", path, channels, maxChannels)
	}
	if rate < 1 || rate > maxRate {
		return nil, fmt.Errorf("%s: cannot write a sample rate of %d Hz — use 1 to %d", path, rate, maxRate)
	}
	if err := checkTarget(path); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := checkDir(path, dir); err != nil {
		return nil, err
	}
	f, tmp, err := createAnonymous(dir)
	if err != nil {
		f, tmp, err = createTemp(dir, filepath.Base(path))
	}
	if err != nil {
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
			return nil, fmt.Errorf("%s: cannot create: the directory %s is not writable (%v) — choose another output directory or fix its permissions", path, dir, unwrapPath(err))
		}
		return nil, fmt.Errorf("%s: cannot create a file in %s: %w", path, dir, unwrapPath(err))
	}
	w := &Writer{path: path, tmp: tmp, f: f, rate: rate, channels: channels}
	// A header with zero sizes makes the temporary file a valid streamed
	// WAV from the start, which is what a post-mortem would want to read.
	w.buf = w.header(0)
	return w, nil
}

// checkTarget refuses to replace anything but a regular file: renaming over
// a device node, a FIFO or a socket would swap the node itself for our file
// (as root, --out /dev/null replaced the system's null device), which is
// never what a user asking for output meant.
func checkTarget(path string) error {
	st, err := os.Stat(path)
	if err != nil || st.Mode().IsRegular() {
		return nil // nothing there yet, or a file to replace; checkDir explains the rest
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory — give a file name, e.g. %s", path, filepath.Join(path, "out.wav"))
	}
	what := "a special file"
	switch m := st.Mode(); {
	case m&fs.ModeCharDevice != 0:
		what = "a character device"
	case m&fs.ModeDevice != 0:
		what = "a block device"
	case m&fs.ModeNamedPipe != 0:
		what = "a FIFO"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	}
	return fmt.Errorf("%s is %s, not a regular file — output goes only to regular files: give a file path, or - to stream the WAV to standard output", path, what)
}

// checkDir explains why dir cannot hold path, in terms of the path the user
// gave, before anything is created.
func checkDir(path, dir string) error {
	st, err := os.Stat(dir)
	switch {
	case err == nil && !st.IsDir():
		return fmt.Errorf("%s: cannot create: %s is a file, not a directory — choose another output path", path, dir)
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: cannot create: the directory %s does not exist — create it first (mkdir -p %s)", path, dir, dir)
	case isNotDir(err):
		// Some ancestor is a regular file; name it, since dir itself
		// does not say which.
		for a := filepath.Dir(dir); a != dir; dir, a = a, filepath.Dir(a) {
			if st, err := os.Stat(a); err == nil && !st.IsDir() {
				return fmt.Errorf("%s: cannot create: %s is a file, not a directory — choose another output path", path, a)
			}
		}
		return fmt.Errorf("%s: cannot create: part of the path is a file, not a directory — choose another output path", path)
	default:
		return fmt.Errorf("%s: cannot create: cannot reach the directory %s (%v) — check its permissions", path, dir, unwrapPath(err))
	}
}

// createAnonymous makes the file with O_TMPFILE: it has no name until
// Close links it in, so whatever ends the process before that (a signal, a
// panic, SIGKILL, a power cut) leaves nothing behind. A file system without
// O_TMPFILE support gets a named temporary file instead.
func createAnonymous(dir string) (*os.File, string, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o666)
	if err != nil {
		return nil, "", err
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, "(unnamed)")), "", nil
}

// createTemp is os.CreateTemp but with mode 0666, so the umask applies and
// the published file has the permissions os.Create would have given it,
// not CreateTemp's private 0600.
func createTemp(dir, base string) (*os.File, string, error) {
	for range 100 {
		name := filepath.Join(dir, "."+base+".tmp-"+strconv.FormatUint(rand.Uint64(), 36))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", fmt.Errorf("no unused temporary name in %s", dir)
}

// NewStream starts a float WAV written straight to out (standard output,
// a pipe), block by block as Write is called, in bounded memory. A pipe
// cannot seek back to fill in the sizes, so the header carries the
// streaming convention instead: RIFF and data sizes of 0xFFFFFFFF ("until
// the end of the stream", which this package's reader, sox and ffmpeg
// accept), and 0xFFFFFFFF frames in the fact chunk. When out is a regular
// file positioned at its start (standard output redirected to a file),
// Close rewrites the header with the real sizes. name is used in errors.
// Close flushes; Abort stops writing (what was written stays written).
func NewStream(out io.Writer, name string, rate, channels int) (*Writer, error) {
	if channels < 1 || channels > maxChannels {
		return nil, fmt.Errorf("%s: cannot write %d channels — a WAV here holds 1 to %d", name, channels, maxChannels)
	}
	if rate < 1 || rate > maxRate {
		return nil, fmt.Errorf("%s: cannot write a sample rate of %d Hz — use 1 to %d", name, rate, maxRate)
	}
	w := &Writer{path: name, stream: out, rate: rate, channels: channels, patchAt: -1}
	if f, ok := out.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			if off, err := f.Seek(0, io.SeekCurrent); err == nil && off == 0 {
				w.f, w.patchAt = f, 0
			}
		}
	}
	w.buf = w.header(streamedSize)
	return w, nil
}

// header is the whole file up to the samples. Its length does not depend on
// dataBytes, so Close can overwrite it in place.
func (w *Writer) header(dataBytes uint32) []byte {
	ext := w.channels > 2
	fmtSize := uint32(16)
	if ext {
		fmtSize = 40
	}
	le := binary.LittleEndian
	b := make([]byte, 0, 80)
	b = append(b, "RIFF"...)
	riff, frames := 4+(8+fmtSize)+(8+4)+(8+dataBytes), dataBytes/uint32(4*w.channels)
	if dataBytes == streamedSize {
		riff, frames = streamedSize, streamedSize
	}
	b = le.AppendUint32(b, riff)
	b = append(b, "WAVEfmt "...)
	b = le.AppendUint32(b, fmtSize)
	if ext {
		// Readers are entitled to reject more than two channels under a
		// plain format tag; EXTENSIBLE is the form they must accept.
		b = le.AppendUint16(b, tagExtensible)
	} else {
		b = le.AppendUint16(b, tagFloat)
	}
	b = le.AppendUint16(b, uint16(w.channels))
	b = le.AppendUint32(b, uint32(w.rate))
	b = le.AppendUint32(b, uint32(w.rate*w.channels*4))
	b = le.AppendUint16(b, uint16(w.channels*4))
	b = le.AppendUint16(b, 32)
	if ext {
		b = le.AppendUint16(b, 22) // extension size
		b = le.AppendUint16(b, 32) // valid bits
		// No speaker positions: the supervisor's channels are lanes, not a
		// surround layout, and claiming one would make players remap them.
		b = le.AppendUint32(b, 0)
		b = le.AppendUint16(b, tagFloat)
		b = append(b, guidTail[:]...)
	}
	// Non-PCM formats are required to carry a fact chunk with the frame count.
	b = append(b, "fact"...)
	b = le.AppendUint32(b, 4)
	b = le.AppendUint32(b, frames)
	b = append(b, "data"...)
	b = le.AppendUint32(b, dataBytes)
	return b
}

// maxData keeps every size field, the RIFF size included, within 32 bits.
const maxData = math.MaxUint32 - 128

// Write appends interleaved samples, a whole number of frames.
func (w *Writer) Write(interleaved []float32) error {
	switch {
	case w.state != open:
		return fmt.Errorf("%s: Write after Close or Abort — create a new Writer", w.path)
	case w.err != nil:
		return w.err
	case len(interleaved)%w.channels != 0:
		w.err = fmt.Errorf("%s: Write of %d samples is not a whole number of %d-channel frames — pass interleaved frames", w.path, len(interleaved), w.channels)
		return w.err
	case w.data+4*int64(len(interleaved)) > maxData && (w.stream == nil || w.patchAt >= 0):
		w.err = fmt.Errorf("%s: more than 4 GiB of audio, past what a WAV can hold — write shorter files", w.path)
		return w.err
	}
	le := binary.LittleEndian
	for len(interleaved) > 0 {
		n := min(len(interleaved), flushAt/4)
		for _, s := range interleaved[:n] {
			// Bits, not values: the round trip must keep -0 and NaN
			// payloads for the bit-exact comparison.
			w.buf = le.AppendUint32(w.buf, math.Float32bits(s))
		}
		interleaved = interleaved[n:]
		w.data += 4 * int64(n)
		if len(w.buf) >= flushAt {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *Writer) flush() error {
	var err error
	if w.stream != nil {
		_, err = w.stream.Write(w.buf)
	} else {
		_, err = w.f.Write(w.buf)
	}
	if err != nil && w.stream != nil && w.patchAt < 0 {
		w.err = fmt.Errorf("%s: cannot write: %w — the program reading it stopped early", w.path, unwrapPath(err))
		return w.err
	}
	if err != nil {
		w.err = fmt.Errorf("%s: cannot write: %w — check free space on its disk", w.path, unwrapPath(err))
		return w.err
	}
	w.buf = w.buf[:0]
	return nil
}

// Close completes the file and moves it to its path. On any error the
// temporary file is removed and nothing appears at the path. Closing twice
// is harmless.
func (w *Writer) Close() error {
	switch w.state {
	case closed:
		return nil
	case aborted:
		return fmt.Errorf("%s: Close after Abort; nothing was written", w.path)
	}
	w.state = closed
	err := w.err
	if err == nil && len(w.buf) > 0 {
		err = w.flush()
	}
	if w.stream != nil {
		w.buf = nil
		if err == nil && w.patchAt == 0 {
			if _, werr := w.f.WriteAt(w.header(uint32(w.data)), 0); werr != nil {
				err = fmt.Errorf("%s: cannot write the header: %w — check free space on its disk", w.path, unwrapPath(werr))
			}
		}
		return err
	}
	if err == nil {
		if _, werr := w.f.WriteAt(w.header(uint32(w.data)), 0); werr != nil {
			err = fmt.Errorf("%s: cannot write the header: %w — check free space on its disk", w.path, unwrapPath(werr))
		}
	}
	if err == nil {
		// Without this, a crash soon after the rename can leave a
		// zero-length or partial file at path on some file systems, the
		// very thing the temporary file is for.
		if serr := w.f.Sync(); serr != nil {
			err = fmt.Errorf("%s: cannot flush to disk: %w — check the disk", w.path, unwrapPath(serr))
		}
	}
	if err == nil && w.tmp == "" {
		// Give the anonymous file its temporary name only now, complete:
		// the rename below is what publishes it.
		err = w.link()
	}
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("%s: cannot write: %w — check free space on its disk", w.path, unwrapPath(cerr))
	}
	if err == nil {
		// Again at the last moment: something may have appeared at the
		// path during a long render.
		err = checkTarget(w.path)
	}
	if err == nil {
		if rerr := os.Rename(w.tmp, w.path); rerr != nil {
			err = fmt.Errorf("%s: cannot move the finished file into place: %w — check the path and its directory's permissions", w.path, unwrapPath(rerr))
		}
	}
	w.buf = nil
	if err != nil {
		if w.tmp != "" {
			os.Remove(w.tmp)
		}
		return err
	}
	syncDir(filepath.Dir(w.path))
	return nil
}

// syncDir makes the rename itself durable. Its failure is not reported: the
// file is complete and already visible, and an error now would tell the
// caller the write failed when it did not.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Abort discards everything written and removes the temporary file. It is
// safe after Close (the finished file stays) and safe to call twice, so it
// can sit in a defer on the error path.
func (w *Writer) Abort() {
	if w.state != open {
		return
	}
	w.state = aborted
	if w.stream != nil {
		w.buf = nil
		return
	}
	w.f.Close()
	if w.tmp != "" {
		os.Remove(w.tmp)
	}
	w.buf = nil
}

// link names the anonymous file beside its path, through /proc (linkat
// with AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH).
func (w *Writer) link() error {
	dir, base := filepath.Dir(w.path), filepath.Base(w.path)
	for range 100 {
		name := filepath.Join(dir, "."+base+".tmp-"+strconv.FormatUint(rand.Uint64(), 36))
		err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(w.f.Fd())), unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: cannot give the finished file a name: %w — check the directory's permissions", w.path, err)
		}
		w.tmp = name
		return nil
	}
	return fmt.Errorf("%s: no unused temporary name in %s", w.path, dir)
}

// WriteFile writes a whole signal.
func WriteFile(path string, a *Audio) error {
	if a == nil {
		return fmt.Errorf("%s: no audio to write", path)
	}
	w, err := Create(path, a.Rate, a.Channels)
	if err != nil {
		return err
	}
	if err := w.Write(a.Samples); err != nil {
		w.Abort()
		return err
	}
	return w.Close()
}
