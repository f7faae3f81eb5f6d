package shm

/*
#include "us_region.h"
*/
import "C"

import (
	"errors"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ring is an SPSC ring of blocks in shared memory. Ownership and ordering are
// documented in csrc/us_region.h; the Go endpoints below mirror csrc/us_ring.h:
// each side stores only its own index and caches the other's privately.
// sync/atomic is sequentially consistent, so every Go store is at least a
// release and every load at least an acquire, and a Go store followed by a Go
// load is already the full fence the sleeping protocol needs.
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

func (r Ring) block(i uint64) *Block {
	return (*Block)(unsafe.Add(r.blocks, uintptr(i&r.mask)*r.stride))
}

// Indices loads both indices (for diagnostics and the monitor).
func (r Ring) Indices() (write, read uint64) { return ld64(&r.ctl.write), ld64(&r.ctl.read) }

// ErrCorrupt is returned when the other side's index is outside what the
// protocol allows: it scribbled on shared memory and must not be followed.
var ErrCorrupt = errors.New("shm: ring index out of range (the other side corrupted shared memory)")

// Producer is the writing end. Not safe for concurrent use.
type Producer struct {
	r         Ring
	write     uint64
	readCache uint64
}

// NewProducer takes the writing end, resuming at the ring's current indices.
func NewProducer(r Ring) *Producer {
	return &Producer{r: r, write: ld64(&r.ctl.write), readCache: ld64(&r.ctl.read)}
}

// Peek returns the slot to fill next, or nil when the ring is full.
func (p *Producer) Peek() (*Block, error) {
	if p.write-p.readCache > p.r.mask {
		rd := ld64(&p.r.ctl.read)
		if rd < p.readCache || rd > p.write {
			return nil, ErrCorrupt
		}
		p.readCache = rd
		if p.write-p.readCache > p.r.mask {
			return nil, nil
		}
	}
	return p.r.block(p.write), nil
}

// Publish makes the peeked slot visible and wakes a sleeping consumer.
func (p *Producer) Publish() {
	p.write++
	st64(&p.r.ctl.write, p.write)
	if ld32(&p.r.ctl.write_waiters) != 0 {
		FutexWake(low32(&p.r.ctl.write), 1)
	}
}

// Wait blocks until the ring has space: it spins for up to spin, then sleeps
// on the consumer's index. It returns early with ErrCorrupt, or when timeout
// (0 = none) passes, in which case the ring may still be full.
func (p *Producer) Wait(spin, timeout time.Duration) error {
	deadline := nanotime() + int64(timeout)
	spinEnd := nanotime() + int64(spin)
	for {
		b, err := p.Peek()
		if err != nil || b != nil {
			return err
		}
		now := nanotime()
		if timeout > 0 && now >= deadline {
			return nil
		}
		if now < spinEnd {
			continue
		}
		st32(&p.r.ctl.read_waiters, 1)
		rd := ld64(&p.r.ctl.read)
		if p.write-rd > p.r.mask {
			futexWaitFor(low32(&p.r.ctl.read), uint32(rd), timeout, deadline)
		}
		st32(&p.r.ctl.read_waiters, 0)
	}
}

// Consumer is the reading end. Not safe for concurrent use.
type Consumer struct {
	r          Ring
	read       uint64
	writeCache uint64
}

// NewConsumer takes the reading end, resuming at the ring's current indices.
func NewConsumer(r Ring) *Consumer {
	return &Consumer{r: r, read: ld64(&r.ctl.read), writeCache: ld64(&r.ctl.write)}
}

// Peek returns the next slot to drain, or nil when the ring is empty.
func (c *Consumer) Peek() (*Block, error) {
	if c.read == c.writeCache {
		w := ld64(&c.r.ctl.write)
		if w < c.read || w-c.read > c.r.mask+1 {
			return nil, ErrCorrupt
		}
		c.writeCache = w
		if c.read == w {
			return nil, nil
		}
	}
	return c.r.block(c.read), nil
}

// Release frees the peeked slot and wakes a sleeping producer.
func (c *Consumer) Release() {
	c.read++
	st64(&c.r.ctl.read, c.read)
	if ld32(&c.r.ctl.read_waiters) != 0 {
		FutexWake(low32(&c.r.ctl.read), 1)
	}
}

// Read is the consumer's own index.
func (c *Consumer) Read() uint64 { return c.read }

// Wait blocks until a block is ready: spin, then sleep on the producer's
// index; see Producer.Wait.
func (c *Consumer) Wait(spin, timeout time.Duration) error {
	deadline := nanotime() + int64(timeout)
	spinEnd := nanotime() + int64(spin)
	for {
		b, err := c.Peek()
		if err != nil || b != nil {
			return err
		}
		now := nanotime()
		if timeout > 0 && now >= deadline {
			return nil
		}
		if now < spinEnd {
			continue
		}
		st32(&c.r.ctl.write_waiters, 1)
		w := ld64(&c.r.ctl.write)
		if w == c.read {
			futexWaitFor(low32(&c.r.ctl.write), uint32(w), timeout, deadline)
		}
		st32(&c.r.ctl.write_waiters, 0)
	}
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

var _ = atomic.LoadUint64
