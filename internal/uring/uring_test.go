package uring

import (
	"runtime"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func newRing(t *testing.T) *Ring {
	t.Helper()
	r, err := New(8)
	if err != nil {
		t.Skipf("no io_uring here: %v", err)
	}
	t.Cleanup(r.Close)
	if err := r.ProbeFutexWait(); err != nil {
		t.Skipf("no futex waits on io_uring here: %v", err)
	}
	return r
}

// A shared futex wait on a word in a MAP_SHARED mapping completes when the
// word is woken, not before, and the ring's fd reads ready for epoll.
func TestFutexWaitWokenByWake(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := newRing(t)
	mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	word := (*uint32)(unsafe.Pointer(&mem[64]))
	*word = 7
	if !r.FutexWait(word, 7, 42) {
		t.Fatal("queue full")
	}
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	var c CQE
	time.Sleep(2 * time.Millisecond)
	if r.Next(&c) {
		t.Fatalf("completed before any wake: %+v", c)
	}
	pfd := []unix.PollFd{{Fd: int32(r.FD()), Events: unix.POLLIN}}
	if n, _ := unix.Poll(pfd, 0); n != 0 {
		t.Fatal("ring fd ready with nothing completed")
	}
	// Shared wake (no FUTEX_PRIVATE_FLAG), as the kernel's robust-list walk does.
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(word)), 1, 1, 0, 0, 0)
	if n, _ := unix.Poll(pfd, 1000); n != 1 {
		t.Fatal("ring fd not ready after the wake")
	}
	if !r.Next(&c) || c.UserData != 42 || c.Res != 0 {
		t.Fatalf("completion %+v, want user data 42, res 0", c)
	}
	if allocs := testing.AllocsPerRun(100, func() { r.Next(&c) }); allocs != 0 {
		t.Errorf("Next allocates %.1f times", allocs)
	}
}
