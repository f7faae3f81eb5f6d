package shm

import (
	"testing"
	"unsafe"
)

// Every offset and size the Go side uses equals the C compiler's: the Go
// types are cgo's translation of csrc/us_region.h, and this catches any
// disagreement (alignment attributes, packing) between the two.
func TestLayoutMatchesC(t *testing.T) {
	var (
		rg region
		h  header
		s  Slot
		l  Lane
		rc RingCtl
		b  Block
		ce chainEntry
	)
	goView := []struct {
		name string
		v    uintptr
	}{
		{"sizeof(us_region)", unsafe.Sizeof(rg)},
		{"sizeof(us_header)", unsafe.Sizeof(h)},
		{"sizeof(us_slot)", unsafe.Sizeof(s)},
		{"sizeof(us_lane)", unsafe.Sizeof(l)},
		{"sizeof(us_ring_ctl)", unsafe.Sizeof(rc)},
		{"sizeof(us_block)", unsafe.Sizeof(b)},
		{"us_region.slots", unsafe.Offsetof(rg.slots)},
		{"us_region.lanes", unsafe.Sizeof(rg)},
		{"ring.write", unsafe.Offsetof(rc.write)},
		{"ring.write_waiters", unsafe.Offsetof(rc.write_waiters)},
		{"ring.read", unsafe.Offsetof(rc.read)},
		{"ring.read_waiters", unsafe.Offsetof(rc.read_waiters)},
		{"block.block", unsafe.Offsetof(b.block)},
		{"block.t_push_ns", unsafe.Offsetof(b.t_push_ns)},
		{"block.frames", unsafe.Offsetof(b.frames)},
		{"block.flags", unsafe.Offsetof(b.flags)},
		{"block.data", unsafe.Offsetof(b.data)},
		{"lane.channels", unsafe.Offsetof(l.channels)},
		{"lane.frames", unsafe.Offsetof(l.frames)},
		{"lane.rate", unsafe.Offsetof(l.rate)},
		{"lane.chain_len", unsafe.Offsetof(l.chain_len)},
		{"lane.state_bytes", unsafe.Offsetof(l.state_bytes)},
		{"lane.chain", unsafe.Offsetof(l.chain)},
		{"lane.owner_epoch", unsafe.Offsetof(l.owner_epoch)},
		{"lane.owner_slot", unsafe.Offsetof(l.owner_slot)},
		{"lane.bypass_block", unsafe.Offsetof(l.bypass_block)},
		{"lane.commit_block", unsafe.Offsetof(l.commit_block)},
		{"lane.commit_ns", unsafe.Offsetof(l.commit_ns)},
		{"lane.commits", unsafe.Offsetof(l.commits)},
		{"lane.in", unsafe.Offsetof(l.in)},
		{"lane.out", unsafe.Offsetof(l.out)},
		{"lane.state", unsafe.Offsetof(l.state)},
		{"lane.in_blocks", unsafe.Offsetof(l.in_blocks)},
		{"lane.out_blocks", unsafe.Offsetof(l.out_blocks)},
		{"slot.cmd_seq", unsafe.Offsetof(s.cmd_seq)},
		{"slot.cmd", unsafe.Offsetof(s.cmd)},
		{"slot.cmd_lane", unsafe.Offsetof(s.cmd_lane)},
		{"slot.generation", unsafe.Offsetof(s.generation)},
		{"slot.cmd_epoch", unsafe.Offsetof(s.cmd_epoch)},
		{"slot.fault_kind", unsafe.Offsetof(s.fault_kind)},
		{"slot.fault_block", unsafe.Offsetof(s.fault_block)},
		{"slot.status", unsafe.Offsetof(s.status)},
		{"slot.pid", unsafe.Offsetof(s.pid)},
		{"slot.ready_ns", unsafe.Offsetof(s.ready_ns)},
		{"slot.attach_ns", unsafe.Offsetof(s.attach_ns)},
		{"slot.first_commit_ns", unsafe.Offsetof(s.first_commit_ns)},
		{"slot.fault_ns", unsafe.Offsetof(s.fault_ns)},
		{"slot.heartbeat", unsafe.Offsetof(s.heartbeat)},
		{"slot.fail_code", unsafe.Offsetof(s.fail_code)},
		{"slot.gasp", unsafe.Offsetof(s.gasp)},
		{"slot.gasp_signo", unsafe.Offsetof(s.gasp_signo)},
		{"slot.gasp_block", unsafe.Offsetof(s.gasp_block)},
		{"slot.gasp_ns", unsafe.Offsetof(s.gasp_ns)},
		{"header.magic", unsafe.Offsetof(h.magic)},
		{"header.layout_version", unsafe.Offsetof(h.layout_version)},
		{"header.kernel_abi", unsafe.Offsetof(h.kernel_abi)},
		{"header.region_bytes", unsafe.Offsetof(h.region_bytes)},
		{"header.n_lanes", unsafe.Offsetof(h.n_lanes)},
		{"header.n_slots", unsafe.Offsetof(h.n_slots)},
		{"header.lanes_offset", unsafe.Offsetof(h.lanes_offset)},
		{"header.slots_offset", unsafe.Offsetof(h.slots_offset)},
		{"header.lane_stride", unsafe.Offsetof(h.lane_stride)},
		{"header.slot_stride", unsafe.Offsetof(h.slot_stride)},
		{"header.host_pid", unsafe.Offsetof(h.host_pid)},
		{"sizeof(us_chain_entry)", unsafe.Sizeof(ce)},
		{"chain_entry.n_params", unsafe.Offsetof(ce.n_params)},
		{"chain_entry.state_offset", unsafe.Offsetof(ce.state_offset)},
		{"chain_entry.params", unsafe.Offsetof(ce.params)},
		{"slot.lag_max_ns", unsafe.Offsetof(s.lag_max_ns)},
		{"slot.first_push_ns", unsafe.Offsetof(s.first_push_ns)},
		{"chain_entry.variant", unsafe.Offsetof(ce.variant)},
		{"slot.death", unsafe.Offsetof(s.death)},
		{"slot.death_gen", unsafe.Offsetof(s.death_gen)},
	}
	for i, g := range goView {
		if c := cLayout(i); c != g.v {
			t.Errorf("%s: Go %d, C %d", g.name, g.v, c)
		}
	}
	if cLayout(len(goView)) != ^uintptr(0) {
		t.Errorf("the C table has more entries than the Go one: add them here")
	}
	// Every control word the protocol relies on sits on its own line.
	for _, o := range []uintptr{unsafe.Offsetof(l.owner_epoch), unsafe.Offsetof(l.commit_block), unsafe.Offsetof(l.in), unsafe.Offsetof(l.out),
		unsafe.Offsetof(l.in) + unsafe.Offsetof(rc.read), unsafe.Offsetof(s.status), unsafe.Offsetof(s.gasp)} {
		if o%64 != 0 {
			t.Errorf("control word at offset %d is not on its own 64-byte line", o)
		}
	}
}

// A created region is sized once and sealed against shrinking, growing and
// further sealing, so a worker's ftruncate cannot make the host fault.
func TestRegionSealed(t *testing.T) {
	r, err := Create(2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	seals, err := r.Seals()
	if err != nil {
		t.Fatal(err)
	}
	const want = 0x1 | 0x2 | 0x4 // F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW
	if seals&want != want {
		t.Errorf("seals %#x, want %#x set", seals, want)
	}
	if err := ftruncate(r.FD(), 0); err == nil {
		t.Error("ftruncate to 0 succeeded on a sealed region")
	}
	if err := ftruncate(r.FD(), int64(r.Size())*2); err == nil {
		t.Error("ftruncate to grow succeeded on a sealed region")
	}
	if r.Size() != Bytes(2) {
		t.Errorf("size %d, want %d", r.Size(), Bytes(2))
	}
	if _, err := Create(0); err == nil {
		t.Error("Create(0) succeeded")
	}
	if _, err := Create(MaxLanes + 1); err == nil {
		t.Error("Create(MaxLanes+1) succeeded")
	}
}
