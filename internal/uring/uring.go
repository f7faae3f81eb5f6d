// Package uring is the smallest io_uring the supervisor's monitor needs:
// futex waits (IORING_OP_FUTEX_WAIT, Linux 6.7+) submitted from one thread,
// and completions reaped without allocating. The ring's fd can sit in an
// epoll set: it reads as ready while completions wait in the queue, so one
// epoll_wait covers fds and futex words alike.
//
// Written over raw syscalls (io_uring_setup(2), io_uring_enter(2), mmap) to
// keep the dependency list as it is. Not safe for concurrent use: one
// goroutine submits and reaps. Completions are posted as task work of the
// thread that submitted, so that goroutine should be locked to its thread.
package uring

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kernel ABI (include/uapi/linux/io_uring.h, include/uapi/linux/futex.h).
const (
	opFutexWait = 51 // IORING_OP_FUTEX_WAIT

	offSQRing = 0          // IORING_OFF_SQ_RING (SQ and CQ rings, single mmap)
	offSQEs   = 0x10000000 // IORING_OFF_SQES

	featSingleMmap = 1 << 0 // IORING_FEAT_SINGLE_MMAP
	enterGetEvents = 1 << 0 // IORING_ENTER_GETEVENTS

	futex2SizeU32     = 0x02       // FUTEX2_SIZE_U32; no FUTEX2_PRIVATE: a shared wait
	futexBitsetAnyBit = 0xffffffff // FUTEX_BITSET_MATCH_ANY

	sqeSize = 64
	cqeSize = 16
)

// params is struct io_uring_params.
type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqOffsets
	cqOff                                                                  cqOffsets
}

type sqOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// CQE is one completion: the submission's user data and its result (0 or a
// negative errno).
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// Ring is one io_uring instance.
type Ring struct {
	fd     int
	rings  []byte // SQ and CQ rings
	sqeMem []byte

	sqHead, sqTail *uint32
	sqMask         uint32
	sqEntries      uint32
	sqArray        unsafe.Pointer // uint32[sqEntries]
	sqes           unsafe.Pointer // struct io_uring_sqe[sqEntries]

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           unsafe.Pointer // struct io_uring_cqe[cqEntries]

	pending uint32 // SQEs queued since the last Submit
}

// ErrUnsupported wraps every reason the ring cannot do futex waits here.
var ErrUnsupported = errors.New("io_uring futex waits unavailable")

// New sets up a ring of at least entries submission slots.
func New(entries uint32) (*Ring, error) {
	var p params
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		hint := ""
		if errno == unix.EPERM {
			hint = " (is kernel.io_uring_disabled set?)"
		}
		return nil, fmt.Errorf("%w: io_uring_setup: %v%s", ErrUnsupported, errno, hint)
	}
	r := &Ring{fd: int(fd)}
	if p.features&featSingleMmap == 0 {
		r.Close()
		return nil, fmt.Errorf("%w: kernel too old (no IORING_FEAT_SINGLE_MMAP)", ErrUnsupported)
	}
	size := max(p.sqOff.array+p.sqEntries*4, p.cqOff.cqes+p.cqEntries*cqeSize)
	var err error
	if r.rings, err = unix.Mmap(r.fd, offSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.Close()
		return nil, fmt.Errorf("io_uring: mmap rings: %w", err)
	}
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries*sqeSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.Close()
		return nil, fmt.Errorf("io_uring: mmap SQEs: %w", err)
	}
	base := unsafe.Pointer(&r.rings[0])
	at32 := func(off uint32) *uint32 { return (*uint32)(unsafe.Add(base, off)) }
	r.sqHead, r.sqTail = at32(p.sqOff.head), at32(p.sqOff.tail)
	r.sqMask, r.sqEntries = *at32(p.sqOff.ringMask), *at32(p.sqOff.ringEntries)
	r.sqArray = unsafe.Add(base, p.sqOff.array)
	r.sqes = unsafe.Pointer(&r.sqeMem[0])
	r.cqHead, r.cqTail = at32(p.cqOff.head), at32(p.cqOff.tail)
	r.cqMask = *at32(p.cqOff.ringMask)
	r.cqes = unsafe.Add(base, p.cqOff.cqes)
	return r, nil
}

// FD is the ring's file descriptor, readable while completions are queued.
func (r *Ring) FD() int { return r.fd }

// Close unmaps the ring and closes it; the kernel cancels whatever is still
// waiting. Safe on a nil or closed ring.
func (r *Ring) Close() {
	if r == nil {
		return
	}
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
		r.sqeMem = nil
	}
	if r.rings != nil {
		unix.Munmap(r.rings)
		r.rings = nil
	}
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}

// FutexWait queues a shared 32-bit futex wait on addr, to complete (Res 0)
// when someone wakes addr, or at once (Res -EAGAIN) if *addr != val when
// the kernel looks. It returns false when the submission queue is full.
// The wait is not submitted until Submit.
func (r *Ring) FutexWait(addr *uint32, val uint32, userData uint64) bool {
	head := atomic.LoadUint32(r.sqHead)
	tail := atomic.LoadUint32(r.sqTail) + r.pending
	if tail-head >= r.sqEntries {
		return false
	}
	idx := tail & r.sqMask
	sqe := (*[sqeSize / 8]uint64)(unsafe.Add(r.sqes, uintptr(idx)*sqeSize))
	*sqe = [sqeSize / 8]uint64{}
	b := (*[sqeSize]byte)(unsafe.Pointer(sqe))
	b[0] = opFutexWait
	*(*int32)(unsafe.Pointer(&b[4])) = futex2SizeU32 // sqe->fd holds the futex2 flags
	sqe[1] = uint64(val)                             // sqe->addr2: the expected value
	sqe[2] = uint64(uintptr(unsafe.Pointer(addr)))   // sqe->addr: the word
	sqe[4] = userData                                // sqe->user_data
	sqe[6] = futexBitsetAnyBit                       // sqe->addr3: the wake mask
	*(*uint32)(unsafe.Add(r.sqArray, uintptr(idx)*4)) = idx
	r.pending++
	return true
}

// Submit hands every queued submission to the kernel. The SQE writes are
// published by the tail's atomic store, which io_uring_enter then reads.
func (r *Ring) Submit() error {
	if r.pending == 0 {
		return nil
	}
	atomic.StoreUint32(r.sqTail, atomic.LoadUint32(r.sqTail)+r.pending)
	n := r.pending
	r.pending = 0
	for tries := 0; tries < 4 && n > 0; tries++ { // EINTR, or a partial submission
		done, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n), 0, 0, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		n -= uint32(done)
	}
	if n > 0 {
		return unix.EAGAIN
	}
	return nil
}

// Next copies the oldest completion into c and consumes it; false when the
// completion queue is empty. It makes no system call and allocates nothing.
func (r *Ring) Next(c *CQE) bool {
	head := atomic.LoadUint32(r.cqHead)
	if head == atomic.LoadUint32(r.cqTail) {
		return false
	}
	p := unsafe.Add(r.cqes, uintptr(head&r.cqMask)*cqeSize)
	c.UserData = *(*uint64)(p)
	c.Res = *(*int32)(unsafe.Add(p, 8))
	c.Flags = *(*uint32)(unsafe.Add(p, 12))
	atomic.StoreUint32(r.cqHead, head+1)
	return true
}

// wait blocks until at least one completion is queued.
func (r *Ring) wait() error {
	for tries := 0; ; tries++ {
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), 0, 1, enterGetEvents, 0, 0)
		if errno == unix.EINTR && tries < 100 {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

// ProbeFutexWait proves that this kernel runs IORING_OP_FUTEX_WAIT on this
// ring: a wait for a value the word does not hold must complete at once with
// -EAGAIN; a kernel without the operation answers -EINVAL (or refuses the
// submission). Run it before the ring is used for anything else.
func (r *Ring) ProbeFutexWait() error {
	// The completion is task work of the submitting thread: stay on it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	word := new(uint32)
	const probeData = ^uint64(0)
	if !r.FutexWait(word, 1, probeData) {
		return fmt.Errorf("%w: submission queue full", ErrUnsupported)
	}
	if err := r.Submit(); err != nil {
		return fmt.Errorf("%w: io_uring_enter: %v", ErrUnsupported, err)
	}
	if err := r.wait(); err != nil {
		return fmt.Errorf("%w: io_uring_enter: %v", ErrUnsupported, err)
	}
	var c CQE
	for i := 0; i < 16 && r.Next(&c); i++ {
		if c.UserData != probeData {
			continue
		}
		if c.Res == -int32(unix.EAGAIN) {
			runtime.KeepAlive(word)
			return nil
		}
		return fmt.Errorf("%w: IORING_OP_FUTEX_WAIT answered %v (Linux 6.7+ needed)", ErrUnsupported, unix.Errno(-c.Res))
	}
	return fmt.Errorf("%w: no completion for the probe", ErrUnsupported)
}
