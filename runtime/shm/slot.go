package shm

/*
#include "us_region.h"
*/
import "C"

import "unsafe"

// Fault kinds a worker performs on itself when asked (csrc/us_region.h).
const (
	FaultNone     = C.US_FAULT_NONE
	FaultSegv     = C.US_FAULT_SEGV
	FaultBus      = C.US_FAULT_BUS
	FaultAbort    = C.US_FAULT_ABORT
	FaultFPE      = C.US_FAULT_FPE
	FaultKill     = C.US_FAULT_KILL
	FaultExit     = C.US_FAULT_EXIT
	FaultHang     = C.US_FAULT_HANG
	FaultStop     = C.US_FAULT_STOP
	FaultScribble = C.US_FAULT_SCRIBBLE
	FaultRobust   = C.US_FAULT_ROBUST
	FaultStale    = C.US_FAULT_STALE
	FaultForge    = C.US_FAULT_FORGE
)

// NoResume is a resume point that keeps the ring's index as it is.
const NoResume = ^uint64(0)

// Prepare readies a slot for a new process: it clears what the previous
// occupant reported and bumps the generation the new worker must present.
// Only the control plane calls it (through Region.PrepareSlot, which also
// rewrites the lanes' configurations), and only for a slot no process holds.
func (s *Slot) Prepare() uint32 {
	gen := ld32(&s.generation) + 1
	cmdSeq := ld32(&s.cmd_seq)
	*s = Slot{}
	st32(&s.cmd_seq, cmdSeq) // a stale waiter must never see its old value again
	st32(&s.status, StStarting)
	st32(&s.generation, gen)
	// The death word starts empty for every occupant: whatever the kernel
	// wrote for the last one (OWNER_DIED) is gone before the next one runs.
	st32(&s.death_gen, gen)
	return gen
}

// Bits of a robust futex word (linux/futex.h).
const (
	FutexWaiters   = C.US_FUTEX_WAITERS
	FutexOwnerDied = C.US_FUTEX_OWNER_DIED
	FutexTIDMask   = C.US_FUTEX_TID_MASK
)

// DeathWord is the slot's robust futex word (see us_region.h): the worker's
// TID while it lives, FutexOwnerDied once the kernel saw its thread die.
// Untrusted: the worker can write it.
func (s *Slot) DeathWord() *uint32 { return (*uint32)(unsafe.Pointer(&s.death)) }

// DeathGen is the generation the death word belongs to (set by Prepare).
func (s *Slot) DeathGen() uint32 { return ld32(&s.death_gen) }

// Status is what the worker says of itself (untrusted).
func (s *Slot) Status() uint32 { return ld32(&s.status) }

// PID is the pid the worker wrote (untrusted; the host keeps its own).
func (s *Slot) PID() int { return int(ldi32(&s.pid)) }

// Command hands the worker a command: arguments first, then the sequence bump
// (the release the worker acquires), then a wake for a worker asleep on it.
// For ATTACH, inRead and outWrite are where the new owner resumes (or
// NoResume), and flags are US_ATTACH_* (AttachReinit); the lane's fd must be
// on the worker's control socket already.
func (s *Slot) Command(cmd uint32, lane uint32, epoch uint64, inRead, outWrite uint64, flags uint32) {
	st32(&s.cmd_lane, lane)
	st64(&s.cmd_epoch, epoch)
	st64(&s.cmd_in_read, inRead)
	st64(&s.cmd_out_write, outWrite)
	st32(&s.cmd_flags, flags)
	st32(&s.cmd, cmd)
	add32(&s.cmd_seq, 1)
	FutexWake((*uint32)(unsafe.Pointer(&s.cmd_seq)), 1)
}

// InjectFault asks the worker to perform kind when it processes block.
func (s *Slot) InjectFault(kind uint32, block uint64) {
	st64(&s.fault_block, block)
	st32(&s.fault_kind, kind)
}

// Gasp reports the last-gasp record: whether the handler ran, its signal,
// the block in hand and when (untrusted, for reports).
func (s *Slot) Gasp() (ok bool, signo int, block uint64, ns uint64) {
	if ld32(&s.gasp) == 0 {
		return false, 0, 0, 0
	}
	return true, int(ldi32(&s.gasp_signo)), ld64(&s.gasp_block), ld64(&s.gasp_ns)
}

// Times the worker reported (CLOCK_MONOTONIC ns; 0 = not yet).
func (s *Slot) ReadyNS() uint64       { return ld64(&s.ready_ns) }
func (s *Slot) AttachNS() uint64      { return ld64(&s.attach_ns) }
func (s *Slot) FirstCommitNS() uint64 { return ld64(&s.first_commit_ns) }
func (s *Slot) FaultNS() uint64       { return ld64(&s.fault_ns) }
func (s *Slot) Heartbeat() uint64     { return ld64(&s.heartbeat) }
func (s *Slot) FailCode() uint32      { return ld32(&s.fail_code) }
func (s *Slot) LagMaxNS() uint64      { return ld64(&s.lag_max_ns) }
func (s *Slot) FirstPushNS() uint64   { return ld64(&s.first_push_ns) }

// CmdSeqAddr is the futex word a worker sleeps on, for waking it when its
// lane has news but no command (shutdown).
func (s *Slot) CmdSeqAddr() *uint32 { return (*uint32)(unsafe.Pointer(&s.cmd_seq)) }

// CostPeakNS is the worker's recent peak of a block's chain time (it decays
// by 1/1024 a block). Worker-written: a bound on its own deadline at most,
// which the host clamps.
func (s *Slot) CostPeakNS() uint64 { return ld64(&s.cost_peak_ns) }

// Overruns counts the blocks whose chain took longer than a period.
func (s *Slot) Overruns() uint64 { return ld64(&s.overruns) }
