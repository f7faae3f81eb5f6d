package shm

/*
#include "us_region.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Live parameter limits, from the C headers.
const (
	BlockChanges = C.US_BLOCK_CHANGES    // changes one input block carries
	ParamBytes   = C.US_LANE_PARAM_BYTES // a state buffer's parameter vector
	KernelABIMin = C.US_KERNEL_ABI_MIN   // the oldest kernel ABI a worker loads
)

// ParamChange is one live parameter change: from input block Block on,
// parameter Param of the lane's kernel Kernel (indices in the chain and in
// the kernel's schema) is Value. The worker applies it before processing
// that block; a spare that resumes before the block applies it too.
type ParamChange struct {
	Block  uint64
	Kernel int
	Param  int
	Value  float32
}

func (c ParamChange) String() string {
	return fmt.Sprintf("block %d: kernel %d param %d = %g", c.Block, c.Kernel, c.Param, c.Value)
}

// SetChanges writes the changes an input block carries (at most
// BlockChanges; their Block fields are not stored: the block's number is
// theirs). Call it after SetHeader, before publishing.
func (b *Block) SetChanges(cs []ParamChange) error {
	if len(cs) > BlockChanges {
		return fmt.Errorf("shm: %d parameter changes at block %d, a block carries at most %d", len(cs), b.Number(), BlockChanges)
	}
	for i, c := range cs {
		if c.Kernel < 0 || c.Kernel >= MaxChain || c.Param < 0 || c.Param >= MaxParams {
			return fmt.Errorf("shm: parameter change %v names no kernel or parameter a chain can have", c)
		}
		b.changes[i] = C.us_param_change{kernel: C.uint8_t(c.Kernel), param: C.uint8_t(c.Param), value: C.float(c.Value)}
	}
	b.n_changes = C.uint32_t(len(cs))
	return nil
}

// Changes is what an input block carries (written by the producer; a
// worker could scribble it: for tests and tools).
func (b *Block) Changes() []ParamChange {
	n := int(b.n_changes)
	if n > BlockChanges {
		return nil
	}
	out := make([]ParamChange, n)
	for i := range out {
		c := b.changes[i]
		out[i] = ParamChange{Block: b.Number(), Kernel: int(c.kernel), Param: int(c.param), Value: float32(c.value)}
	}
	return out
}

// ParamVector is state buffer i's (0 or 1) parameter vector, chain[k]'s
// values at [k*MaxParams:], at the host's own offsets. It is shared memory
// the lane's owner writes: for tests and tools, never trusted.
func (l *Lane) ParamVector(i int) []float32 {
	off := uintptr(l.image.state_off) + uintptr(i&1)*uintptr(l.image.state_stride) +
		uintptr(l.image.state_stride) - ParamBytes
	return unsafe.Slice((*float32)(unsafe.Add(unsafe.Pointer(l.sh), off)), MaxChain*MaxParams)
}
