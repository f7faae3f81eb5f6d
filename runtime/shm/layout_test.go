package shm

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// Every offset and size the Go side uses equals the C compiler's: the Go
// types are cgo's translation of csrc/us_region.h, and this catches any
// disagreement (alignment attributes, packing) between the two.
func TestLayoutMatchesC(t *testing.T) {
	var (
		h  header
		s  Slot
		l  laneShm
		rc RingCtl
		b  Block
		ce chainEntry
		lc laneCfg
		sm slotMap
		am attachMsg
	)
	goView := []struct {
		name string
		v    uintptr
	}{
		{"sizeof(us_header)", unsafe.Sizeof(h)},
		{"sizeof(us_slot)", unsafe.Sizeof(s)},
		{"sizeof(us_lane)", unsafe.Sizeof(l)},
		{"sizeof(us_ring_ctl)", unsafe.Sizeof(rc)},
		{"sizeof(us_block)", unsafe.Sizeof(b)},
		{"sizeof(us_chain_entry)", unsafe.Sizeof(ce)},
		{"sizeof(us_lane_cfg)", unsafe.Sizeof(lc)},
		{"sizeof(us_slot_map)", unsafe.Sizeof(sm)},
		{"sizeof(us_attach_msg)", unsafe.Sizeof(am)},
		{"ring_ctl.write", unsafe.Offsetof(rc.write)},
		{"ring_ctl.write_waiters", unsafe.Offsetof(rc.write_waiters)},
		{"ring_ctl.read", unsafe.Offsetof(rc.read)},
		{"ring_ctl.read_waiters", unsafe.Offsetof(rc.read_waiters)},
		{"block.block", unsafe.Offsetof(b.block)},
		{"block.t_push_ns", unsafe.Offsetof(b.t_push_ns)},
		{"block.frames", unsafe.Offsetof(b.frames)},
		{"block.flags", unsafe.Offsetof(b.flags)},
		{"block.epoch", unsafe.Offsetof(b.epoch)},
		{"block.data", unsafe.Offsetof(b.data)},
		{"lane.hdr", unsafe.Offsetof(l.hdr)},
		{"lane.owner_epoch", unsafe.Offsetof(l.owner_epoch)},
		{"lane.owner_slot", unsafe.Offsetof(l.owner_slot)},
		{"lane.bypass_block", unsafe.Offsetof(l.bypass_block)},
		{"lane.commit_block", unsafe.Offsetof(l.commit_block)},
		{"lane.commit_ns", unsafe.Offsetof(l.commit_ns)},
		{"lane.commits", unsafe.Offsetof(l.commits)},
		{"lane.commit_epoch", unsafe.Offsetof(l.commit_epoch)},
		{"lane.in", unsafe.Offsetof(l.in)},
		{"lane.out", unsafe.Offsetof(l.out)},
		{"lane_cfg.channels", unsafe.Offsetof(lc.channels)},
		{"lane_cfg.frames", unsafe.Offsetof(lc.frames)},
		{"lane_cfg.rate", unsafe.Offsetof(lc.rate)},
		{"lane_cfg.chain_len", unsafe.Offsetof(lc.chain_len)},
		{"lane_cfg.state_bytes", unsafe.Offsetof(lc.state_bytes)},
		{"lane_cfg.state_stride", unsafe.Offsetof(lc.state_stride)},
		{"lane_cfg.block_stride", unsafe.Offsetof(lc.block_stride)},
		{"lane_cfg.state_off", unsafe.Offsetof(lc.state_off)},
		{"lane_cfg.in_off", unsafe.Offsetof(lc.in_off)},
		{"lane_cfg.out_off", unsafe.Offsetof(lc.out_off)},
		{"lane_cfg.lane_bytes", unsafe.Offsetof(lc.lane_bytes)},
		{"lane_cfg.chain", unsafe.Offsetof(lc.chain)},
		{"slot.cmd_seq", unsafe.Offsetof(s.cmd_seq)},
		{"slot.cmd", unsafe.Offsetof(s.cmd)},
		{"slot.cmd_lane", unsafe.Offsetof(s.cmd_lane)},
		{"slot.generation", unsafe.Offsetof(s.generation)},
		{"slot.cmd_epoch", unsafe.Offsetof(s.cmd_epoch)},
		{"slot.fault_kind", unsafe.Offsetof(s.fault_kind)},
		{"slot.fault_block", unsafe.Offsetof(s.fault_block)},
		{"slot.cmd_in_read", unsafe.Offsetof(s.cmd_in_read)},
		{"slot.cmd_out_write", unsafe.Offsetof(s.cmd_out_write)},
		{"slot.status", unsafe.Offsetof(s.status)},
		{"slot.pid", unsafe.Offsetof(s.pid)},
		{"slot.ready_ns", unsafe.Offsetof(s.ready_ns)},
		{"slot.attach_ns", unsafe.Offsetof(s.attach_ns)},
		{"slot.first_commit_ns", unsafe.Offsetof(s.first_commit_ns)},
		{"slot.fault_ns", unsafe.Offsetof(s.fault_ns)},
		{"slot.heartbeat", unsafe.Offsetof(s.heartbeat)},
		{"slot.fail_code", unsafe.Offsetof(s.fail_code)},
		{"slot.lag_max_ns", unsafe.Offsetof(s.lag_max_ns)},
		{"slot.first_push_ns", unsafe.Offsetof(s.first_push_ns)},
		{"slot.gasp", unsafe.Offsetof(s.gasp)},
		{"slot.gasp_signo", unsafe.Offsetof(s.gasp_signo)},
		{"slot.gasp_block", unsafe.Offsetof(s.gasp_block)},
		{"slot.gasp_ns", unsafe.Offsetof(s.gasp_ns)},
		{"slot.death", unsafe.Offsetof(s.death)},
		{"slot.death_gen", unsafe.Offsetof(s.death_gen)},
		{"header.magic", unsafe.Offsetof(h.magic)},
		{"header.layout_version", unsafe.Offsetof(h.layout_version)},
		{"header.kernel_abi", unsafe.Offsetof(h.kernel_abi)},
		{"header.bytes", unsafe.Offsetof(h.bytes)},
		{"header.kind", unsafe.Offsetof(h.kind)},
		{"header.index", unsafe.Offsetof(h.index)},
		{"header.n_lanes", unsafe.Offsetof(h.n_lanes)},
		{"header.host_pid", unsafe.Offsetof(h.host_pid)},
		{"chain_entry.name", unsafe.Offsetof(ce.name)},
		{"chain_entry.variant", unsafe.Offsetof(ce.variant)},
		{"chain_entry.n_params", unsafe.Offsetof(ce.n_params)},
		{"chain_entry.state_offset", unsafe.Offsetof(ce.state_offset)},
		{"chain_entry.params", unsafe.Offsetof(ce.params)},
		{"slot_map.hdr", unsafe.Offsetof(sm.hdr)},
		{"slot_map.slot", unsafe.Offsetof(sm.slot)},
		{"slot_map.lanes", unsafe.Sizeof(sm)},
		{"attach_msg.lane", unsafe.Offsetof(am.lane)},
		{"attach_msg.epoch", unsafe.Offsetof(am.epoch)},
		{"block.n_changes", unsafe.Offsetof(b.n_changes)},
		{"block.changes", unsafe.Offsetof(b.changes)},
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

// The host and the worker lay a lane out by the same rule, and the lane is
// as small as its geometry: a 64-frame stereo lane needs kilobytes.
func TestLaneGeometry(t *testing.T) {
	for _, g := range []struct{ ch, frames, state int }{
		{1, 1, 0}, {2, 64, 40}, {2, 64, 0}, {1, 1024, StateBytes}, {16, 256, 1000}, {4, 1024, 65}, {3, 17, 17},
	} {
		var goCfg laneCfg
		goCfg.channels, goCfg.frames, goCfg.state_bytes = _Ctype_uint32_t(g.ch), _Ctype_uint32_t(g.frames), _Ctype_uint32_t(g.state)
		setGeometry(&goCfg)
		if c := cGeometry(g.ch, g.frames, g.state); c != goCfg {
			t.Errorf("%+v: Go geometry %+v, C %+v", g, goCfg, c)
		}
		if goCfg.lane_bytes%4096 != 0 || uint64(goCfg.block_stride) < 64+uint64(g.ch*g.frames*4) || int(goCfg.state_stride) < g.state {
			t.Errorf("%+v: geometry %+v does not hold the lane", g, goCfg)
		}
	}
	var small laneCfg
	small.channels, small.frames, small.state_bytes = 2, 64, 40
	setGeometry(&small)
	if small.lane_bytes > 32<<10 {
		t.Errorf("a 64-frame stereo lane takes %d bytes, want kilobytes (under 32 KiB)", small.lane_bytes)
	}
	if MaxLaneBytes > 1<<20 {
		t.Errorf("the largest lane is %d bytes: more than a worker's memlock budget allows comfortably", MaxLaneBytes)
	}
}

func testCfg(ch, frames int) LaneConfig {
	return LaneConfig{Channels: ch, Frames: frames, Rate: 48000, Chain: []ChainEntry{{Name: "gain", Params: []float32{-6}, StateBytes: 8}}}
}

// Every memfd is sized once and sealed against shrinking, growing and
// further sealing, so a worker's ftruncate cannot make the host fault; each
// lane's is its geometry's size, each slot's holds every lane's
// configuration.
func TestRegionSealed(t *testing.T) {
	r, err := Create([]LaneConfig{testCfg(2, 64), testCfg(1, 1024)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const want = 0x1 | 0x2 | 0x4 // F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW
	fds := map[string]int{"slot 0": r.SlotFD(0), "slot 31": r.SlotFD(MaxSlots - 1), "lane 0": r.Lane(0).FD(), "lane 1": r.Lane(1).FD()}
	for name, fd := range fds {
		s, err := seals(fd)
		if err != nil {
			t.Fatal(err)
		}
		if s&want != want {
			t.Errorf("%s: seals %#x, want %#x set", name, s, want)
		}
		if err := ftruncate(fd, 0); err == nil {
			t.Errorf("%s: ftruncate to 0 succeeded on a sealed memfd", name)
		}
		if err := ftruncate(fd, 1<<24); err == nil {
			t.Errorf("%s: ftruncate to grow succeeded on a sealed memfd", name)
		}
	}
	if a, b := r.Lane(0).Bytes(), r.Lane(1).Bytes(); a >= b || a > 32<<10 {
		t.Errorf("lane sizes %d (2 x 64) and %d (1 x 1024): not sized to their geometry", a, b)
	}
	if len(r.slots[0].mem) != SlotBytes(2) {
		t.Errorf("slot map %d bytes, want %d", len(r.slots[0].mem), SlotBytes(2))
	}
	if _, err := Create(nil); err == nil {
		t.Error("Create with no lanes succeeded")
	}
	if _, err := Create(make([]LaneConfig, MaxLanes+1)); err == nil {
		t.Error("Create with MaxLanes+1 lanes succeeded")
	}
	if _, err := Create([]LaneConfig{testCfg(0, 64)}); err == nil {
		t.Error("Create with a 0-channel lane succeeded")
	}
}

// The host never reads configuration back from shared memory: whatever a
// worker writes over its slot's copy of a lane's configuration, the host's
// answers are its own, and the next occupant of the slot gets the host's
// configuration again.
func TestConfigHostPrivate(t *testing.T) {
	r, err := Create([]LaneConfig{testCfg(2, 64)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l := r.Lane(0)
	// What a worker could do to the copy in its slot map.
	cp := (*laneCfg)(unsafe.Add(unsafe.Pointer(r.slotMap(3)), unsafe.Sizeof(slotMap{})))
	cp.channels, cp.frames, cp.in_off = 100000000, 1<<30, 1<<40
	if l.Channels() != 2 || l.Frames() != 64 {
		t.Errorf("after a scribble, the host says %d channels, %d frames; want 2, 64", l.Channels(), l.Frames())
	}
	if _, blocks, stride := l.In().RingParts(); uintptr(blocks)-uintptr(l.Ptr()) != uintptr(l.image.in_off) || stride != uintptr(l.image.block_stride) {
		t.Errorf("the input ring moved with the scribble")
	}
	r.PrepareSlot(3)
	if *cp != l.image {
		t.Errorf("PrepareSlot did not restore the host's configuration in the slot map")
	}
}

// The ownership table is in the header next to the layout, and names every
// field a process shares.
func TestOwnershipTableComplete(t *testing.T) {
	b, err := os.ReadFile("../../csrc/us_region.h")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	i := strings.Index(src, "Ownership: every shared field has one writer")
	j := strings.Index(src, "Exceptions,")
	if i < 0 || j < i {
		t.Fatal("no ownership table in csrc/us_region.h")
	}
	table := src[i:j]
	var (
		s Slot
		l laneShm
	)
	fields := []string{}
	for _, f := range []string{"cmd_seq", "cmd_lane", "cmd_epoch", "cmd_in_read", "cmd_out_write", "generation", "death_gen",
		"fault_kind", "fault_block", "status", "heartbeat", "lag_max_ns", "fail_code", "gasp", "death"} {
		fields = append(fields, "slot."+f)
	}
	for _, f := range []string{"owner_epoch", "owner_slot", "bypass_block", "commit_block", "commit_epoch", "in.write", "in.read", "out.write", "out.read", "state"} {
		fields = append(fields, "lane."+f)
	}
	_, _ = s, l
	for _, f := range fields {
		name := f[strings.Index(f, ".")+1:]
		if !strings.Contains(table, name) {
			t.Errorf("ownership table does not name %s", f)
		}
	}
	_ = fmt.Sprint()
}
