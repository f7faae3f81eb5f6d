package shm

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Shared futex operations (no FUTEX_PRIVATE_FLAG): waiter and waker are in
// different processes mapping the same memfd.
const (
	futexWait = 0
	futexWake = 1
)

// FutexWake wakes up to n waiters on addr. It allocates nothing.
func FutexWake(addr *uint32, n int) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWake, uintptr(n), 0, 0, 0)
}

// FutexWait sleeps while *addr == val, for at most timeout (0 = forever).
// Spurious returns are allowed; callers re-check.
func FutexWait(addr *uint32, val uint32, timeout time.Duration) {
	if timeout <= 0 {
		unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWait, uintptr(val), 0, 0, 0)
		return
	}
	ts := unix.NsecToTimespec(int64(timeout))
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWait, uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
}
