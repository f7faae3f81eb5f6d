// Package shm is the Go view of the shared region that the host and its C
// workers map: a sealed memfd holding worker slots and lanes, whose layout is
// defined once in csrc/us_region.h. The Go types here are that header as cgo
// translates it; layout_test.go checks every offset against the C compiler's.
//
// Everything a worker can write is untrusted: methods that read such fields
// return them raw, and the callers (the audio clock, the monitor) bound-check
// them before use.
package shm

/*
#cgo CFLAGS: -I${SRCDIR}/../../csrc
#include "us_region.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The region's fixed limits, from the C header.
const (
	MaxLanes      = C.US_MAX_LANES
	MaxSlots      = C.US_MAX_SLOTS
	RingSlots     = C.US_RING_SLOTS
	SlotSamples   = C.US_SLOT_SAMPLES
	MaxFrames     = C.US_MAX_FRAMES
	MaxChannels   = C.US_MAX_CHANNELS
	MaxChain      = C.US_MAX_CHAIN
	StateBytes    = C.US_LANE_STATE_BYTES
	KernelNameMax = C.US_KERNEL_NAME_MAX
	VariantMax    = C.US_KERNEL_VARIANT_MAX
	MaxParams     = C.US_KERNEL_MAX_PARAMS
	NoOwner       = C.US_NO_OWNER
	LayoutVersion = C.US_LAYOUT_VERSION
	KernelABI     = C.US_KERNEL_ABI_VERSION
)

// Worker status, as a worker reports it in its slot.
const (
	StEmpty    = C.US_ST_EMPTY
	StStarting = C.US_ST_STARTING
	StReady    = C.US_ST_READY
	StAttached = C.US_ST_ATTACHED
	StDying    = C.US_ST_DYING
	StExited   = C.US_ST_EXITED
	StFailed   = C.US_ST_FAILED
)

// Commands from the host to a worker.
const (
	CmdAttach = C.US_CMD_ATTACH
	CmdExit   = C.US_CMD_EXIT
	// AttachReinit, in an ATTACH's flags: initialise the chain's state
	// afresh over the committed state instead of resuming from it.
	AttachReinit = C.US_ATTACH_REINIT
)

// Block flags.
const (
	BlockBypassed = C.US_BLOCK_BYPASSED
	BlockLast     = C.US_BLOCK_LAST
)

type (
	region     C.us_region
	chainEntry C.us_chain_entry
	header     C.us_header
	Slot       C.us_slot
	Lane       C.us_lane
	RingCtl    C.us_ring_ctl
	Block      C.us_block
)

// Region is one mapped, sealed memfd. Its creator owns the mapping: Close
// unmaps it, and only after every registered user (OnClose) has stopped.
type Region struct {
	fd     int
	mem    []byte
	hdr    *header
	nLanes int

	mu     sync.Mutex // guards users and closed; never held while a stop runs
	users  map[int]func()
	nextID int
	closed bool
}

// live holds every mapped region, so that a lane pointer can be traced back
// to the region that owns its memory (RegionOf). Touched only when a region
// is created or closed and when a clock is built: never on a real-time path.
var live struct {
	sync.Mutex
	regions map[*Region]struct{}
}

// RegionOf returns the mapped region that holds lane l, or nil.
func RegionOf(l *Lane) *Region {
	p := uintptr(unsafe.Pointer(l))
	live.Lock()
	defer live.Unlock()
	for r := range live.regions {
		base := uintptr(unsafe.Pointer(&r.mem[0]))
		if p >= base && p < base+uintptr(len(r.mem)) {
			return r
		}
	}
	return nil
}

// OnClose registers stop with the region: Close calls it, and waits for it
// to return, before it unmaps. A thread that reads the region but was not
// started by its owner (an audio clock's) must register a stop that joins
// it, not one that merely asks. remove takes the registration back, for a
// user that stopped by itself; ok is false if the region is already closed
// (and stop was not registered).
func (r *Region) OnClose(stop func()) (remove func(), ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return func() {}, false
	}
	if r.users == nil {
		r.users = map[int]func(){}
	}
	id := r.nextID
	r.nextID++
	r.users[id] = stop
	return func() {
		r.mu.Lock()
		delete(r.users, id)
		r.mu.Unlock()
	}, true
}

// StopUsers runs every registered stop and removes it; later registrations
// are refused. Close calls it first; an owner calls it earlier when its users
// touch more than the mapping (the clock rings the supervisor's doorbell).
func (r *Region) StopUsers() {
	r.mu.Lock()
	r.closed = true
	users := r.users
	r.users = nil
	r.mu.Unlock()
	for _, stop := range users {
		stop()
	}
}

// Bytes is the size of a region with n lanes.
func Bytes(nLanes int) int { return int(C.us_region_bytes(C.uint32_t(nLanes))) }

// ErrLanes is returned for a lane count the region cannot hold.
var ErrLanes = errors.New("lane count out of range")

// Create makes a region for nLanes lanes: memfd, sized once, sealed against
// shrinking and growing (so no worker can make the host fault with SIGBUS),
// mapped shared. Its memory is freed when the last fd and mapping go, so a
// crash leaks nothing into /dev/shm.
func Create(nLanes int) (*Region, error) {
	if nLanes < 1 || nLanes > MaxLanes {
		return nil, fmt.Errorf("shm: %d lanes: %w (1..%d)", nLanes, ErrLanes, MaxLanes)
	}
	size := Bytes(nLanes)
	fd, err := unix.MemfdCreate("understudy-region", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("shm: memfd_create: %w (needs Linux 3.17+)", err)
	}
	fail := func(what string, err error) (*Region, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: %s: %w", what, err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		return fail("ftruncate", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		return fail("seal", err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail("mmap", err)
	}
	// Fault the region in and lock it where allowed, so neither the audio
	// clock nor the monitor ever takes a page fault on it.
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 0
	}
	_ = unix.Mlock(mem)
	r := &Region{fd: fd, mem: mem, nLanes: nLanes}
	r.hdr = (*header)(unsafe.Pointer(&mem[0]))
	h := r.hdr
	h.layout_version = C.US_LAYOUT_VERSION
	h.kernel_abi = C.US_KERNEL_ABI_VERSION
	h.region_bytes = C.uint64_t(size)
	h.n_lanes = C.uint32_t(nLanes)
	h.n_slots = C.US_MAX_SLOTS
	h.slots_offset = C.uint64_t(unsafe.Offsetof(C.us_region{}.slots))
	h.lanes_offset = C.uint64_t(unsafe.Sizeof(C.us_region{}))
	h.lane_stride = C.uint64_t(unsafe.Sizeof(Lane{}))
	h.slot_stride = C.uint64_t(unsafe.Sizeof(Slot{}))
	h.host_pid = C.uint64_t(os.Getpid())
	for i := 0; i < nLanes; i++ {
		l := r.Lane(i)
		l.owner_slot = C.US_NO_OWNER
		l.bypass_block = ^C.uint64_t(0)
	}
	// The magic goes last: a worker that maps a half-initialised region refuses it.
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&h.magic)), C.US_REGION_MAGIC)
	live.Lock()
	if live.regions == nil {
		live.regions = map[*Region]struct{}{}
	}
	live.regions[r] = struct{}{}
	live.Unlock()
	return r, nil
}

// FD is the memfd, for handing to workers.
func (r *Region) FD() int { return r.fd }

// Size is the mapping's length in bytes.
func (r *Region) Size() int { return len(r.mem) }

// Lanes is the lane count.
func (r *Region) Lanes() int { return r.nLanes }

// Lane returns lane i; it panics on an index out of range (a host bug).
func (r *Region) Lane(i int) *Lane {
	if i < 0 || i >= r.nLanes {
		panic(fmt.Sprintf("shm: lane %d of %d", i, r.nLanes))
	}
	off := int(unsafe.Sizeof(C.us_region{})) + i*int(unsafe.Sizeof(Lane{}))
	return (*Lane)(unsafe.Pointer(&r.mem[off]))
}

// Slot returns worker slot i; it panics on an index out of range.
func (r *Region) Slot(i int) *Slot {
	if i < 0 || i >= MaxSlots {
		panic(fmt.Sprintf("shm: slot %d of %d", i, MaxSlots))
	}
	off := int(unsafe.Offsetof(C.us_region{}.slots)) + i*int(unsafe.Sizeof(Slot{}))
	return (*Slot)(unsafe.Pointer(&r.mem[off]))
}

// Close stops every registered user (OnClose), then unmaps and closes.
// Workers that still map the memfd keep its memory alive. Call it once every
// goroutine of the owner's that reads the region has been joined; it is
// idempotent.
func (r *Region) Close() error {
	r.StopUsers()
	if r.mem == nil {
		return nil
	}
	live.Lock()
	delete(live.regions, r)
	live.Unlock()
	err := unix.Munmap(r.mem)
	r.mem = nil
	if cerr := unix.Close(r.fd); err == nil {
		err = cerr
	}
	return err
}

// Seals reports the memfd's seals (for tests and diagnostics).
func (r *Region) Seals() (int, error) { return unix.FcntlInt(uintptr(r.fd), unix.F_GET_SEALS, 0) }

func ftruncate(fd int, n int64) error { return unix.Ftruncate(fd, n) }

func ld64(p *C.uint64_t) uint64     { return atomic.LoadUint64((*uint64)(unsafe.Pointer(p))) }
func st64(p *C.uint64_t, v uint64)  { atomic.StoreUint64((*uint64)(unsafe.Pointer(p)), v) }
func ld32(p *C.uint32_t) uint32     { return atomic.LoadUint32((*uint32)(unsafe.Pointer(p))) }
func st32(p *C.uint32_t, v uint32)  { atomic.StoreUint32((*uint32)(unsafe.Pointer(p)), v) }
func ldi32(p *C.int32_t) int32      { return atomic.LoadInt32((*int32)(unsafe.Pointer(p))) }
func add32(p *C.uint32_t, d uint32) { atomic.AddUint32((*uint32)(unsafe.Pointer(p)), d) }
