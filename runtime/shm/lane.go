package shm

/*
#include "us_region.h"
*/
import "C"

import (
	"fmt"
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

// Configure writes the lane's chain. Call it before any worker attaches.
func (l *Lane) Configure(cfg LaneConfig) error {
	switch {
	case cfg.Channels < 1 || cfg.Channels > MaxChannels:
		return fmt.Errorf("lane: %d channels, want 1..%d", cfg.Channels, MaxChannels)
	case cfg.Frames < 1 || cfg.Frames > MaxFrames:
		return fmt.Errorf("lane: %d frames per block, want 1..%d", cfg.Frames, MaxFrames)
	case cfg.Frames*cfg.Channels > SlotSamples:
		return fmt.Errorf("lane: %d frames x %d channels exceeds a block's %d samples", cfg.Frames, cfg.Channels, SlotSamples)
	case len(cfg.Chain) > MaxChain:
		return fmt.Errorf("lane: a chain of %d kernels, at most %d", len(cfg.Chain), MaxChain)
	}
	off := 0
	for i, e := range cfg.Chain {
		if len(e.Name) == 0 || len(e.Name) >= KernelNameMax {
			return fmt.Errorf("lane: kernel name %q must be 1..%d bytes", e.Name, KernelNameMax-1)
		}
		if len(e.Params) > MaxParams {
			return fmt.Errorf("lane: kernel %s has %d params, at most %d", e.Name, len(e.Params), MaxParams)
		}
		ce := &l.chain[i]
		*ce = C.us_chain_entry{}
		for j := 0; j < len(e.Name); j++ {
			ce.name[j] = C.char(e.Name[j])
		}
		if len(e.Variant) >= VariantMax {
			return fmt.Errorf("lane: variant name %q must be under %d bytes", e.Variant, VariantMax)
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
	}
	if off > StateBytes {
		return fmt.Errorf("lane: the chain needs %d bytes of state, a lane holds %d", off, StateBytes)
	}
	l.channels = C.uint32_t(cfg.Channels)
	l.frames = C.uint32_t(cfg.Frames)
	l.rate = C.uint32_t(cfg.Rate)
	l.chain_len = C.uint32_t(len(cfg.Chain))
	l.state_bytes = C.uint32_t(off)
	return nil
}

// Channels and Frames are host-written config, trusted.
func (l *Lane) Channels() int { return int(l.channels) }
func (l *Lane) Frames() int   { return int(l.frames) }

// In and Out are the lane's rings.
func (l *Lane) In() Ring {
	return Ring{ctl: (*RingCtl)(&l.in), blocks: unsafe.Pointer(&l.in_blocks[0]), mask: RingSlots - 1}
}
func (l *Lane) Out() Ring {
	return Ring{ctl: (*RingCtl)(&l.out), blocks: unsafe.Pointer(&l.out_blocks[0]), mask: RingSlots - 1}
}

// Committed is the commit point (in.read), written by the owner: untrusted.
func (l *Lane) Committed() uint64 { return ld64(&l.in.read) }

// SetOwner records the owner for workers and tools; only the monitor calls it.
func (l *Lane) SetOwner(slot uint32, epoch uint64) {
	st32(&l.owner_slot, slot)
	st64(&l.owner_epoch, epoch)
}

// OwnerEpoch is the epoch of the current owner.
func (l *Lane) OwnerEpoch() uint64 { return ld64(&l.owner_epoch) }

// SetBypass makes the owner output the fallback for block b (poison input).
func (l *Lane) SetBypass(b uint64) { st64(&l.bypass_block, b) }

// Bypass is the block currently bypassed, or ^0.
func (l *Lane) Bypass() uint64 { return ld64(&l.bypass_block) }

// CommitReport is the owner's last commit (untrusted, for metrics only).
func (l *Lane) CommitReport() (block, ns, commits uint64) {
	return ld64(&l.commit_block), ld64(&l.commit_ns), ld64(&l.commits)
}

// RepairIndices puts the owner-written indices back in range after a worker
// scribbled on them, before a new owner attaches: the input commit point into
// [inWrite-RingSlots, inWrite], the output write index to outRead (what the
// host has consumed). Blocks lost this way become xruns, never garbage.
// It reports whether anything had to change.
func (l *Lane) RepairIndices(inWrite, outRead uint64) bool {
	changed := false
	r := ld64(&l.in.read)
	if r > inWrite || inWrite-r > RingSlots {
		st64(&l.in.read, inWrite)
		changed = true
	}
	if ld64(&l.in.write) != inWrite {
		st64(&l.in.write, inWrite)
		changed = true
	}
	w := ld64(&l.out.write)
	if w < outRead || w-outRead > RingSlots {
		st64(&l.out.write, outRead)
		changed = true
	}
	if ld64(&l.out.read) != outRead {
		st64(&l.out.read, outRead)
		changed = true
	}
	return changed
}

// Ptr is the lane's address, for handing to C (the audio clock).
func (l *Lane) Ptr() unsafe.Pointer { return unsafe.Pointer(l) }

// InBlockNumber is the block number the host pushed at input index idx.
func (l *Lane) InBlockNumber(idx uint64) uint64 {
	return uint64(l.in_blocks[idx&(RingSlots-1)].block)
}

// WakeOwner wakes an owner asleep on the input ring, so it sees a command.
func (l *Lane) WakeOwner() { FutexWake(low32(&l.in.write), 1) }
