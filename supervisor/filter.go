package supervisor

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The worker installs its seccomp filter with a listener (us_sandbox.c),
// at fd listenerFD, with SECCOMP_FILTER_FLAG_TSYNC, so that every thread it
// has or will have holds the filter. The kernel counts those tasks (the
// filter's users) and, when the last one releases the filter in do_exit()
// (seccomp_filter_release, before exit_mm), makes every listener read
// POLLHUP (__seccomp_filter_orphan). Only the kernel moves that count, so
// POLLHUP on the host's copy of the listener says, without a read that
// holds the worker's mm, that no task of the worker runs user code again:
// what a death word's wake must be confirmed by.
const listenerFD = 3

// takeListener copies worker pid's listener into the host (pidfd_getfd)
// and checks that it is one; -1 when there is none to take (an old kernel,
// a worker run unsandboxed, a chain that already had a listener).
func takeListener(pidfd int) (int, error) {
	fd, err := unix.PidfdGetfd(pidfd, listenerFD, 0)
	if err != nil {
		return -1, fmt.Errorf("pidfd_getfd of the worker's fd %d: %w", listenerFD, err)
	}
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil || target != "anon_inode:seccomp notify" {
		unix.Close(fd)
		return -1, fmt.Errorf("the worker's fd %d is %q, not its seccomp filter's listener", listenerFD, target)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// ListenerWarning says why the host could not take a sandboxed worker's
// filter listener (then its death words are confirmed by a read of its
// /proc stat file, which can cost the monitor the worker's teardown), or
// nil.
func (s *Supervisor) ListenerWarning() error { return s.listenerErr.get() }

// filterReleased polls slot's listener once: known is false when the host
// has none for it (then the caller reads the exit flag instead).
func (m *monitor) filterReleased(slot int) (released, known bool) {
	fd := m.s.workers[slot].listener.Load()
	if fd < 0 {
		return false, false
	}
	m.pollFd[0] = unix.PollFd{Fd: fd, Events: unix.POLLIN}
	n, err := unix.Poll(m.pollFd[:], 0)
	if err != nil {
		return false, false
	}
	return n == 1 && m.pollFd[0].Revents&unix.POLLHUP != 0, true
}
