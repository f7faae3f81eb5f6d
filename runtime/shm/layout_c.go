package shm

/*
#include <stddef.h>
#include "us_region.h"

// The C compiler's view of the layout, for layout_test.go to compare with
// cgo's translation that the Go code uses.
static size_t us_layout(int i) {
	switch (i) {
	case 0: return sizeof(us_region);
	case 1: return sizeof(us_header);
	case 2: return sizeof(us_slot);
	case 3: return sizeof(us_lane);
	case 4: return sizeof(us_ring_ctl);
	case 5: return sizeof(us_block);
	case 6: return offsetof(us_region, slots);
	case 7: return offsetof(us_region, lanes);
	case 8: return offsetof(us_ring_ctl, write);
	case 9: return offsetof(us_ring_ctl, write_waiters);
	case 10: return offsetof(us_ring_ctl, read);
	case 11: return offsetof(us_ring_ctl, read_waiters);
	case 12: return offsetof(us_block, block);
	case 13: return offsetof(us_block, t_push_ns);
	case 14: return offsetof(us_block, frames);
	case 15: return offsetof(us_block, flags);
	case 16: return offsetof(us_block, data);
	case 17: return offsetof(us_lane, channels);
	case 18: return offsetof(us_lane, frames);
	case 19: return offsetof(us_lane, rate);
	case 20: return offsetof(us_lane, chain_len);
	case 21: return offsetof(us_lane, state_bytes);
	case 22: return offsetof(us_lane, chain);
	case 23: return offsetof(us_lane, owner_epoch);
	case 24: return offsetof(us_lane, owner_slot);
	case 25: return offsetof(us_lane, bypass_block);
	case 26: return offsetof(us_lane, commit_block);
	case 27: return offsetof(us_lane, commit_ns);
	case 28: return offsetof(us_lane, commits);
	case 29: return offsetof(us_lane, in);
	case 30: return offsetof(us_lane, out);
	case 31: return offsetof(us_lane, state);
	case 32: return offsetof(us_lane, in_blocks);
	case 33: return offsetof(us_lane, out_blocks);
	case 34: return offsetof(us_slot, cmd_seq);
	case 35: return offsetof(us_slot, cmd);
	case 36: return offsetof(us_slot, cmd_lane);
	case 37: return offsetof(us_slot, generation);
	case 38: return offsetof(us_slot, cmd_epoch);
	case 39: return offsetof(us_slot, fault_kind);
	case 40: return offsetof(us_slot, fault_block);
	case 41: return offsetof(us_slot, status);
	case 42: return offsetof(us_slot, pid);
	case 43: return offsetof(us_slot, ready_ns);
	case 44: return offsetof(us_slot, attach_ns);
	case 45: return offsetof(us_slot, first_commit_ns);
	case 46: return offsetof(us_slot, fault_ns);
	case 47: return offsetof(us_slot, heartbeat);
	case 48: return offsetof(us_slot, fail_code);
	case 49: return offsetof(us_slot, gasp);
	case 50: return offsetof(us_slot, gasp_signo);
	case 51: return offsetof(us_slot, gasp_block);
	case 52: return offsetof(us_slot, gasp_ns);
	case 53: return offsetof(us_header, magic);
	case 54: return offsetof(us_header, layout_version);
	case 55: return offsetof(us_header, kernel_abi);
	case 56: return offsetof(us_header, region_bytes);
	case 57: return offsetof(us_header, n_lanes);
	case 58: return offsetof(us_header, n_slots);
	case 59: return offsetof(us_header, lanes_offset);
	case 60: return offsetof(us_header, slots_offset);
	case 61: return offsetof(us_header, lane_stride);
	case 62: return offsetof(us_header, slot_stride);
	case 63: return offsetof(us_header, host_pid);
	case 64: return sizeof(us_chain_entry);
	case 65: return offsetof(us_chain_entry, n_params);
	case 66: return offsetof(us_chain_entry, state_offset);
	case 67: return offsetof(us_chain_entry, params);
	case 68: return offsetof(us_slot, lag_max_ns);
	case 69: return offsetof(us_slot, first_push_ns);
	case 70: return offsetof(us_chain_entry, variant);
	case 71: return offsetof(us_slot, death);
	case 72: return offsetof(us_slot, death_gen);
	}
	return (size_t)-1;
}
*/
import "C"

func cLayout(i int) uintptr { return uintptr(C.us_layout(C.int(i))) }
