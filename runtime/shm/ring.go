package shm

/*
#include "us_ring.h"
*/
import "C"

import (
	"errors"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ring is an SPSC ring of blocks in shared memory. There is one
// implementation of its protocol, csrc/us_ring.h, which the worker and the
// audio clock compile in and which Producer and Consumer call through cgo:
// one set of rules (who stores which index, which barriers, which indices
// are refused as corrupt), checked by ThreadSanitizer (ring_tsan_test.go).
// A cgo call costs tens of nanoseconds; no Go endpoint is on a real-time
// thread (the clock's pumps, offline rendering, tests), so that is the price
// of not keeping a second copy of the rules.
type Ring struct {
	ctl    *RingCtl
	blocks unsafe.Pointer
	mask   uint64
	stride uintptr // bytes from one block to the next
}

// NewRing views ctl and slots full-size blocks (a power of two) as a ring.
func NewRing(ctl unsafe.Pointer, blocks unsafe.Pointer, slots int) Ring {
	return newRing(ctl, blocks, slots, unsafe.Sizeof(Block{}))
}

// newRing is NewRing with blocks stride bytes apart: a lane's blocks hold
// only its own frames x channels samples.
func newRing(ctl unsafe.Pointer, blocks unsafe.Pointer, slots int, stride uintptr) Ring {
	if slots <= 0 || slots&(slots-1) != 0 {
		panic("shm: ring slots must be a power of two")
	}
	return Ring{ctl: (*RingCtl)(ctl), blocks: blocks, mask: uint64(slots - 1), stride: stride}
}

// Slots is the ring's capacity.
func (r Ring) Slots() int { return int(r.mask + 1) }

func (r Ring) c() C.us_ring {
	return C.us_ring{ctl: (*C.us_ring_ctl)(unsafe.Pointer(r.ctl)), blocks: (*C.us_block)(r.blocks), mask: C.uint64_t(r.mask),
		stride: C.uint64_t(r.stride)}
}

func (r Ring) block(i uint64) *Block {
	return (*Block)(unsafe.Add(r.blocks, uintptr(i&r.mask)*r.stride))
}

// Indices loads both indices (for diagnostics and the monitor).
func (r Ring) Indices() (write, read uint64) { return ld64(&r.ctl.write), ld64(&r.ctl.read) }

// ErrCorrupt is returned when the other side's index is outside what the
// protocol allows: it scribbled on shared memory and must not be followed.
var ErrCorrupt = errors.New("shm: ring index out of range (the other side corrupted shared memory)")

// Producer is the writing end. Not safe for concurrent use. Its C endpoint
// lives in Go memory and holds only pointers into the mapping.
type Producer struct {
	p C.us_producer
	w waiter // Wait's pacing, here so that its timespec passed to C is not a new allocation
}

// NewProducer takes the writing end, resuming at the ring's current indices.
func NewProducer(r Ring) *Producer {
	p := &Producer{}
	C.us_producer_init(&p.p, r.c())
	return p
}

// Peek returns the slot to fill next, or nil when the ring is full.
func (p *Producer) Peek() (*Block, error) {
	b := C.us_producer_peek(&p.p)
	if p.p.corrupt != 0 {
		return nil, ErrCorrupt
	}
	return (*Block)(unsafe.Pointer(b)), nil
}

// Publish makes the peeked slot visible and wakes a sleeping consumer.
func (p *Producer) Publish() { C.us_producer_publish(&p.p) }

// Wait blocks until the ring has space: it spins for up to spin, then sleeps
// on the consumer's index. It returns early with ErrCorrupt, or when timeout
// (0 = none) passes, in which case the ring may still be full.
func (p *Producer) Wait(spin, timeout time.Duration) error {
	w := &p.w
	w.start(spin, timeout)
	for {
		b, err := p.Peek()
		if err != nil || b != nil {
			return err
		}
		rel, sleep, done := w.next()
		if done {
			return nil
		}
		if sleep {
			C.us_producer_sleep(&p.p, rel)
		}
	}
}

// Consumer is the reading end. Not safe for concurrent use.
type Consumer struct {
	c C.us_consumer
	w waiter
}

// NewConsumer takes the reading end, resuming at the ring's current indices.
func NewConsumer(r Ring) *Consumer {
	c := &Consumer{}
	C.us_consumer_init(&c.c, r.c())
	return c
}

// Peek returns the next slot to drain, or nil when the ring is empty.
func (c *Consumer) Peek() (*Block, error) {
	b := C.us_consumer_peek(&c.c)
	if c.c.corrupt != 0 {
		return nil, ErrCorrupt
	}
	return (*Block)(unsafe.Pointer(b)), nil
}

// Release frees the peeked slot and wakes a sleeping producer.
func (c *Consumer) Release() { C.us_consumer_release(&c.c) }

// Read is the consumer's own index.
func (c *Consumer) Read() uint64 { return uint64(c.c.read) }

// Wait blocks until a block is ready: spin, then sleep on the producer's
// index; see Producer.Wait.
func (c *Consumer) Wait(spin, timeout time.Duration) error {
	w := &c.w
	w.start(spin, timeout)
	for {
		b, err := c.Peek()
		if err != nil || b != nil {
			return err
		}
		rel, sleep, done := w.next()
		if done {
			return nil
		}
		if sleep {
			C.us_consumer_sleep(&c.c, rel)
		}
	}
}

// waiter paces a Wait: spin until spin has passed, then sleep through the
// C side's sleeping protocol (which re-checks the index before it sleeps)
// for what is left of timeout (0: no timeout).
type waiter struct {
	start0, spin, timeout int64
	rel                   C.struct_timespec
}

func (w *waiter) start(spin, timeout time.Duration) {
	w.start0, w.spin, w.timeout = nanotime(), int64(spin), int64(timeout)
}

// next says whether to give up (the timeout passed), or else whether to
// sleep, and for how long (nil: until woken).
func (w *waiter) next() (rel *C.struct_timespec, sleep, done bool) {
	el := nanotime() - w.start0
	switch {
	case w.timeout > 0 && el >= w.timeout:
		return nil, false, true
	case el < w.spin:
		return nil, false, false
	case w.timeout <= 0:
		return nil, true, false
	}
	left := w.timeout - el
	w.rel = C.struct_timespec{tv_sec: C.time_t(left / 1e9), tv_nsec: C.long(left % 1e9)}
	return &w.rel, true, false
}

// Block accessors. A block's header is written by its producer: a consumer
// must bound-check Frames against its own expectation before using it.
func (b *Block) Number() uint64 { return uint64(b.block) }
func (b *Block) Frames() int    { return int(b.frames) }
func (b *Block) Flags() uint32  { return uint32(b.flags) }
func (b *Block) PushNS() uint64 { return uint64(b.t_push_ns) }
func (b *Block) SetHeader(number uint64, frames int, flags uint32, pushNS uint64) {
	b.block = C.uint64_t(number)
	b.frames = C.uint32_t(frames)
	b.flags = C.uint32_t(flags)
	b.t_push_ns = C.uint64_t(pushNS)
	// A ring's blocks are reused: changes a block carried last lap must not
	// apply again. SetChanges after SetHeader adds this block's.
	b.n_changes = 0
}

// Epoch is the owner epoch an output block was written at (untrusted).
func (b *Block) Epoch() uint64 { return uint64(b.epoch) }

// Samples is the block's first n samples (n <= SlotSamples; in a lane's
// ring, n must not exceed the lane's frames x channels).
func (b *Block) Samples(n int) []float32 {
	if n < 0 || n > SlotSamples {
		panic("shm: block sample count out of range")
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b.data[0])), n)
}

func low32(p *C.uint64_t) *uint32 { return (*uint32)(unsafe.Pointer(p)) } // little-endian

func nanotime() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// NowNS is CLOCK_MONOTONIC in ns, the clock every timestamp in the region uses.
func NowNS() uint64 { return uint64(nanotime()) }

// Test support: an endpoint in a given private state, and the slot at an
// index (the fuzz targets drive the C endpoints from any state).

func newProducerAt(r Ring, write, readCache uint64) *Producer {
	p := &Producer{}
	p.p.r = r.c()
	p.p.write, p.p.read_cache = C.uint64_t(write), C.uint64_t(readCache)
	return p
}

func newConsumerAt(r Ring, read, writeCache uint64) *Consumer {
	c := &Consumer{}
	c.c.r = r.c()
	c.c.read, c.c.write_cache = C.uint64_t(read), C.uint64_t(writeCache)
	return c
}

func (p *Producer) readCache() uint64  { return uint64(p.p.read_cache) }
func (c *Consumer) writeCache() uint64 { return uint64(c.c.write_cache) }
