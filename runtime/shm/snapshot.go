package shm

import "unsafe"

// What a repro file needs of a lane (supervisor/repro.go): the committed
// state a block started from and the block itself, at the host's own
// offsets and sizes, and where each kernel's state lies.

// CommittedState is the state buffer that commit point r resumes from
// (state[r & 1]), StateBytesUsed long: shared memory, read by the monitor
// between owners. Allocates nothing.
func (l *Lane) CommittedState(r uint64) []byte {
	off := uintptr(l.image.state_off) + uintptr(r&1)*uintptr(l.image.state_stride)
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(l.sh), off)), int(l.image.state_bytes))
}

// StateBytesUsed is the chain's state size, from the host's own copy.
func (l *Lane) StateBytesUsed() int { return int(l.image.state_bytes) }

// InBlock is the input block at ring index idx. Its header was written by
// the producer but lies in memory the owner can write: bound-check it.
func (l *Lane) InBlock(idx uint64) *Block { return l.In().block(idx) }

// StateOffsets is where each kernel of the chain keeps its state in a
// state buffer, as the host laid it out.
func (l *Lane) StateOffsets() []int {
	offs := make([]int, len(l.cfg.Chain))
	for i := range offs {
		offs[i] = int(l.image.chain[i].state_offset)
	}
	return offs
}
