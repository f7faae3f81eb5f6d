package shm

/*
#include <stddef.h>
#include "us_region.h"

// The C compiler's view of the layout, for layout_test.go to compare with
// cgo's translation that the Go code uses. The order is layout_test.go's.
static size_t us_layout(int i) {
	switch (i) {
	case 0: return sizeof(us_header);
	case 1: return sizeof(us_slot);
	case 2: return sizeof(us_lane);
	case 3: return sizeof(us_ring_ctl);
	case 4: return sizeof(us_block);
	case 5: return sizeof(us_chain_entry);
	case 6: return sizeof(us_lane_cfg);
	case 7: return sizeof(us_slot_map);
	case 8: return sizeof(us_attach_msg);
	case 9: return offsetof(us_ring_ctl, write);
	case 10: return offsetof(us_ring_ctl, write_waiters);
	case 11: return offsetof(us_ring_ctl, read);
	case 12: return offsetof(us_ring_ctl, read_waiters);
	case 13: return offsetof(us_block, block);
	case 14: return offsetof(us_block, t_push_ns);
	case 15: return offsetof(us_block, frames);
	case 16: return offsetof(us_block, flags);
	case 17: return offsetof(us_block, epoch);
	case 18: return offsetof(us_block, data);
	case 19: return offsetof(us_lane, hdr);
	case 20: return offsetof(us_lane, owner_epoch);
	case 21: return offsetof(us_lane, owner_slot);
	case 22: return offsetof(us_lane, bypass_block);
	case 23: return offsetof(us_lane, commit_block);
	case 24: return offsetof(us_lane, commit_ns);
	case 25: return offsetof(us_lane, commits);
	case 26: return offsetof(us_lane, commit_epoch);
	case 27: return offsetof(us_lane, in);
	case 28: return offsetof(us_lane, out);
	case 29: return offsetof(us_lane_cfg, channels);
	case 30: return offsetof(us_lane_cfg, frames);
	case 31: return offsetof(us_lane_cfg, rate);
	case 32: return offsetof(us_lane_cfg, chain_len);
	case 33: return offsetof(us_lane_cfg, state_bytes);
	case 34: return offsetof(us_lane_cfg, state_stride);
	case 35: return offsetof(us_lane_cfg, block_stride);
	case 36: return offsetof(us_lane_cfg, state_off);
	case 37: return offsetof(us_lane_cfg, in_off);
	case 38: return offsetof(us_lane_cfg, out_off);
	case 39: return offsetof(us_lane_cfg, lane_bytes);
	case 40: return offsetof(us_lane_cfg, chain);
	case 41: return offsetof(us_slot, cmd_seq);
	case 42: return offsetof(us_slot, cmd);
	case 43: return offsetof(us_slot, cmd_lane);
	case 44: return offsetof(us_slot, generation);
	case 45: return offsetof(us_slot, cmd_epoch);
	case 46: return offsetof(us_slot, fault_kind);
	case 47: return offsetof(us_slot, fault_block);
	case 48: return offsetof(us_slot, cmd_in_read);
	case 49: return offsetof(us_slot, cmd_out_write);
	case 50: return offsetof(us_slot, status);
	case 51: return offsetof(us_slot, pid);
	case 52: return offsetof(us_slot, ready_ns);
	case 53: return offsetof(us_slot, attach_ns);
	case 54: return offsetof(us_slot, first_commit_ns);
	case 55: return offsetof(us_slot, fault_ns);
	case 56: return offsetof(us_slot, heartbeat);
	case 57: return offsetof(us_slot, fail_code);
	case 58: return offsetof(us_slot, lag_max_ns);
	case 59: return offsetof(us_slot, first_push_ns);
	case 60: return offsetof(us_slot, gasp);
	case 61: return offsetof(us_slot, gasp_signo);
	case 62: return offsetof(us_slot, gasp_block);
	case 63: return offsetof(us_slot, gasp_ns);
	case 64: return offsetof(us_slot, death);
	case 65: return offsetof(us_slot, death_gen);
	case 66: return offsetof(us_header, magic);
	case 67: return offsetof(us_header, layout_version);
	case 68: return offsetof(us_header, kernel_abi);
	case 69: return offsetof(us_header, bytes);
	case 70: return offsetof(us_header, kind);
	case 71: return offsetof(us_header, index);
	case 72: return offsetof(us_header, n_lanes);
	case 73: return offsetof(us_header, host_pid);
	case 74: return offsetof(us_chain_entry, name);
	case 75: return offsetof(us_chain_entry, variant);
	case 76: return offsetof(us_chain_entry, n_params);
	case 77: return offsetof(us_chain_entry, state_offset);
	case 78: return offsetof(us_chain_entry, params);
	case 79: return offsetof(us_slot_map, hdr);
	case 80: return offsetof(us_slot_map, slot);
	case 81: return offsetof(us_slot_map, lanes);
	case 82: return offsetof(us_attach_msg, lane);
	case 83: return offsetof(us_attach_msg, epoch);
	case 84: return offsetof(us_block, n_changes);
	case 85: return offsetof(us_block, changes);
	}
	return (size_t)-1;
}

// The C rule for a lane's geometry, for layout_test.go to compare with the
// Go one (setGeometry).
static us_lane_cfg us_geometry(uint32_t channels, uint32_t frames, uint32_t state_bytes) {
	us_lane_cfg c = {0};
	c.channels = channels;
	c.frames = frames;
	c.state_bytes = state_bytes;
	us_lane_geometry(&c);
	return c;
}
*/
import "C"

func cLayout(i int) uintptr { return uintptr(C.us_layout(C.int(i))) }

func cGeometry(channels, frames, stateBytes int) laneCfg {
	return laneCfg(C.us_geometry(C.uint32_t(channels), C.uint32_t(frames), C.uint32_t(stateBytes)))
}
