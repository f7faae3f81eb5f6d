// Package audioclock runs the host's audio clock: a C pthread, started once
// through cgo, that never calls into Go (so the garbage collector cannot stall
// it). Every period it moves one block per lane from a source ring into the
// lane's input ring and one older block from the lane's output ring into a
// sink ring, or the declared fallback when that block is late (an xrun).
// Goroutines feed the sources and drain the sinks. See csrc/us_clock.h.
package audioclock

/*
#cgo CFLAGS: -I${SRCDIR}/../../csrc -O2
#cgo LDFLAGS: -lpthread -lm
#include "us_clock.h"
size_t us_clock_lock_stack(us_clock *c, size_t bytes, uintptr_t *at);
void us_clock_unlock_stack(uintptr_t at, size_t bytes);
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/rt"
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

// Feed fills input block n of a lane (frames × channels interleaved
// samples, which are shared memory valid only during the call) and returns
// its flags (shm.BlockLast on the last one). ok false means there is no
// block n: the lane's input has ended and its pump stops.
type Feed func(lane int, n uint64, samples []float32) (flags uint32, ok bool)

// Drain receives output block n of a lane, in order: the chain's output, or
// the fallback when flags has shm.BlockBypassed or the block was late.
// samples is shared memory, valid only during the call.
type Drain func(lane int, n uint64, flags uint32, samples []float32)

// Config describes one run of the clock.
type Config struct {
	Rate     int      // frames per second
	Frames   int      // frames per block
	Latency  int      // output latency in periods
	Periods  uint64   // periods to run: input blocks + Latency
	Prio     int      // SCHED_FIFO priority, 0 for ordinary scheduling
	CPU      int      // pin to this CPU, -1 for any
	Fallback Fallback // what an xrun outputs
	// Ceiling is the largest output sample magnitude let through (linear;
	// 0 means +24 dBFS): a block with a sample beyond it, or a NaN or Inf,
	// is garbage, replaced by the fallback and reported to the monitor.
	Ceiling float32
	// Declick is how many frames ramp from the last output to the new one
	// at a switch to or from the fallback (0 means 32; negative, none).
	Declick  int
	Doorbell int         // eventfd the monitor polls
	Lanes    []*shm.Lane // lanes to drive; their channels come from the host's own configuration
	// Feed and Drain are called from the clock's own pump goroutines, one
	// feeder and one drainer per lane, which Start begins and Join, Free
	// and the lanes' region closing all wait for. Feed is first called on
	// Start's goroutine, to fill the sources before the thread's first
	// period. Either may be nil (nothing fed: every period underruns;
	// nothing drained: outputs pile up and are dropped).
	Feed  Feed
	Drain Drain
}

// Clock is one audio clock. Its C state lives outside the Go heap, in a
// mapping the Clock owns: Free unmaps it, and only after the thread, the
// pumps and every registered reader (OnFree) have stopped.
//
// Lifetime rules (docs/design.md §1): Stop, Join and Free may be called from
// any goroutine, any number of times, in any order with the supervisor's
// Close. The accessors (Periods, Stats, ...) are safe at any time and read
// zero after Free. The Timeline methods (InWrite, PushNS, NextDeadlineNS,
// OutRead, Corrupt, MarkReset) take no lock, for the monitor's real-time
// thread: only a reader registered through OnFree may call them.
type Clock struct {
	mem    []byte // mmap'd: the us_clock and, after it, the io rings and dry history
	c      *C.us_clock
	cfg    Config
	period time.Duration
	src    []*shm.Producer // pump-private once Start ran
	sink   []*shm.Consumer

	// memMu guards the mapping against Free: accessors read under RLock,
	// Free unmaps under Lock. Never taken by the C thread or the monitor.
	memMu sync.RWMutex

	// life serialises Start, Join and Free. It is never held while a
	// registered reader's stop runs.
	life        sync.Mutex
	started     bool   // the thread runs or ran and is not yet joined
	freed       bool   // Free began: Start is refused
	driverStop  func() // an external driver's stop (External), called by Join
	quit        atomic.Bool
	pumps       sync.WaitGroup
	readerMu    sync.Mutex
	readers     map[int]func()
	readersGone bool // Free took the readers: OnFree refuses new ones
	nextRdr     int
	unRegions   []func() // registrations with the lanes' regions
	locked      atomic.Uint64
	paramMu     sync.Mutex  // SetParam's: one queue writer at a time, never the C thread's
	paramAt     []paramSlot // per lane, under paramMu
	stackAt     C.uintptr_t // the thread's locked stack top, under life
	stackLen    C.size_t
}

// MemBytes is the memory a clock over lanes of these channel counts, at
// frames per block, maps and locks (besides its thread's stack, of which it
// locks rt.StackLockBytes): what a host tells rt.ProbeLock it will lock.
func MemBytes(frames int, channels []int) uint64 { return uint64(memBytes(frames, channels)) }

func memBytes(frames int, channels []int) int {
	clockBytes := (int(unsafe.Sizeof(C.us_clock{})) + 4095) &^ 4095
	ioBytes := int(unsafe.Sizeof(C.us_io_ring{}))
	n := clockBytes + 2*len(channels)*ioBytes
	for _, ch := range channels {
		n += C.US_DRY_BLOCKS * frames * ch * 4
	}
	return (n + 4095) &^ 4095
}

// LockedBytes is what the clock has locked: its memory and, while its
// thread runs, the thread's stack top; less when RLIMIT_MEMLOCK refused some
// (it runs unlocked then).
func (k *Clock) LockedBytes() uint64 { return k.locked.Load() }

// DefaultCeiling is +24 dBFS: output samples beyond it are garbage.
const DefaultCeiling = 15.848932

// ErrFreed is returned by Start and OnFree on a clock that Free released.
var ErrFreed = errors.New("audioclock: clock already freed")

// ErrRegionClosed is returned by Start when a lane's region was closed
// (its supervisor's Close) before the clock could start.
var ErrRegionClosed = errors.New("audioclock: a lane's region is closed")

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
	channels := make([]int, len(cfg.Lanes))
	for i, l := range cfg.Lanes {
		if l.Frames() != cfg.Frames {
			return nil, fmt.Errorf("audioclock: lane has %d frames per block, clock %d", l.Frames(), cfg.Frames)
		}
		channels[i] = l.Channels()
	}
	total := memBytes(cfg.Frames, channels)
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
	k := &Clock{mem: mem, cfg: cfg, paramAt: make([]paramSlot, len(cfg.Lanes))}
	if unix.Mlock(mem) == nil {
		k.locked.Store(uint64(len(mem)))
	}
	k.c = (*C.us_clock)(unsafe.Pointer(&mem[0]))
	k.period = time.Duration(int64(cfg.Frames) * int64(time.Second) / int64(cfg.Rate))
	c := k.c
	c.period_ns = C.uint64_t(int64(cfg.Frames) * int64(time.Second) / int64(cfg.Rate))
	c.periods = C.uint64_t(cfg.Periods)
	c.latency = C.uint32_t(cfg.Latency)
	c.frames = C.uint32_t(cfg.Frames)
	c.rate = C.uint32_t(cfg.Rate)
	c.n_lanes = C.uint32_t(len(cfg.Lanes))
	c.fallback = C.uint32_t(cfg.Fallback)
	c.prio = C.int(cfg.Prio)
	c.cpu = C.int(cfg.CPU)
	c.doorbell_fd = C.int(cfg.Doorbell)
	c.ceiling = C.float(DefaultCeiling)
	if cfg.Ceiling > 0 {
		c.ceiling = C.float(cfg.Ceiling)
	}
	switch {
	case cfg.Declick == 0:
		c.declick = 32
	case cfg.Declick > 0:
		c.declick = C.uint32_t(cfg.Declick)
	}
	// "running" means "not finished": readers that start before the thread
	// must not mistake a clock that has not begun for one that has ended.
	c.running = 1
	off := clockBytes
	for i, l := range cfg.Lanes {
		cl := &c.lanes[i]
		cl.lane = (*C.us_lane)(l.Ptr())
		// Geometry from the host's private configuration, never from the
		// lane's shared memory, which its owner can write.
		cl.channels = C.uint32_t(l.Channels())
		setRing(&cl.in_ring, l.In())
		setRing(&cl.out_ring, l.Out())
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
	// The thread reads the lanes: whoever closes their region first stops
	// and joins it (and so stops it ringing a doorbell about to close).
	seen := map[*shm.Region]bool{}
	for _, l := range cfg.Lanes {
		r := shm.RegionOf(l)
		if r == nil || seen[r] {
			continue
		}
		seen[r] = true
		remove, ok := r.OnClose(func() { k.Stop(); k.Join() })
		if !ok {
			k.unregister()
			unix.Munmap(mem)
			return nil, ErrRegionClosed
		}
		k.unRegions = append(k.unRegions, remove)
	}
	return k, nil
}

func setRing(dst *C.us_ring, r shm.Ring) {
	ctl, blocks, stride := r.RingParts()
	dst.ctl = (*C.us_ring_ctl)(ctl)
	dst.blocks = (*C.us_block)(blocks)
	dst.mask = C.uint64_t(r.Slots() - 1)
	dst.stride = C.uint64_t(stride)
}

func (k *Clock) unregister() {
	for _, remove := range k.unRegions {
		remove()
	}
	k.unRegions = nil
}

// Period is the duration of one block.
func (k *Clock) Period() time.Duration { return k.period }

// ErrNoRT means the clock runs on ordinary scheduling: SCHED_FIFO was refused.
var ErrNoRT = errors.New("audioclock: SCHED_FIFO refused, running on ordinary scheduling")

// Start fills the sources (Config.Feed, on this goroutine), runs the thread
// and the pumps. A returned ErrNoRT is a warning: the clock runs.
func (k *Clock) Start() error {
	k.life.Lock()
	defer k.life.Unlock()
	if k.freed {
		return ErrFreed
	}
	if k.started || !k.Running() || k.driverStop != nil {
		return errors.New("audioclock: Start called twice, after Stop, or on a clock handed to a driver")
	}
	// The first blocks go in before the thread starts: a real-time thread
	// never waits for a goroutine, and an empty source is an underrun.
	next := make([]uint64, len(k.cfg.Lanes))
	fed := make([]bool, len(k.cfg.Lanes))
	if k.cfg.Feed != nil {
		for l := range k.cfg.Lanes {
			for {
				more, full := k.feedOne(l, &next[l])
				if !more || full {
					fed[l] = more
					break
				}
			}
		}
	}
	if err := C.us_clock_start(k.c); err != 0 {
		atomic.StoreUint32((*uint32)(unsafe.Pointer(&k.c.running)), 0)
		return fmt.Errorf("audioclock: start: %w", syscall.Errno(err))
	}
	k.started = true
	// Its stack, as it locks its memory: where allowed, and without it
	// otherwise (the host's probe has said why).
	k.stackLen = C.us_clock_lock_stack(k.c, rt.StackLockBytes, &k.stackAt)
	k.locked.Add(uint64(k.stackLen))
	for l := range k.cfg.Lanes {
		if k.cfg.Feed != nil && fed[l] {
			k.pumps.Add(1)
			go k.feeder(l, next[l])
		}
		if k.cfg.Drain != nil {
			k.pumps.Add(1)
			go k.drainer(l)
		}
	}
	if k.c.rt_err != 0 {
		return fmt.Errorf("%w (%v)", ErrNoRT, syscall.Errno(k.c.rt_err))
	}
	return nil
}

// pumpWait bounds how long a pump sleeps on its ring before it looks again at
// whether the clock still runs: the bound on how long Join waits for it.
const pumpWait = 5 * time.Millisecond

// feedOne asks Feed for block *n of lane l and publishes it. more is false
// once the lane's input ended; full when the source ring has no room.
func (k *Clock) feedOne(l int, n *uint64) (more, full bool) {
	src := k.src[l]
	blk, err := src.Peek()
	if err != nil || blk == nil {
		return err == nil, err == nil
	}
	per := k.cfg.Frames * k.cfg.Lanes[l].Channels()
	flags, ok := k.cfg.Feed(l, *n, blk.Samples(per))
	if !ok {
		return false, false
	}
	blk.SetHeader(*n, k.cfg.Frames, flags, shm.NowNS())
	src.Publish()
	*n++
	return flags&shm.BlockLast == 0, false
}

// feeder keeps lane l's source full until its input ends or the clock does.
func (k *Clock) feeder(l int, n uint64) {
	defer k.pumps.Done()
	for !k.quit.Load() && k.Running() {
		more, full := k.feedOne(l, &n)
		if !more {
			return
		}
		if full {
			k.src[l].Wait(0, pumpWait)
		}
	}
}

// drainer hands lane l's output to Drain until the clock has ended and its
// sink is empty.
func (k *Clock) drainer(l int) {
	defer k.pumps.Done()
	sink := k.sink[l]
	per := k.cfg.Frames * k.cfg.Lanes[l].Channels()
	for !k.quit.Load() {
		blk, err := sink.Peek()
		if err != nil {
			return // the clock is the producer: cannot happen but by a bug
		}
		if blk == nil {
			if !k.Running() {
				// The thread's last publish happened before it cleared
				// running: one more look sees everything it wrote.
				if blk, _ = sink.Peek(); blk == nil {
					return
				}
			} else {
				sink.Wait(0, pumpWait)
				continue
			}
		}
		k.cfg.Drain(l, blk.Number(), blk.Flags(), blk.Samples(per))
		sink.Release()
	}
}

// Stop asks the clock to finish after the current period; Join waits.
func (k *Clock) Stop() {
	k.memMu.RLock()
	defer k.memMu.RUnlock()
	if k.c != nil {
		atomic.StoreUint32((*uint32)(unsafe.Pointer(&k.c.stop)), 1)
	}
}

// Running reports whether the clock has not finished: true from New until
// its thread ends (or Start fails), false after Free.
func (k *Clock) Running() bool {
	k.memMu.RLock()
	defer k.memMu.RUnlock()
	return k.c != nil && atomic.LoadUint32((*uint32)(unsafe.Pointer(&k.c.running))) != 0
}

// Join waits for the thread and the pumps to end, and stops an external
// driver (External); it returns at once if the clock never started. Any
// goroutine may call it, concurrently too.
func (k *Clock) Join() {
	k.life.Lock()
	defer k.life.Unlock()
	if k.started {
		C.us_clock_join(k.c)
		k.started = false
		if k.stackLen > 0 {
			// glibc keeps the stack for its next thread: unlocked, like
			// any ordinary thread's.
			C.us_clock_unlock_stack(k.stackAt, k.stackLen)
			k.locked.Add(-uint64(k.stackLen))
			k.stackLen = 0
		}
	}
	if k.driverStop != nil {
		k.driverStop() // idempotent: the driver may have stopped already
	}
	// A pump ends within pumpWait of the thread's end (or of its input's).
	k.pumps.Wait()
}

// OnFree registers stop, which Free calls and waits for before it unmaps:
// a reader of the Timeline methods on another thread (the supervisor's
// monitor) must, in stop, stop reading and return only once it has. remove
// takes the registration back. It fails with ErrFreed after Free began.
func (k *Clock) OnFree(stop func()) (remove func(), err error) {
	k.readerMu.Lock()
	defer k.readerMu.Unlock()
	if k.readersGone {
		return func() {}, ErrFreed
	}
	if k.readers == nil {
		k.readers = map[int]func(){}
	}
	id := k.nextRdr
	k.nextRdr++
	k.readers[id] = stop
	return func() {
		k.readerMu.Lock()
		delete(k.readers, id)
		k.readerMu.Unlock()
	}, nil
}

// Free stops and joins the thread and the pumps, stops every registered
// reader, then releases the clock's memory. It is idempotent and safe in any
// order with the supervisor's Close.
func (k *Clock) Free() {
	k.Stop()
	k.quit.Store(true)
	k.Join()
	k.life.Lock()
	if k.freed {
		k.life.Unlock()
		return
	}
	k.freed = true
	k.life.Unlock()
	k.unregister()
	k.readerMu.Lock()
	readers := k.readers
	k.readers = nil
	k.readersGone = true
	k.readerMu.Unlock()
	for _, stop := range readers {
		stop()
	}
	k.memMu.Lock()
	unix.Munmap(k.mem)
	k.mem, k.c = nil, nil
	k.locked.Store(0)
	k.memMu.Unlock()
}

// Periods is how many periods have completed (0 after Free).
func (k *Clock) Periods() uint64 {
	k.memMu.RLock()
	defer k.memMu.RUnlock()
	if k.c == nil {
		return 0
	}
	return ld64(&k.c.period)
}

// StartNS is when period 0 began (CLOCK_MONOTONIC; 0 after Free).
func (k *Clock) StartNS() uint64 {
	k.memMu.RLock()
	defer k.memMu.RUnlock()
	if k.c == nil {
		return 0
	}
	return ld64(&k.c.start_ns)
}

// The Timeline methods below take no lock: they are for the monitor, a
// real-time thread, which registers with OnFree so that Free cannot unmap
// while it reads. Nobody else may call them.

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

// OutRead is the clock's consumer index on lane i's output ring, as the
// clock last published it for the monitor (release after its own store):
// the host's copy, not the ring's shared one, which the owner could write.
func (k *Clock) OutRead(i int) uint64 { return ld64(&k.c.lanes[i].out_read) }

// Corrupt is lane i's corruption state (LaneOK, LaneCorrupt, LaneReset).
func (k *Clock) Corrupt(i int) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&k.c.lanes[i].corrupt)))
}

// MarkReset tells the clock that lane i has a new owner that resumes from
// indices the monitor chose: the clock picks them up once the owner stored
// them.
func (k *Clock) MarkReset(i int) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&k.c.lanes[i].corrupt)), LaneReset)
}

// HeadroomNS is how long a block may take from its push before its output
// is late: (latency - 1) periods.
func (k *Clock) HeadroomNS() uint64 {
	return uint64(k.cfg.Latency-1) * uint64(k.c.period_ns)
}

// LateMaxNS is the worst wake-up lateness the clock has measured: what the
// machine itself adds to any thread's response, workers' included.
func (k *Clock) LateMaxNS() uint64 { return ld64(&k.c.late_max_ns) }

// Garbage is how many of lane i's output blocks were refused as garbage,
// and the last one's number: the monitor kills the owner when it moves.
func (k *Clock) Garbage(i int) (seq, block uint64) {
	seq = ld64(&k.c.lanes[i].garbage_seq)
	return seq, ld64(&k.c.lanes[i].garbage_block)
}

// SetEpoch is the fencing token of lane i's new owner: it owns the output
// ring from index from on, and the clock takes a block only from the epoch
// that owned its index (the last owners' blocks published before their
// fence count; nothing a fenced owner publishes after). The monitor calls it
// before it sends the ATTACH, with epochs that only grow.
func (k *Clock) SetEpoch(i int, epoch, from uint64) {
	cl := &k.c.lanes[i]
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&cl.epoch_from[epoch%C.US_EPOCH_SPAN])), from)
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&cl.epoch)), epoch)
}

// LaneStats are one lane's counters.
type LaneStats struct {
	Xruns, Stale, InOverflows, SrcUnderruns, SinkOverflows, Bypassed, Corruptions, Delivered, Garbage uint64
	Fenced                                                                                            uint64 // output blocks of another epoch than the owner's, dropped
}

// Stats reads lane i's counters (zero after Free).
func (k *Clock) Stats(i int) LaneStats {
	k.memMu.RLock()
	defer k.memMu.RUnlock()
	if k.c == nil {
		return LaneStats{}
	}
	cl := &k.c.lanes[i]
	return LaneStats{
		Xruns: ld64(&cl.xruns), Stale: ld64(&cl.stale), InOverflows: ld64(&cl.in_overflows),
		SrcUnderruns: ld64(&cl.src_underruns), SinkOverflows: ld64(&cl.sink_overflows),
		Bypassed: ld64(&cl.bypassed), Corruptions: ld64(&cl.corruptions), Delivered: ld64(&cl.delivered),
		Garbage: ld64(&cl.garbage),
		Fenced:  ld64(&cl.fenced),
	}
}

// Lateness is the worst wake-up lateness and its histogram: bucket b counts
// wake-ups late by [2^(b-1), 2^b) µs, bucket 0 by less than 1 µs. Zero
// after Free.
func (k *Clock) Lateness() (max time.Duration, hist [32]uint64) {
	k.memMu.RLock()
	defer k.memMu.RUnlock()
	if k.c == nil {
		return 0, hist
	}
	for i := range hist {
		hist[i] = ld64(&k.c.late_hist[i])
	}
	return time.Duration(ld64(&k.c.late_max_ns)), hist
}

func ld64(p *C.uint64_t) uint64 { return atomic.LoadUint64((*uint64)(unsafe.Pointer(p))) }
