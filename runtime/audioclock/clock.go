// Package audioclock runs the host's audio clock: a C pthread, started once
// through cgo, that never calls into Go (so the garbage collector cannot stall
// it). Every period it moves one block per lane from a source ring into the
// lane's input ring and one older block from the lane's output ring into a
// sink ring, or the declared fallback when that block is late (an xrun).
// Goroutines feed the sources and drain the sinks. See csrc/us_clock.h.
package audioclock

/*
#cgo CFLAGS: -I${SRCDIR}/../../csrc -O2
#cgo LDFLAGS: -lpthread
#include "us_clock.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/runtime/shm"
)

// Fallback is what an xrun outputs.
type Fallback int

const (
	Silence Fallback = C.US_FALLBACK_SILENCE
	Dry     Fallback = C.US_FALLBACK_DRY
)

// Limits from the C header.
const (
	IOSlots    = C.US_IO_SLOTS
	MaxLatency = C.US_DRY_BLOCKS - 1
)

// Lane corruption states (csrc/us_clock.h).
const (
	LaneOK      = C.US_LANE_OK
	LaneCorrupt = C.US_LANE_CORRUPT
	LaneReset   = C.US_LANE_RESET
)

// Config describes one run of the clock.
type Config struct {
	Rate     int         // frames per second
	Frames   int         // frames per block
	Latency  int         // output latency in periods
	Periods  uint64      // periods to run: input blocks + Latency
	Prio     int         // SCHED_FIFO priority, 0 for ordinary scheduling
	CPU      int         // pin to this CPU, -1 for any
	Fallback Fallback    // what an xrun outputs
	Doorbell int         // eventfd the monitor polls
	Lanes    []*shm.Lane // lanes to drive, configured
}

// Clock is one audio clock. Its C state lives outside the Go heap.
type Clock struct {
	mem     []byte // mmap'd: the us_clock and, after it, the io rings and dry history
	c       *C.us_clock
	cfg     Config
	period  time.Duration
	started bool
	src     []*shm.Producer
	sink    []*shm.Consumer
}

// New lays out the clock and its rings; Start runs it.
func New(cfg Config) (*Clock, error) {
	switch {
	case len(cfg.Lanes) < 1 || len(cfg.Lanes) > shm.MaxLanes:
		return nil, fmt.Errorf("audioclock: %d lanes, want 1..%d", len(cfg.Lanes), shm.MaxLanes)
	case cfg.Rate < 1:
		return nil, fmt.Errorf("audioclock: rate %d", cfg.Rate)
	case cfg.Frames < 1 || cfg.Frames > shm.MaxFrames:
		return nil, fmt.Errorf("audioclock: %d frames per block, want 1..%d", cfg.Frames, shm.MaxFrames)
	case cfg.Latency < 1 || cfg.Latency > MaxLatency:
		return nil, fmt.Errorf("audioclock: latency %d periods, want 1..%d", cfg.Latency, MaxLatency)
	}
	clockBytes := (int(unsafe.Sizeof(C.us_clock{})) + 4095) &^ 4095
	ioBytes := int(unsafe.Sizeof(C.us_io_ring{}))
	dryBytes := 0
	for _, l := range cfg.Lanes {
		if l.Frames() != cfg.Frames {
			return nil, fmt.Errorf("audioclock: lane has %d frames per block, clock %d", l.Frames(), cfg.Frames)
		}
		dryBytes += C.US_DRY_BLOCKS * cfg.Frames * l.Channels() * 4
	}
	total := clockBytes + 2*len(cfg.Lanes)*ioBytes + dryBytes
	mem, err := unix.Mmap(-1, 0, total, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("audioclock: mmap %d bytes: %w", total, err)
	}
	// Fault every page in now, and lock it where allowed: a first touch from
	// the real-time thread would take the page-fault path and the mm lock,
	// which the Go runtime's own mmap calls can hold for milliseconds.
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 0
	}
	_ = unix.Mlock(mem)
	k := &Clock{mem: mem, cfg: cfg}
	k.c = (*C.us_clock)(unsafe.Pointer(&mem[0]))
	k.period = time.Duration(int64(cfg.Frames) * int64(time.Second) / int64(cfg.Rate))
	c := k.c
	c.period_ns = C.uint64_t(int64(cfg.Frames) * int64(time.Second) / int64(cfg.Rate))
	c.periods = C.uint64_t(cfg.Periods)
	c.latency = C.uint32_t(cfg.Latency)
	c.frames = C.uint32_t(cfg.Frames)
	c.n_lanes = C.uint32_t(len(cfg.Lanes))
	c.fallback = C.uint32_t(cfg.Fallback)
	c.prio = C.int(cfg.Prio)
	c.cpu = C.int(cfg.CPU)
	c.doorbell_fd = C.int(cfg.Doorbell)
	// "running" means "not finished": readers that start before the thread
	// must not mistake a clock that has not begun for one that has ended.
	c.running = 1
	off := clockBytes
	for i, l := range cfg.Lanes {
		cl := &c.lanes[i]
		cl.lane = (*C.us_lane)(l.Ptr())
		src := (*C.us_io_ring)(unsafe.Pointer(&mem[off]))
		off += ioBytes
		sink := (*C.us_io_ring)(unsafe.Pointer(&mem[off]))
		off += ioBytes
		cl.src, cl.sink = src, sink
		cl.dry = (*C.float)(unsafe.Pointer(&mem[off]))
		off += C.US_DRY_BLOCKS * cfg.Frames * l.Channels() * 4
		k.src = append(k.src, shm.NewProducer(shm.NewRing(unsafe.Pointer(&src.ctl), unsafe.Pointer(&src.blocks[0]), IOSlots)))
		k.sink = append(k.sink, shm.NewConsumer(shm.NewRing(unsafe.Pointer(&sink.ctl), unsafe.Pointer(&sink.blocks[0]), IOSlots)))
	}
	return k, nil
}

// Period is the duration of one block.
func (k *Clock) Period() time.Duration { return k.period }

// Source is lane i's input: number blocks from 0 and flag the last one.
func (k *Clock) Source(i int) *shm.Producer { return k.src[i] }

// Sink is lane i's output, one block per period from period Latency on.
func (k *Clock) Sink(i int) *shm.Consumer { return k.sink[i] }

// ErrNoRT means the clock runs on ordinary scheduling: SCHED_FIFO was refused.
var ErrNoRT = errors.New("audioclock: SCHED_FIFO refused, running on ordinary scheduling")

// Start runs the thread. A returned ErrNoRT is a warning: the clock runs.
func (k *Clock) Start() error {
	if err := C.us_clock_start(k.c); err != 0 {
		atomic.StoreUint32((*uint32)(unsafe.Pointer(&k.c.running)), 0)
		return fmt.Errorf("audioclock: start: %w", syscall.Errno(err))
	}
	k.started = true
	if k.c.rt_err != 0 {
		return fmt.Errorf("%w (%v)", ErrNoRT, syscall.Errno(k.c.rt_err))
	}
	return nil
}

// Stop asks the clock to finish after the current period.
func (k *Clock) Stop() {
	if k.c != nil {
		atomic.StoreUint32((*uint32)(unsafe.Pointer(&k.c.stop)), 1)
	}
}

// Running reports whether the clock has not finished: true from New until
// its thread ends (or Start fails).
func (k *Clock) Running() bool {
	return k.c != nil && atomic.LoadUint32((*uint32)(unsafe.Pointer(&k.c.running))) != 0
}

// Join waits for the thread to end; it returns at once if it never started.
// Call it from one goroutine.
func (k *Clock) Join() {
	if k.started {
		C.us_clock_join(k.c)
		k.started = false
	}
}

// Free releases the clock's memory, joining the thread first.
func (k *Clock) Free() {
	if k.mem != nil {
		k.Stop()
		k.Join()
		unix.Munmap(k.mem)
		k.mem, k.c = nil, nil
	}
}

// Periods is how many periods have completed.
func (k *Clock) Periods() uint64 { return ld64(&k.c.period) }

// StartNS is when period 0 began (CLOCK_MONOTONIC).
func (k *Clock) StartNS() uint64 { return ld64(&k.c.start_ns) }

// NextDeadlineNS is when the clock next pushes input.
func (k *Clock) NextDeadlineNS() uint64 { return ld64(&k.c.next_deadline_ns) }

// InWrite is lane i's input write index as the clock last published it: the
// host's own, trusted count of blocks pushed.
func (k *Clock) InWrite(i int) uint64 { return ld64(&k.c.lanes[i].in_write) }

// PushNS is when input index idx of lane i was pushed (valid for the last
// shm.RingSlots indices).
func (k *Clock) PushNS(i int, idx uint64) uint64 {
	return ld64(&k.c.lanes[i].push_ns[idx&(shm.RingSlots-1)])
}

// OutRead is the clock's consumer index on lane i's output ring.
func (k *Clock) OutRead(i int) uint64 { return ld64(&k.c.lanes[i].out.read) }

// Corrupt is lane i's corruption state (LaneOK, LaneCorrupt, LaneReset).
func (k *Clock) Corrupt(i int) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&k.c.lanes[i].corrupt)))
}

// MarkReset tells the clock that the monitor repaired lane i's indices.
func (k *Clock) MarkReset(i int) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&k.c.lanes[i].corrupt)), LaneReset)
}

// LaneStats are one lane's counters.
type LaneStats struct {
	Xruns, Stale, InOverflows, SrcUnderruns, SinkOverflows, Bypassed, Corruptions, Delivered uint64
}

// Stats reads lane i's counters.
func (k *Clock) Stats(i int) LaneStats {
	cl := &k.c.lanes[i]
	return LaneStats{
		Xruns: ld64(&cl.xruns), Stale: ld64(&cl.stale), InOverflows: ld64(&cl.in_overflows),
		SrcUnderruns: ld64(&cl.src_underruns), SinkOverflows: ld64(&cl.sink_overflows),
		Bypassed: ld64(&cl.bypassed), Corruptions: ld64(&cl.corruptions), Delivered: ld64(&cl.delivered),
	}
}

// Lateness is the worst wake-up lateness and its histogram: bucket b counts
// wake-ups late by [2^(b-1), 2^b) µs, bucket 0 by less than 1 µs.
func (k *Clock) Lateness() (max time.Duration, hist [32]uint64) {
	for i := range hist {
		hist[i] = ld64(&k.c.late_hist[i])
	}
	return time.Duration(ld64(&k.c.late_max_ns)), hist
}

func ld64(p *C.uint64_t) uint64 { return atomic.LoadUint64((*uint64)(unsafe.Pointer(p))) }
