package wav

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultReadTimeout is how long Open waits for a FIFO's or a pipe's writer
// to send its first bytes, and then for each later read. A pipe that goes
// quiet that long is a stuck producer (a crashed encoder, a shell waiting
// for input), and waiting forever would hang the run with no word said.
const DefaultReadTimeout = 10 * time.Second

// Open opens a WAV to stream its samples. path "-" is standard input.
// Regular files are read as they are. A FIFO, or a pipe on standard input,
// is opened without blocking, so a FIFO nobody writes to cannot hang the
// open; Open then waits at most timeout (0: DefaultReadTimeout) for the
// first bytes, and every later read gives up after timeout of silence. Any
// other kind of file (a directory, a device, a socket, a terminal) is
// refused with what it is and what to give instead.
func Open(path string, timeout time.Duration) (*Reader, error) {
	if timeout <= 0 {
		timeout = DefaultReadTimeout
	}
	name := path
	if path == "-" {
		name = "standard input"
	}
	var st unix.Stat_t
	var err error
	if path == "-" {
		err = unix.Fstat(0, &st)
	} else {
		err = unix.Stat(path, &st)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: cannot open: %w — check the path and its permissions", name, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		var f *os.File
		if path == "-" {
			f = os.Stdin
		} else if f, err = os.Open(path); err != nil {
			return nil, fmt.Errorf("%s: cannot open: %w — check the path and its permissions", name, unwrapPath(err))
		}
		r, err := NewReader(f, name)
		if err != nil {
			if path != "-" {
				f.Close()
			}
			return nil, err
		}
		if path != "-" {
			r.closer = f
		}
		return r, nil
	case unix.S_IFIFO:
		// A pipe on standard input is reopened through /proc, which gives
		// this process a file description of its own: making the shared
		// one non-blocking would change it under whoever else holds it.
		p := path
		if path == "-" {
			p = "/proc/self/fd/0"
		}
		return openFIFO(p, name, timeout)
	}
	what := fileKind(st.Mode)
	if path == "-" && st.Mode&unix.S_IFMT == unix.S_IFCHR && isTerminal(0) {
		what = "a terminal"
	}
	return nil, fmt.Errorf("%s: %s, not a WAV file — give a WAV file, a FIFO, or - with a WAV piped into standard input", name, what)
}

// openFIFO opens without blocking (a FIFO with no writer would block open
// itself, with no way to time it out), waits for the first bytes, then hands
// the non-blocking fd to Go's poller so that each read can carry a deadline.
func openFIFO(path, name string, timeout time.Duration) (*Reader, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot open: %w — check the path and its permissions", name, err)
	}
	// Until a writer has come and gone, poll reports neither data nor
	// hang-up on a FIFO opened for reading, so this waits for the writer's
	// first bytes (POLLIN) or its leaving without any (POLLHUP: empty).
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			unix.Close(fd)
			return nil, fmt.Errorf("%s: no data after %v: nothing is writing to it — start the program that writes the WAV, or raise --read-timeout", name, timeout)
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, int(min(left.Milliseconds()+1, 1<<30)))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("%s: cannot wait for data: %w", name, err)
		}
		if n > 0 {
			break
		}
	}
	// os.NewFile sees O_NONBLOCK and registers the fd with the runtime's
	// poller, which is what makes SetReadDeadline work on it.
	f := os.NewFile(uintptr(fd), name)
	dr := &deadlineReader{f: f, timeout: timeout, name: name}
	r, err := NewReader(dr, name)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// deadlineReader bounds each read: a writer that stalls mid-stream ends the
// run with an error instead of hanging it. Setting a deadline is a runtime
// timer, not a system call.
type deadlineReader struct {
	f       *os.File
	timeout time.Duration
	name    string
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if err := d.f.SetReadDeadline(time.Now().Add(d.timeout)); err != nil {
		return 0, err
	}
	n, err := d.f.Read(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return n, &StallError{Timeout: d.timeout}
	}
	return n, err
}

// StallError is a pipe or FIFO whose writer sent nothing for Timeout.
type StallError struct{ Timeout time.Duration }

func (e *StallError) Error() string {
	return fmt.Sprintf("no data for %v: its writer stalled", e.Timeout)
}

func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFLNK:
		return "a symbolic link"
	}
	return "not a regular file"
}

func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

var _ io.Reader = (*deadlineReader)(nil)
