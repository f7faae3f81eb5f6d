package supervisor

import (
	"fmt"
	"time"

	"github.com/understudy-rt/understudy/runtime/shm"
)

// Path says how a failure was detected, fastest first.
type Path int

const (
	PathNone     Path = iota
	PathLastGasp      // the worker's fatal-signal handler rang the doorbell
	PathPidfd         // the worker's pidfd became readable: it exited
	PathDeadline      // the lane's pending block missed its deadline: hung
	PathCorrupt       // the worker broke the ring protocol: scribbled on shared memory
	// PathExiting: its block's deadline came while the worker was already
	// in exit (its pidfd not yet readable: the kernel was still tearing it
	// down). A death, like PathPidfd, seen by the deadline's look at it.
	PathExiting
	// PathSandbox: the worker made a system call its seccomp filter denies
	// and was killed with SIGSYS (a kernel that tried to fork, open a file,
	// signal another process...). Seen by its pidfd.
	PathSandbox
	// PathDeathWord: the kernel marked the worker's death word
	// (FUTEX_OWNER_DIED, from its robust list) as the thread began to exit,
	// before tearing its memory down; the exit flag confirmed it.
	PathDeathWord
	// PathGarbage: the clock refused the owner's output block (NaN, Inf,
	// or a sample past the ceiling) and the monitor killed the owner; the
	// next owner re-initialises the chain, as the state may be poisoned.
	PathGarbage
)

func (p Path) String() string {
	switch p {
	case PathLastGasp:
		return "last_gasp"
	case PathPidfd:
		return "pidfd"
	case PathDeadline:
		return "deadline"
	case PathCorrupt:
		return "corrupt"
	case PathExiting:
		return "exiting"
	case PathSandbox:
		return "sandbox"
	case PathDeathWord:
		return "death_word"
	case PathGarbage:
		return "garbage"
	}
	return "none"
}

// MarshalText makes a Path its name in JSON and other text encodings.
func (p Path) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// Fault is a failure a worker can be made to suffer, for demos and tests.
type Fault int

const (
	FaultSegv  Fault = shm.FaultSegv  // writes through a null pointer
	FaultBus   Fault = shm.FaultBus   // touches a truncated file mapping
	FaultAbort Fault = shm.FaultAbort // abort()
	FaultFPE   Fault = shm.FaultFPE   // integer divide by zero
	FaultKill  Fault = shm.FaultKill  // the host sends SIGKILL
	FaultExit  Fault = shm.FaultExit  // _exit(3) mid-block
	FaultHang  Fault = shm.FaultHang  // infinite loop in the kernel
	FaultStop  Fault = shm.FaultStop  // raise(SIGSTOP)
	// FaultScribble corrupts the lane's output index and carries on. It is
	// not in Faults (the demo's "all"): ask for it by name.
	FaultScribble Fault = shm.FaultScribble
	// FaultRobust corrupts the worker's robust futex list, then exits: the
	// kernel marks no death word, and only the pidfd can tell. For tests;
	// not in Faults.
	FaultRobust Fault = shm.FaultRobust
	// FaultStale makes the owner carry on under the epoch before its own,
	// stamping its output and commits with it, as an owner the host had
	// fenced would: the host must count none of it. For tests; not in Faults.
	FaultStale Fault = shm.FaultStale
	// FaultForge writes a last gasp for the block in hand and carries on,
	// as a kernel that forged its worker's gasp would: the host hands the
	// lane on and must kill the forger. For tests; not in Faults.
	FaultForge Fault = shm.FaultForge
)

// Faults lists every fault kind in the order the demo cycles through them.
var Faults = []Fault{FaultSegv, FaultBus, FaultAbort, FaultFPE, FaultKill, FaultExit, FaultHang, FaultStop}

var faultNames = map[Fault]string{
	FaultSegv: "segv", FaultBus: "bus", FaultAbort: "abort", FaultFPE: "fpe",
	FaultKill: "kill", FaultExit: "exit", FaultHang: "hang", FaultStop: "stop",
	FaultScribble: "scribble", FaultRobust: "robust", FaultForge: "forge",
}

func (f Fault) String() string {
	if n, ok := faultNames[f]; ok {
		return n
	}
	return fmt.Sprintf("fault(%d)", int(f))
}

// ParseFault reads a fault kind by name.
func ParseFault(s string) (Fault, error) {
	for f, n := range faultNames {
		if n == s {
			return f, nil
		}
	}
	return 0, fmt.Errorf("unknown fault kind %q (want one of segv, bus, abort, fpe, kill, exit, hang, stop, scribble, robust, forge)", s)
}

// ExpectedPath is how each fault must be detected.
func (f Fault) ExpectedPath() Path {
	switch f {
	case FaultSegv, FaultBus, FaultAbort, FaultFPE, FaultForge:
		return PathLastGasp
	case FaultKill, FaultExit:
		return PathDeathWord
	case FaultRobust:
		return PathPidfd
	case FaultHang, FaultStop:
		return PathDeadline
	case FaultScribble:
		return PathCorrupt
	}
	return PathNone
}

// Expects says whether p is how f should be detected: its ExpectedPath, or
// for a death without a death word (robust), the exit flag seen before the
// pidfd.
func (f Fault) Expects(p Path) bool {
	want := f.ExpectedPath()
	return p == want || (want == PathPidfd && p == PathExiting)
}

// EventKind says what happened.
type EventKind int

const (
	EvSpareReady   EventKind = iota + 1 // a new worker finished its handshake
	EvFailover                          // a lane's owner failed and a spare took the lane
	EvNoSpare                           // a lane's owner failed and no spare was ready
	EvWorkerExited                      // a worker process was reaped
	EvSpawnFailed                       // a worker could not be started
	EvLaneFailed                        // a lane's owners kept dying: it was given up (Err says which and why)
)

func (k EventKind) String() string {
	switch k {
	case EvSpareReady:
		return "spare_ready"
	case EvFailover:
		return "failover"
	case EvNoSpare:
		return "no_spare"
	case EvWorkerExited:
		return "worker_exited"
	case EvSpawnFailed:
		return "spawn_failed"
	case EvLaneFailed:
		return "lane_failed"
	}
	return "unknown"
}

// Event is one thing the supervisor saw. Times are CLOCK_MONOTONIC ns
// (shm.NowNS); zero means not known.
type Event struct {
	Kind EventKind
	Lane int // -1 when no lane is concerned
	Slot int // the worker concerned: the failed owner for EvFailover
	PID  int

	// EvFailover and EvNoSpare
	Path          Path
	Signal        int    // fatal signal from the last gasp, if any
	Block         uint64 // the block the failed owner had in hand (its first uncommitted one)
	FaultNS       uint64 // when the worker performed an injected fault (or the host sent SIGKILL)
	DetectNS      uint64 // when the monitor decided
	NewSlot       int    // the new owner
	NewPID        int
	AttachNS      uint64 // when the monitor handed the lane over
	FirstCommitNS uint64 // the new owner's first committed block
	FirstPushNS   uint64 // when that block was pushed (later than DetectNS when the lane was idle)
	Poisoned      bool   // the same block killed successive owners: it is now bypassed
	Reinit        bool   // the new owner re-initialised the chain: the old committed state may have been poisoned (garbage)

	// EvSpareReady: SpawnNS → ReadyNS is the spare's start-up time
	SpawnNS uint64
	ReadyNS uint64

	// EvWorkerExited
	ExitCode   int // -1 when killed by a signal
	ExitSignal int

	Err error // EvSpawnFailed, EvLaneFailed

	// Output is the failed worker's last lines on stderr and stdout (up
	// to 10 of the last 4 KiB it printed), for EvFailover, EvNoSpare,
	// EvLaneFailed and an EvWorkerExited that was no clean exit. The
	// control plane fills it, never the monitor.
	Output string
	// Repro is the file that saved a poisoned block (EvFailover with
	// Poisoned) with the committed state it started from, for `understudy
	// replay`; ReproErr says why there is none.
	Repro    string
	ReproErr error
}

// Detection is the time from the fault to the monitor's decision.
func (e Event) Detection() time.Duration { return nsDiff(e.FaultNS, e.DetectNS) }

// Failover is the time from detection to the new owner's first commit. When
// the lane was idle at detection (no block pending), the clock starts when
// the next block arrived instead: an idle lane has nothing to commit, and
// waiting for the next period is not failover time.
func (e Event) Failover() time.Duration {
	return nsDiff(max(e.DetectNS, e.FirstPushNS), e.FirstCommitNS)
}

// Fence is the part of a failover spent making sure the old owner can no
// longer write before the lane moves: for a hung or corrupt owner, the kill
// and then its death word or its exit flag (PF_EXITING), the pidfd only as
// the backstop; for a death it is the confirming read of the exit flag.
func (e Event) Fence() time.Duration { return nsDiff(e.DetectNS, e.AttachNS) }

// Startup is a spare's time from spawn to ready.
func (e Event) Startup() time.Duration { return nsDiff(e.SpawnNS, e.ReadyNS) }

func nsDiff(a, b uint64) time.Duration {
	if a == 0 || b == 0 || b < a {
		return -1
	}
	return time.Duration(b - a)
}
