// Package shm is the Go view of the memory the host shares with its C
// workers: one sealed memfd per worker slot and one per lane, whose layout is
// defined once in csrc/us_region.h (with the table of who writes which
// field). The Go types here are that header as cgo translates it;
// layout_test.go checks every offset against the C compiler's.
//
// A Region owns the set: it creates, seals, maps, locks and unmaps every
// memfd. A worker is handed its slot's fd at spawn and its lane's fd at
// attach, and nothing else. Each lane's configuration stays in host-private
// Go memory (Lane), is copied into the slot maps, and is never read back.
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
	// AttachNotify, in an ATTACH's flags: ring the doorbell once attached.
	AttachNotify = C.US_ATTACH_NOTIFY
)

// Block flags.
const (
	BlockBypassed = C.US_BLOCK_BYPASSED
	BlockLast     = C.US_BLOCK_LAST
)

type (
	header     C.us_header
	chainEntry C.us_chain_entry
	laneCfg    C.us_lane_cfg
	slotMap    C.us_slot_map
	attachMsg  C.us_attach_msg
	Slot       C.us_slot
	laneShm    C.us_lane
	RingCtl    C.us_ring_ctl
	Block      C.us_block
)

// mapping is one sealed, mapped memfd.
type mapping struct {
	fd  int
	mem []byte
}

// Region is the set of memfds one supervisor shares with its workers: a slot
// map per worker slot and a lane per chain. Its creator owns every mapping:
// Close unmaps them, and only after every registered user (OnClose) has
// stopped.
type Region struct {
	slots [MaxSlots]mapping
	lanes []*Lane

	mu     sync.Mutex // guards users and closed; never held while a stop runs
	users  map[int]func()
	nextID int
	closed bool
	gone   atomic.Bool // Close unmapped: RegionOf answers nil
}

// RegionOf returns the mapped region that holds lane l, or nil once it is
// closed. The audio clock registers its stop with it (OnClose).
func RegionOf(l *Lane) *Region {
	if l == nil || l.region == nil || l.region.gone.Load() {
		return nil
	}
	return l.region
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

// SlotBytes is the size of a slot map for a supervisor of n lanes.
func SlotBytes(nLanes int) int { return int(C.us_slot_map_bytes(C.uint32_t(nLanes))) }

// MaxLaneBytes is the largest lane any geometry needs.
var MaxLaneBytes = func() int {
	g := C.us_lane_cfg{channels: 1, frames: MaxFrames, state_bytes: StateBytes}
	C.us_lane_geometry(&g)
	return int(g.lane_bytes)
}()

// Bytes is the most shared memory one worker of a supervisor with nLanes
// lanes maps: its slot map and one lane.
func Bytes(nLanes int) int { return SlotBytes(nLanes) + MaxLaneBytes }

// HostBytes is the shared memory a host maps (and locks) for these lanes:
// every slot map and every lane, each lane sized to its geometry; lanes
// whose configuration is invalid count at the most any lane takes.
func HostBytes(cfgs []LaneConfig) int {
	n := MaxSlots * ((SlotBytes(len(cfgs)) + 4095) &^ 4095)
	for _, c := range cfgs {
		if img, err := buildImage(c); err == nil {
			n += int(img.lane_bytes)
		} else {
			n += MaxLaneBytes
		}
	}
	return n
}

// ErrLanes is returned for a lane count the region cannot hold.
var ErrLanes = errors.New("lane count out of range")

// newMapping makes a memfd of size bytes, sized once and sealed against
// shrinking and growing (so no worker can make the host fault with SIGBUS),
// mapped shared, faulted in and locked where allowed (so neither the audio
// clock nor the monitor ever takes a page fault on it). Its memory is freed
// when the last fd and mapping go, so a crash leaks nothing into /dev/shm.
func newMapping(name string, size int) (mapping, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return mapping{fd: -1}, fmt.Errorf("shm: memfd_create: %w (needs Linux 3.17+)", err)
	}
	fail := func(what string, err error) (mapping, error) {
		unix.Close(fd)
		return mapping{fd: -1}, fmt.Errorf("shm: %s: %w", what, err)
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
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 0
	}
	_ = unix.Mlock(mem)
	return mapping{fd: fd, mem: mem}, nil
}

func (m *mapping) close() error {
	if m.mem == nil {
		return nil
	}
	err := unix.Munmap(m.mem)
	m.mem = nil
	if cerr := unix.Close(m.fd); err == nil {
		err = cerr
	}
	m.fd = -1
	return err
}

func writeHeader(h *header, kind, index, nLanes int, size int) {
	h.layout_version = C.US_LAYOUT_VERSION
	h.kernel_abi = C.US_KERNEL_ABI_VERSION
	h.bytes = C.uint64_t(size)
	h.kind = C.uint32_t(kind)
	h.index = C.uint32_t(index)
	h.n_lanes = C.uint32_t(nLanes)
	h.host_pid = C.uint64_t(os.Getpid())
	// The magic goes last: a worker that maps a half-initialised map refuses it.
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&h.magic)), C.US_REGION_MAGIC)
}

// Create makes the memory for one lane per configuration and every worker
// slot: each lane sized to its geometry, each slot map holding a copy of
// every lane's configuration (written again by PrepareSlot).
func Create(cfgs []LaneConfig) (*Region, error) {
	if len(cfgs) < 1 || len(cfgs) > MaxLanes {
		return nil, fmt.Errorf("shm: %d lanes: %w (1..%d)", len(cfgs), ErrLanes, MaxLanes)
	}
	r := &Region{}
	for i := range r.slots {
		r.slots[i].fd = -1
	}
	fail := func(err error) (*Region, error) {
		r.unmap()
		return nil, err
	}
	for i, c := range cfgs {
		l, err := newLane(r, i, c)
		if err != nil {
			return fail(fmt.Errorf("lane %d: %w", i, err))
		}
		r.lanes = append(r.lanes, l)
	}
	size := SlotBytes(len(cfgs))
	for i := range r.slots {
		m, err := newMapping("understudy-slot", size)
		if err != nil {
			return fail(err)
		}
		r.slots[i] = m
		sm := r.slotMap(i)
		sm.slot = C.us_slot{}
		r.writeConfigs(i)
		writeHeader((*header)(&sm.hdr), C.US_MAP_SLOT, i, len(cfgs), size)
	}
	return r, nil
}

func (r *Region) slotMap(i int) *slotMap { return (*slotMap)(unsafe.Pointer(&r.slots[i].mem[0])) }

// writeConfigs copies every lane's configuration into slot i's map, from
// the host's private copy: whatever the previous occupant wrote there is
// gone before the next one reads it.
func (r *Region) writeConfigs(i int) {
	base := unsafe.Add(unsafe.Pointer(&r.slots[i].mem[0]), unsafe.Sizeof(slotMap{}))
	for li, l := range r.lanes {
		*(*laneCfg)(unsafe.Add(base, uintptr(li)*unsafe.Sizeof(laneCfg{}))) = l.image
	}
}

// PrepareSlot readies slot i for a new process: it clears what the previous
// occupant reported, writes the lanes' configurations again and bumps the
// generation the new worker must present. Only the control plane calls it,
// and only for a slot no process holds.
func (r *Region) PrepareSlot(i int) uint32 {
	gen := r.Slot(i).Prepare()
	r.writeConfigs(i)
	return gen
}

// Size is the bytes the host maps (and locks) for the region: every lane's
// and every slot's memory, each a whole number of pages.
func (r *Region) Size() int {
	page := func(n int) int { return (n + 4095) &^ 4095 }
	n := 0
	for _, l := range r.lanes {
		n += page(len(l.m.mem))
	}
	for i := range r.slots {
		n += page(len(r.slots[i].mem))
	}
	return n
}

// SlotFD is slot i's memfd, for handing to the worker spawned into it.
func (r *Region) SlotFD(i int) int { return r.slots[i].fd }

// Lanes is the lane count.
func (r *Region) Lanes() int { return len(r.lanes) }

// Lane returns lane i; it panics on an index out of range (a host bug).
func (r *Region) Lane(i int) *Lane {
	if i < 0 || i >= len(r.lanes) {
		panic(fmt.Sprintf("shm: lane %d of %d", i, len(r.lanes)))
	}
	return r.lanes[i]
}

// Slot returns worker slot i; it panics on an index out of range.
func (r *Region) Slot(i int) *Slot {
	if i < 0 || i >= MaxSlots {
		panic(fmt.Sprintf("shm: slot %d of %d", i, MaxSlots))
	}
	return (*Slot)(unsafe.Pointer(&r.slotMap(i).slot))
}

func (r *Region) unmap() error {
	var err error
	for i := range r.slots {
		if e := r.slots[i].close(); err == nil {
			err = e
		}
	}
	for _, l := range r.lanes {
		if e := l.m.close(); err == nil {
			err = e
		}
	}
	return err
}

// Close stops every registered user (OnClose), then unmaps and closes every
// memfd. Workers that still map a memfd keep its memory alive. Call it once
// every goroutine of the owner's that reads the region has been joined; it
// is idempotent.
func (r *Region) Close() error {
	r.StopUsers()
	if r.gone.Swap(true) {
		return nil
	}
	return r.unmap()
}

func ftruncate(fd int, n int64) error { return unix.Ftruncate(fd, n) }

func seals(fd int) (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0) }

func ld64(p *C.uint64_t) uint64     { return atomic.LoadUint64((*uint64)(unsafe.Pointer(p))) }
func st64(p *C.uint64_t, v uint64)  { atomic.StoreUint64((*uint64)(unsafe.Pointer(p)), v) }
func ld32(p *C.uint32_t) uint32     { return atomic.LoadUint32((*uint32)(unsafe.Pointer(p))) }
func st32(p *C.uint32_t, v uint32)  { atomic.StoreUint32((*uint32)(unsafe.Pointer(p)), v) }
func ldi32(p *C.int32_t) int32      { return atomic.LoadInt32((*int32)(unsafe.Pointer(p))) }
func add32(p *C.uint32_t, d uint32) { atomic.AddUint32((*uint32)(unsafe.Pointer(p)), d) }
