package rt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// cpuLatencyPath is the kernel's PM QoS interface for the whole system's CPU
// wake-up latency (Documentation/power/pm_qos_interface.rst). A request
// stands while its file stays open.
const cpuLatencyPath = "/dev/cpu_dma_latency"

// ErrNoPMQoS means the kernel offers no CPU latency PM QoS file: it was built
// without CONFIG_CPU_IDLE's PM QoS (present in every kernel since 2.6.25 that
// has it configured), or /dev is not devtmpfs.
var ErrNoPMQoS = errors.New("no " + cpuLatencyPath + ": this kernel has no CPU latency PM QoS")

// WakeLatencyHold is a standing request that no CPU enter an idle state it
// takes longer than the requested latency to leave.
type WakeLatencyHold struct {
	once sync.Once
	f    *os.File
}

// HoldWakeLatency asks that every CPU wake within us microseconds, until
// Release. At 0 the CPUs idle by polling rather than halting. On a virtual
// machine this is what keeps a sleeping real-time thread's vCPU from being
// descheduled by the host on every idle period, a wake-up cost measured here
// in milliseconds (see README). The price is CPU time and power: idle CPUs
// spin. Needs root (the file is root's, mode 0600): a *PrivilegeError names
// what to grant; ErrNoPMQoS where the kernel has no such file.
func HoldWakeLatency(us int32) (*WakeLatencyHold, error) {
	if us < 0 {
		return nil, fmt.Errorf("rt: wake latency %d µs: must be 0 or more", us)
	}
	f, err := os.OpenFile(cpuLatencyPath, os.O_WRONLY, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, ErrNoPMQoS
	case errors.Is(err, fs.ErrPermission):
		return nil, &PrivilegeError{Op: "hold the CPU wake-up latency", Need: "root (" + cpuLatencyPath + " is root's, mode 0600)", Fix: "run as root", Err: err}
	case err != nil:
		return nil, fmt.Errorf("rt: open %s: %w", cpuLatencyPath, err)
	}
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(us))
	if _, err := f.Write(b[:]); err != nil {
		f.Close()
		return nil, fmt.Errorf("rt: request %d µs on %s: %w", us, cpuLatencyPath, err)
	}
	return &WakeLatencyHold{f: f}, nil
}

// Release ends the request; safe to call more than once, or on nil.
func (h *WakeLatencyHold) Release() error {
	if h == nil {
		return nil
	}
	var err error
	h.once.Do(func() { err = h.f.Close() })
	return err
}

// CurrentWakeLatency reads the system's effective CPU latency request in µs
// (the strictest one standing; 2000000000 means none).
func CurrentWakeLatency() (int32, error) {
	b, err := os.ReadFile(cpuLatencyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, ErrNoPMQoS
	}
	if err != nil {
		return 0, err
	}
	if len(b) < 4 {
		return 0, fmt.Errorf("rt: %s gave %d bytes, want 4", cpuLatencyPath, len(b))
	}
	return int32(binary.NativeEndian.Uint32(b[:4])), nil
}
