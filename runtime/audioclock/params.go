package audioclock

/*
#include "us_clock.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/understudy-rt/understudy/runtime/shm"
)

// ParamLead is how many blocks after the one the clock pushes next a live
// parameter change is scheduled: room for the request to reach the C thread
// without a lock, so that the block SetParam names is the block it gets.
const ParamLead = 2

// ParamQueue is how many changes a lane holds that the clock has not yet
// stamped into an input block.
const ParamQueue = C.US_PARAM_QUEUE

// ErrStopped is returned by SetParam when the clock ended before it could
// say which block a late change went into.
var ErrStopped = errors.New("audioclock: the clock stopped before the change reached a block")

// paramSlot is the last block SetParam scheduled a lane's changes at, and
// how many it put there (a block carries shm.BlockChanges).
type paramSlot struct {
	block uint64
	n     int
}

// paramAnswerWait bounds how long SetParam waits for the clock to say where
// a late change went: input that cannot reach its lane (an owner that never
// frees the ring) keeps it queued that long and more.
const paramAnswerWait = 500 * time.Millisecond

// SetParam asks for parameter param of kernel (indices in the lane's chain
// and in the kernel's schema; the caller validated the value, see
// chain.Live) to become value on lane, and returns the input block it
// applies from. The clock stamps the change into that block's header, so
// the lane's owner, and a spare that re-reads the block after a failover,
// apply it before processing that block (docs/design.md, "Live
// parameters"). Normally the block is ParamLead after the one the clock
// pushes next, or later when earlier changes fill a block; when this
// goroutine was held up past that block, the clock stamps the change into
// the next block it pushes, and SetParam waits (a period or so) to return
// that one. Safe from any goroutine; the C thread takes no lock for it.
func (k *Clock) SetParam(lane, kernel, param int, value float32) (uint64, error) {
	k.paramMu.Lock()
	defer k.paramMu.Unlock()
	k.memMu.RLock()
	defer k.memMu.RUnlock()
	switch {
	case k.c == nil:
		return 0, ErrFreed
	case lane < 0 || lane >= len(k.cfg.Lanes):
		return 0, fmt.Errorf("audioclock: lane %d, the clock drives 0..%d", lane, len(k.cfg.Lanes)-1)
	case kernel < 0 || kernel >= shm.MaxChain || param < 0 || param >= shm.MaxParams:
		return 0, fmt.Errorf("audioclock: kernel %d parameter %d names nothing a chain can hold", kernel, param)
	}
	cl := &k.c.lanes[lane]
	w, r := ld64(&cl.pq_write), ld64(&cl.pq_read)
	if w-r >= ParamQueue {
		return 0, fmt.Errorf("audioclock: lane %d has %d parameter changes waiting for the clock already; send fewer", lane, w-r)
	}
	ps := &k.paramAt[lane]
	at := ld64(&k.c.period) + ParamLead
	if at < ps.block {
		at = ps.block
	}
	if at == ps.block && ps.n >= shm.BlockChanges {
		at++
	}
	if at != ps.block {
		ps.block, ps.n = at, 0
	}
	ps.n++
	q := &cl.pq[w&(ParamQueue-1)]
	q.at_block = C.uint64_t(at)
	q.c = C.us_param_change{kernel: C.uint8_t(kernel), param: C.uint8_t(param), value: C.float(value)}
	// Sequentially consistent, as the clock's fence at the start of a
	// period: if the clock has not completed the period before block `at`
	// now, it will see the request when it pushes `at`.
	st64(&cl.pq_write, w+1)
	if ld64(&k.c.period) < at {
		return at, nil
	}
	deadline := time.Now().Add(paramAnswerWait)
	for ld64(&cl.pq_read) <= w {
		if atomic.LoadUint32((*uint32)(unsafe.Pointer(&k.c.running))) == 0 {
			return 0, ErrStopped
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("audioclock: lane %d: no input block reached the lane for %v; the change applies with the first that does", lane, paramAnswerWait)
		}
		time.Sleep(100 * time.Microsecond)
	}
	got := ld64(&cl.pq_applied[w&(ParamQueue-1)])
	// The clock may have filled that block with changes that were also
	// late: the next change goes to a later one.
	if got >= ps.block {
		ps.block, ps.n = got, shm.BlockChanges
	}
	return got, nil
}

// ParamsLate is how many of a lane's changes the clock stamped after the
// block they were scheduled at (0 after Free).
func (k *Clock) ParamsLate(lane int) uint64 {
	k.memMu.RLock()
	defer k.memMu.RUnlock()
	if k.c == nil || lane < 0 || lane >= len(k.cfg.Lanes) {
		return 0
	}
	return ld64(&k.c.lanes[lane].param_late)
}

func st64(p *C.uint64_t, v uint64) { atomic.StoreUint64((*uint64)(unsafe.Pointer(p)), v) }
