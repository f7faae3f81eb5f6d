package shm

/*
#include "us_region.h"
*/
import "C"

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// ChainEntry is one kernel of a lane's chain, as the host validated it.
type ChainEntry struct {
	Name       string
	Variant    string // "" or "scalar", "sse2", "avx2", ...: the same for every worker of the lane
	Params     []float32
	StateBytes int // this kernel's state for the lane's channel count
}

// LaneConfig is what a lane computes; it is fixed before the first owner.
type LaneConfig struct {
	Channels int
	Frames   int
	Rate     int
	Chain    []ChainEntry
}

// Lane is one chain's memory: a sealed memfd sized to its geometry, and the
// host's private copy of its configuration. Every geometry, size and offset
// the host uses comes from the private copy; the shared memory holds only
// what the protocol needs there (csrc/us_region.h says who writes what).
type Lane struct {
	region *Region
	index  int
	m      mapping
	sh     *laneShm
	cfg    LaneConfig
	image  laneCfg       // the configuration as workers see it, copied into slot maps
	epoch  atomic.Uint64 // the current owner's epoch: the host's own copy
	bypass atomic.Uint64 // the bypassed block: the host's own copy
}

// buildImage validates cfg and lays it out for workers, geometry included.
func buildImage(cfg LaneConfig) (laneCfg, error) {
	var img laneCfg
	switch {
	case cfg.Channels < 1 || cfg.Channels > MaxChannels:
		return img, fmt.Errorf("lane: %d channels, want 1..%d", cfg.Channels, MaxChannels)
	case cfg.Frames < 1 || cfg.Frames > MaxFrames:
		return img, fmt.Errorf("lane: %d frames per block, want 1..%d", cfg.Frames, MaxFrames)
	case cfg.Frames*cfg.Channels > SlotSamples:
		return img, fmt.Errorf("lane: %d frames x %d channels exceeds a block's %d samples", cfg.Frames, cfg.Channels, SlotSamples)
	case len(cfg.Chain) > MaxChain:
		return img, fmt.Errorf("lane: a chain of %d kernels, at most %d", len(cfg.Chain), MaxChain)
	case cfg.Rate < 0:
		return img, fmt.Errorf("lane: rate %d", cfg.Rate)
	}
	off := 0
	for i, e := range cfg.Chain {
		if len(e.Name) == 0 || len(e.Name) >= KernelNameMax {
			return img, fmt.Errorf("lane: kernel name %q must be 1..%d bytes", e.Name, KernelNameMax-1)
		}
		if len(e.Params) > MaxParams {
			return img, fmt.Errorf("lane: kernel %s has %d params, at most %d", e.Name, len(e.Params), MaxParams)
		}
		if e.StateBytes < 0 {
			return img, fmt.Errorf("lane: kernel %s has %d bytes of state", e.Name, e.StateBytes)
		}
		ce := &img.chain[i]
		for j := 0; j < len(e.Name); j++ {
			ce.name[j] = C.char(e.Name[j])
		}
		if len(e.Variant) >= VariantMax {
			return img, fmt.Errorf("lane: variant name %q must be under %d bytes", e.Variant, VariantMax)
		}
		for j := 0; j < len(e.Variant); j++ {
			ce.variant[j] = C.char(e.Variant[j])
		}
		ce.n_params = C.uint32_t(len(e.Params))
		for j, p := range e.Params {
			ce.params[j] = C.float(p)
		}
		// 16-byte alignment keeps SIMD kernels' state loads aligned.
		off = (off + 15) &^ 15
		ce.state_offset = C.uint32_t(off)
		off += e.StateBytes
		if off > StateBytes {
			break
		}
	}
	if off > StateBytes {
		return img, fmt.Errorf("lane: the chain needs %d bytes of state, a lane holds %d", off, StateBytes)
	}
	img.channels = C.uint32_t(cfg.Channels)
	img.frames = C.uint32_t(cfg.Frames)
	img.rate = C.uint32_t(cfg.Rate)
	img.chain_len = C.uint32_t(len(cfg.Chain))
	img.state_bytes = C.uint32_t(off)
	setGeometry(&img)
	return img, nil
}

// setGeometry lays a lane out: its state buffers (the chain's states, then
// the parameter vector in force) and rings sized to its configuration (the same rule as us_lane_geometry, which a test compares).
func setGeometry(c *laneCfg) {
	const line = C.US_CACHELINE
	up := func(n, to uint64) uint64 { return (n + to - 1) / to * to }
	c.state_stride = C.uint32_t(up(uint64(c.state_bytes), line) + C.US_LANE_PARAM_BYTES)
	c.block_stride = C.uint32_t(line + up(uint64(c.frames)*uint64(c.channels)*4, line))
	c.state_off = C.uint64_t(unsafe.Sizeof(laneShm{}))
	c.in_off = c.state_off + 2*C.uint64_t(c.state_stride)
	c.out_off = c.in_off + RingSlots*C.uint64_t(c.block_stride)
	c.lane_bytes = C.uint64_t(up(uint64(c.out_off)+RingSlots*uint64(c.block_stride), C.US_PAGE))
}

func newLane(r *Region, i int, cfg LaneConfig) (*Lane, error) {
	img, err := buildImage(cfg)
	if err != nil {
		return nil, err
	}
	m, err := newMapping("understudy-lane", int(img.lane_bytes))
	if err != nil {
		return nil, err
	}
	l := &Lane{region: r, index: i, m: m, image: img}
	l.cfg = cfg
	l.cfg.Chain = append([]ChainEntry(nil), cfg.Chain...)
	l.sh = (*laneShm)(unsafe.Pointer(&m.mem[0]))
	l.sh.owner_slot = C.US_NO_OWNER
	l.sh.bypass_block = ^C.uint64_t(0)
	l.bypass.Store(^uint64(0))
	writeHeader((*header)(&l.sh.hdr), C.US_MAP_LANE, i, 0, len(m.mem))
	return l, nil
}

// RestoreHeader writes the lane's header and bypass block again from the
// host's own values. The monitor calls it before every attach, while the
// lane has no owner: a dead owner's scribbles on them must not make the next
// one refuse the lane, or bypass a block nobody chose.
func (l *Lane) RestoreHeader() {
	h := (*header)(unsafe.Pointer(&l.sh.hdr))
	st32(&h.layout_version, C.US_LAYOUT_VERSION)
	st32(&h.kernel_abi, C.US_KERNEL_ABI_VERSION)
	st64(&h.bytes, uint64(len(l.m.mem)))
	st32(&h.kind, C.US_MAP_LANE)
	st32(&h.index, uint32(l.index))
	st32(&h.n_lanes, 0)
	st64(&h.magic, C.US_REGION_MAGIC)
	st64(&l.sh.bypass_block, l.bypass.Load())
}

// Bytes is the lane memfd's size: its geometry's.
func (l *Lane) Bytes() int { return len(l.m.mem) }

// FD is the lane's memfd, for handing to its owner at attach.
func (l *Lane) FD() int { return l.m.fd }

// Config is the host's private configuration of the lane.
func (l *Lane) Config() LaneConfig { return l.cfg }

// Channels and Frames are the host's private configuration: never read from
// shared memory.
func (l *Lane) Channels() int { return l.cfg.Channels }
func (l *Lane) Frames() int   { return l.cfg.Frames }

// In and Out are the lane's rings, at the host's own offsets.
func (l *Lane) In() Ring {
	return newRing(unsafe.Pointer(&l.sh.in), unsafe.Add(unsafe.Pointer(l.sh), uintptr(l.image.in_off)), RingSlots, uintptr(l.image.block_stride))
}
func (l *Lane) Out() Ring {
	return newRing(unsafe.Pointer(&l.sh.out), unsafe.Add(unsafe.Pointer(l.sh), uintptr(l.image.out_off)), RingSlots, uintptr(l.image.block_stride))
}

// RingParts describes a ring of the lane for C (the audio clock): its
// control, its first block and the stride between blocks.
func (r Ring) RingParts() (ctl, blocks unsafe.Pointer, stride uintptr) {
	return unsafe.Pointer(r.ctl), r.blocks, r.stride
}

// Committed is the commit point (in.read), written by the owner: untrusted.
func (l *Lane) Committed() uint64 { return ld64(&l.sh.in.read) }

// CommitEpoch is the epoch of the owner that last took the commit point
// (written by the owner: untrusted; compared with the host's own epoch).
func (l *Lane) CommitEpoch() uint64 { return ld64(&l.sh.commit_epoch) }

// SetOwner records the owner: the host's own copy of the epoch, which is
// what every check compares with, and the shared copy for workers and
// tools. Only the monitor calls it.
func (l *Lane) SetOwner(slot uint32, epoch uint64) {
	l.epoch.Store(epoch)
	st32(&l.sh.owner_slot, slot)
	st64(&l.sh.owner_epoch, epoch)
}

// Epoch is the current owner's epoch, from the host's own memory.
func (l *Lane) Epoch() uint64 { return l.epoch.Load() }

// SetBypass makes the owner output the fallback for block b (poison input).
func (l *Lane) SetBypass(b uint64) {
	l.bypass.Store(b)
	st64(&l.sh.bypass_block, b)
}

// Bypass is the block currently bypassed, or ^0, from the host's own copy.
func (l *Lane) Bypass() uint64 { return l.bypass.Load() }

// CommitReport is the owner's last commit (untrusted, for metrics only).
func (l *Lane) CommitReport() (block, ns, commits uint64) {
	return ld64(&l.sh.commit_block), ld64(&l.sh.commit_ns), ld64(&l.sh.commits)
}

// ResumePoints are the indices a new owner resumes from, chosen by the host
// from its own indices (the clock's inWrite and outRead): the commit point
// if it lies in [inWrite-RingSlots, inWrite], else inWrite; the output write
// index if it lies in [outRead, outRead+RingSlots], else outRead. Blocks lost
// this way become xruns, never garbage. The new owner stores them itself:
// the host never writes the owner's indices. changed reports whether either
// differs from what the lane holds now.
func (l *Lane) ResumePoints(inWrite, outRead uint64) (inRead, outWrite uint64, changed bool) {
	inRead = ld64(&l.sh.in.read)
	if inRead > inWrite || inWrite-inRead > RingSlots {
		inRead, changed = inWrite, true
	}
	outWrite = ld64(&l.sh.out.write)
	if outWrite < outRead || outWrite-outRead > RingSlots {
		outWrite, changed = outRead, true
	}
	return inRead, outWrite, changed
}

// Ptr is the lane's shared address, for handing to C (the audio clock).
func (l *Lane) Ptr() unsafe.Pointer { return unsafe.Pointer(l.sh) }

// Index is the lane's number in its region.
func (l *Lane) Index() int { return l.index }

// InBlockNumber is the block number in the input block at index idx
// (written by the producer, but a worker could scribble it: reports only).
func (l *Lane) InBlockNumber(idx uint64) uint64 {
	return l.In().block(idx).Number()
}

// WakeOwner wakes an owner asleep on the input ring, so it sees a command.
func (l *Lane) WakeOwner() { FutexWake(low32(&l.sh.in.write), 1) }
