package audioclock

/*
#include "us_clock.h"
*/
import "C"

import (
	"errors"
	"sync/atomic"
	"unsafe"
)

// Driver is what an external driver of a clock (an audio server's process
// callback, in C) needs to run its periods in place of the clock's own
// thread: the clock's C state and the two C functions of csrc/us_clock.h,
// as pointers, because another package's C cannot link against this one's.
//
//	Prepare: void us_clock_prepare(us_clock *, uint64_t start_ns)
//	Period:  void us_clock_period(us_clock *, uint64_t due_ns, uint64_t now_ns, const us_clock_ext *)
//
// The pointers stay valid until Free. A clock handed to a driver must never
// be Started, and the driver must have stopped calling Period before Free.
type Driver struct {
	State   unsafe.Pointer // *us_clock
	Prepare unsafe.Pointer
	Period  unsafe.Pointer
}

// External hands the clock to an external driver; see Driver. stop must
// stop the driver for good (no Period call after it returns) and be safe to
// call more than once: the clock calls it from Join, and so from Free and
// from its lanes' region closing, as it would join its own thread.
func (k *Clock) External(stop func()) (Driver, error) {
	k.life.Lock()
	defer k.life.Unlock()
	switch {
	case k.freed:
		return Driver{}, ErrFreed
	case k.started || k.driverStop != nil:
		return Driver{}, errors.New("audioclock: already running, or handed to a driver")
	}
	k.driverStop = stop
	return Driver{
		State:   unsafe.Pointer(k.c),
		Prepare: unsafe.Pointer(C.us_clock_prepare),
		Period:  unsafe.Pointer(C.us_clock_period),
	}, nil
}

// EndExternal marks an externally driven clock as finished, as the end of
// its thread marks a timer-driven one: Running reports false from now on.
// The driver calls it once it has stopped calling Period for good.
func (k *Clock) EndExternal() {
	k.memMu.RLock()
	defer k.memMu.RUnlock()
	if k.c != nil {
		atomic.StoreUint32((*uint32)(unsafe.Pointer(&k.c.running)), 0)
	}
}
