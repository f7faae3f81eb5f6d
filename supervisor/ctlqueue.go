package supervisor

/*
#cgo CFLAGS: -I${SRCDIR}/../csrc
#include "us_ring.h"
*/
import "C"

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// queue is a bounded SPSC queue of fixed records between the monitor and the
// control plane, one per direction (monitor.go: monEvent out, ctlCmd in).
// It is the C ring, csrc/us_ring.h, called through cgo as runtime/shm's
// lane rings are: one set of rules (who stores which index, the barriers,
// the 128-byte index lines, the indices refused as impossible) for every
// SPSC ring in the project. A record is a ring "block" of stride
// sizeof(T): us_ring_block only does index arithmetic on it.
//
// The ring's control lines and records live in an anonymous mapping, not
// the Go heap: the C endpoints hold pointers to them, and cgo forbids Go
// memory that holds Go pointers being passed to C. T must therefore hold
// no Go pointer either (the records are plain numbers).
//
// The consumer learns of records through efd, an eventfd the producer
// writes after publishing: the monitor has it in its epoll set, the
// control plane reads it through Go's poller. The futex side of us_ring.h
// (the waiters flags) is never used: nobody sleeps on these indices.
//
// What the producer wrote to Go memory before a push is visible to the
// consumer after the pop: the ring's release store and acquire load order
// it, and the race detector, which cannot see C atomics, counts every cgo
// call as a synchronisation point (TestQueueAcrossGoroutines under -race).
//
// Neither side allocates: push and pop copy a record into or out of the
// mapping. Costs one cgo call per peek and per publish (tens of ns), paid
// only when something happens, never on the monitor's steady-state path.
type queue[T any] struct {
	mem  []byte // the mapping: us_ring_ctl, then the records
	ring C.us_ring
	// The two endpoints are each private to one side; a line apart so
	// that neither side's stores invalidate the other's.
	prod C.us_producer
	_    [128]byte
	cons C.us_consumer
	_    [128]byte
	efd  int // written by the producer after each record; -1 when closed
	one  [8]byte
}

// newQueue maps a queue of slots records (a power of two) and its eventfd.
func newQueue[T any](slots int) (*queue[T], error) {
	if slots <= 0 || slots&(slots-1) != 0 {
		panic("supervisor: queue slots must be a power of two")
	}
	var zero T
	stride := unsafe.Sizeof(zero)
	ctlBytes := unsafe.Sizeof(C.us_ring_ctl{})
	mem, err := unix.Mmap(-1, 0, int(ctlBytes+stride*uintptr(slots)), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("supervisor: queue: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("supervisor: queue eventfd: %w", err)
	}
	q := &queue[T]{mem: mem, efd: efd}
	q.one[0] = 1
	base := unsafe.Pointer(&mem[0])
	q.ring = C.us_ring{ctl: (*C.us_ring_ctl)(base), blocks: (*C.us_block)(unsafe.Add(base, ctlBytes)),
		mask: C.uint64_t(slots - 1), stride: C.uint64_t(stride)}
	C.us_producer_init(&q.prod, q.ring)
	C.us_consumer_init(&q.cons, q.ring)
	return q, nil
}

// push copies *e into the queue and wakes the consumer; false when the
// queue is full (the record is not queued). Producer side only.
func (q *queue[T]) push(e *T) bool {
	b := C.us_producer_peek(&q.prod)
	if b == nil {
		return false
	}
	*(*T)(unsafe.Pointer(b)) = *e
	C.us_producer_publish(&q.prod)
	unix.Write(q.efd, q.one[:])
	return true
}

// pop copies the oldest record into *e; false when the queue is empty.
// Consumer side only.
func (q *queue[T]) pop(e *T) bool {
	b := C.us_consumer_peek(&q.cons)
	if b == nil {
		return false
	}
	*e = *(*T)(unsafe.Pointer(b))
	C.us_consumer_release(&q.cons)
	return true
}

// close unmaps the queue; its eventfd is closed by whoever holds it last
// (the control plane's reader closes the event queue's through its
// *os.File), so close closes efd only if told to.
func (q *queue[T]) close(closeFD bool) {
	if q == nil {
		return
	}
	if closeFD && q.efd >= 0 {
		unix.Close(q.efd)
	}
	q.efd = -1
	if q.mem != nil {
		unix.Munmap(q.mem)
		q.mem = nil
	}
}
