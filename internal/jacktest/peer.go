// Package jacktest gives the JACK tests a real server and real peers: a
// uniquely named `jackd -d dummy` started and always stopped per test, a
// player whose output is a known function of JACK's frame time, and a
// recorder that keeps what it hears with the frame time it heard it at.
package jacktest

/*
#cgo CFLAGS: -O2 -std=gnu11
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "us_jacktest.h"
*/
import "C"

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"
)

// Signal is what a Player plays on channel ch at JACK frame time t.
func Signal(ch int, t uint32) float32 { return float32(C.ust_signal(C.uint32_t(ch), C.uint32_t(t))) }

// Peer is a player or a recorder client. Its C state is C memory.
type Peer struct {
	p *C.ust_peer
}

var peers atomic.Int64

// UniqueName makes a client name no client of this process used before:
// libjack (1.9.21) refuses a name a closed client of the same process had,
// even on another server.
func UniqueName(prefix string) string {
	return fmt.Sprintf("%s%d_%d", prefix, os.Getpid(), peers.Add(1))
}

func open(server, name string, play bool, channels, capFrames int) (*Peer, error) {
	if channels < 1 || channels > 8 {
		return nil, fmt.Errorf("jacktest: %d channels", channels)
	}
	p := (*C.ust_peer)(C.calloc(1, C.size_t(unsafe.Sizeof(C.ust_peer{}))))
	if play {
		p.play = 1
	}
	p.nports = C.uint32_t(channels)
	p.cap = C.uint64_t(capFrames)
	cname, cserver := C.CString(name), C.CString(server)
	defer C.free(unsafe.Pointer(cname))
	defer C.free(unsafe.Pointer(cserver))
	var ebuf [256]C.char
	if C.ust_open(p, cname, cserver, &ebuf[0], C.size_t(len(ebuf))) != 0 {
		C.ust_close(p)
		C.ust_free(p)
		C.free(unsafe.Pointer(p))
		return nil, fmt.Errorf("jacktest: %s", C.GoString(&ebuf[0]))
	}
	return &Peer{p: p}, nil
}

// NewPlayer opens and activates a player with ports out_1..out_N.
func NewPlayer(server, name string, channels int) (*Peer, error) {
	return open(server, name, true, channels, 0)
}

// NewRecorder opens and activates a recorder with ports in_1..in_N that keeps
// up to capFrames frames from its first cycle on.
func NewRecorder(server, name string, channels, capFrames int) (*Peer, error) {
	return open(server, name, false, channels, capFrames)
}

// Port is the full name of channel ch's port (from 0).
func (p *Peer) Port(ch int) string { return C.GoString(C.ust_port_name(p.p, C.uint32_t(ch))) }

// Connect connects two ports by full name.
func (p *Peer) Connect(src, dst string) error {
	cs, cd := C.CString(src), C.CString(dst)
	defer C.free(unsafe.Pointer(cs))
	defer C.free(unsafe.Pointer(cd))
	if rc := C.ust_connect(p.p, cs, cd); rc != 0 {
		return fmt.Errorf("jacktest: connect %s -> %s: %d", src, dst, int(rc))
	}
	return nil
}

// Frames is how many frames a recorder has kept so far.
func (p *Peer) Frames() int {
	return int(atomic.LoadUint64((*uint64)(unsafe.Pointer(&p.p.pos))))
}

// PortLatency reads a port's latency range as JACK computed it.
func (p *Peer) PortLatency(port string, playback bool) (min, max uint32, err error) {
	cp := C.CString(port)
	defer C.free(unsafe.Pointer(cp))
	pb := C.int(0)
	if playback {
		pb = 1
	}
	var lo, hi C.uint32_t
	if C.ust_port_latency(p.p, cp, pb, &lo, &hi) != 0 {
		return 0, 0, fmt.Errorf("jacktest: no latency for %s", port)
	}
	return uint32(lo), uint32(hi), nil
}

// Recording is what a recorder kept, after Close.
type Recording struct {
	FirstFrame uint32      // JACK frame time of Data[c][0]
	Gaps       uint64      // runs of cycles it missed
	GapPos     []int       // Data index after each of the first 64 runs
	GapSkip    []int64     // frames each skipped
	Data       [][]float32 // per channel
}

// FrameAt is the JACK frame time Data[c][i] was heard at; ok is false past
// the 64 gaps recorded.
func (r *Recording) FrameAt(i int) (t uint32, ok bool) {
	if r.Gaps > uint64(len(r.GapPos)) && i >= r.GapPos[len(r.GapPos)-1] {
		return 0, false
	}
	t = r.FirstFrame + uint32(i)
	for k, pos := range r.GapPos {
		if pos <= i {
			t += uint32(r.GapSkip[k])
		}
	}
	return t, true
}

// Close deactivates and closes the client and returns what it kept (a
// player: only its gaps). Idempotent.
func (p *Peer) Close() *Recording {
	if p.p == nil {
		return nil
	}
	C.ust_close(p.p)
	var rec *Recording
	{
		rec = &Recording{FirstFrame: uint32(p.p.first_frame), Gaps: uint64(p.p.gaps)}
		for i := 0; i < int(min(rec.Gaps, C.UST_GAPS)); i++ {
			rec.GapPos = append(rec.GapPos, int(p.p.gap_pos[i]))
			rec.GapSkip = append(rec.GapSkip, int64(p.p.gap_skip[i]))
		}
		n := int(p.p.pos)
		for c := 0; c < int(p.p.nports); c++ {
			rec.Data = append(rec.Data, append([]float32(nil), unsafe.Slice((*float32)(unsafe.Pointer(p.p.buf[c])), n)...))
		}
	}
	C.ust_free(p.p)
	C.free(unsafe.Pointer(p.p))
	p.p = nil
	return rec
}

// ClientPriority is the SCHED_FIFO priority the server gives its clients'
// process threads (0: not real-time), asked of a throwaway client.
func ClientPriority(server string) (int, error) {
	cs := C.CString(server)
	defer C.free(unsafe.Pointer(cs))
	var ebuf [256]C.char
	p := C.ust_client_priority(cs, &ebuf[0], C.size_t(len(ebuf)))
	if p < 0 {
		return 0, fmt.Errorf("jacktest: %s", C.GoString(&ebuf[0]))
	}
	return int(p), nil
}
