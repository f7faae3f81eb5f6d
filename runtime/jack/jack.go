// Package jack runs an audio clock (runtime/audioclock) from a JACK server's
// process callback: understudy as a JACK client. The callback is C
// (us_jack.c) and never calls into Go; per JACK period it moves one block per
// lane from the input ports into the lane and one block, the clock's latency
// older, out to the output ports, or the fallback on an xrun.
//
// libjack.so.0 is loaded at run time (dlopen), so programs using this package
// build without JACK headers and run without JACK installed; Open then says
// how to install it.
//
// A session, in order:
//
//	sup, _ := supervisor.New(...)                    // lanes; workers below RTPriority, monitor above
//	clk, _ := audioclock.New(audioclock.Config{...}) // the lanes' block and latency; never Started
//	sup.Start(clk)
//	cli, _ := jack.Open(jack.Config{Clock: clk, ConnectInputs: []string{"system:capture_"}})
//	cli.Activate()                                   // period 0 is the first callback
//	for cli.Err() == nil { ... }                     // ErrShutdown when the server dies
//	cli.Close(); sup.Close(); clk.Free()
//
// The server's period must be a multiple of the block, at most latency
// blocks long; the added latency, latency × block frames, is what the ports'
// latency ranges report. The callback thread runs at whatever priority JACK
// gives it (RTPriority): workers belong below it, the monitor above it, or a
// hung worker starves the server.
//
// Lifetimes: the clock handed to Open must not be Started and must outlive
// the client: Close (which deactivates the client before it returns, so no
// callback reads the clock after) comes before the clock's Free.
package jack

/*
#cgo CFLAGS: -I${SRCDIR}/../../csrc -O2 -std=gnu11
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "us_jack.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/understudy-rt/understudy/runtime/audioclock"
)

// DefaultLibrary is the library Open loads unless Config.Library says otherwise.
const DefaultLibrary = "libjack.so.0"

// Errors Open and Err return; test with errors.Is. Each *Error names the fix.
var (
	ErrNoLibrary  = errors.New("libjack.so.0 not found")
	ErrNoServer   = errors.New("no JACK server running")
	ErrName       = errors.New("JACK client name in use")
	ErrRate       = errors.New("JACK sample rate differs from the lanes'")
	ErrBlockSize  = errors.New("JACK period does not fit the lanes' block")
	ErrShutdown   = errors.New("JACK server shut the client down")
	ErrConnect    = errors.New("JACK auto-connection failed")
	ErrClientOpen = errors.New("JACK client could not open")
)

// Error is a failure of the JACK side, with what to do about it.
type Error struct {
	Err    error  // one of the Err* values above
	Detail string // what happened
	Fix    string // what the user can do, or ""
}

func (e *Error) Error() string {
	s := e.Err.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Fix != "" {
		s += ": " + e.Fix
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Config describes a client.
type Config struct {
	Name   string            // client name; "" is "understudy"
	Server string            // server name; "" is $JACK_DEFAULT_SERVER, else JACK's default
	Clock  *audioclock.Clock // its lanes, block and latency; never Started
	// ConnectInputs are JACK port patterns (regular expressions, as
	// jack_get_ports takes them) whose audio outputs are connected one to
	// one, in order, to the lanes' inputs (lane 0's channels, then lane
	// 1's...); each pattern's matches continue where the previous pattern's
	// ended. ConnectOutputs likewise for audio inputs fed by the lanes'
	// outputs. Connected on Activate; a pattern that matches nothing is an
	// error.
	ConnectInputs, ConnectOutputs []string
	Library                       string // "" is DefaultLibrary
}

var (
	libOnce sync.Once
	libErr  error
	libPath string
)

func loadLibrary(path string) error {
	libOnce.Do(func() {
		libPath = path
		cpath := C.CString(path)
		defer C.free(unsafe.Pointer(cpath))
		var buf [512]C.char
		if C.us_jack_lib(cpath, &buf[0], C.size_t(len(buf))) != 0 {
			libErr = &Error{Err: ErrNoLibrary, Detail: C.GoString(&buf[0]), Fix: "apt-get install libjack-jackd2-0 (or jackd2)"}
		}
	})
	if libErr == nil && path != libPath {
		return fmt.Errorf("jack: %s already loaded, cannot also load %s", libPath, path)
	}
	return libErr
}

// Client is understudy's JACK client.
type Client struct {
	mu        sync.Mutex
	j         *C.us_jack // C memory: freed by Close after the client is closed
	clk       *audioclock.Clock
	cfg       Config
	active    bool
	closed    bool
	bufSize   int
	rate      int
	frames    int
	latency   int
	name      string
	hasLatRng bool
	final     Stats              // the counters as Close left them
	finalHist *CallbackHistogram // likewise
}

// Open connects to the server (never starting one), registers one input and
// one output port per lane channel (laneL_in_C, laneL_out_C, C from 1), and
// checks that the server's rate is the lanes' and its period a multiple of
// the block no longer than the latency. It does not activate.
func Open(cfg Config) (*Client, error) {
	if cfg.Clock == nil {
		return nil, errors.New("jack: Config.Clock is nil")
	}
	if cfg.Name == "" {
		cfg.Name = "understudy"
	}
	lib := cfg.Library
	if lib == "" {
		lib = DefaultLibrary
	}
	if err := loadLibrary(lib); err != nil {
		return nil, err
	}
	cname := C.CString(cfg.Name)
	defer C.free(unsafe.Pointer(cname))
	var cserver *C.char
	if cfg.Server != "" {
		cserver = C.CString(cfg.Server)
		defer C.free(unsafe.Pointer(cserver))
	}
	var status C.int
	var msg [256]C.char
	client := C.us_jack_client(cname, cserver, &status, &msg[0], C.size_t(len(msg)))
	if client == nil {
		return nil, openError(cfg, int(status), C.GoString(&msg[0]))
	}
	j := C.us_jack_alloc()
	if j == nil {
		jc := &C.us_jack{client: client}
		C.us_jack_close(jc, 0)
		return nil, errors.New("jack: out of memory")
	}
	c := &Client{j: j, clk: cfg.Clock, cfg: cfg}
	// The clock stops its driver as it would join its own thread: the
	// supervisor's Close (through the region) or the clock's Free close
	// this client first, whatever order the caller closes things in.
	d, err := cfg.Clock.External(func() { c.Close() })
	if err != nil {
		jc := &C.us_jack{client: client}
		C.us_jack_close(jc, 0)
		C.us_jack_free(j)
		return nil, fmt.Errorf("jack: %w", err)
	}
	j.clk = (*C.us_clock)(d.State)
	j.prepare = C.us_clock_prepare_fn(d.Prepare)
	j.period = C.us_clock_period_fn(d.Period)
	j.client = client
	fail := func(err error) (*Client, error) {
		c.Close()
		return nil, err
	}
	var ebuf [256]C.char
	if C.us_jack_setup(j, &ebuf[0], C.size_t(len(ebuf))) != 0 {
		return fail(&Error{Err: ErrClientOpen, Detail: C.GoString(&ebuf[0])})
	}
	c.name = C.GoString(C.us_jack_client_name(j))
	c.bufSize = int(C.us_jack_buffer_size(j))
	c.rate = int(C.us_jack_sample_rate(j))
	c.frames = int(j.frames)
	c.latency = int(j.latency)
	c.hasLatRng = C.us_jack_has_latency() != 0
	if c.rate != int(j.rate) {
		return fail(&Error{Err: ErrRate, Detail: fmt.Sprintf("server %d Hz, lanes %d Hz", c.rate, int(j.rate)),
			Fix: fmt.Sprintf("run the lanes at %d Hz or restart the server with -r %d", c.rate, int(j.rate))})
	}
	if err := c.fits(c.bufSize); err != nil {
		return fail(err)
	}
	return c, nil
}

func openError(cfg Config, status int, msg string) error {
	server := cfg.Server
	if server == "" {
		server = os.Getenv("JACK_DEFAULT_SERVER")
	}
	if server == "" {
		server = "default"
	}
	detail := fmt.Sprintf("server %q, status 0x%x", server, status)
	if msg != "" {
		detail += " (" + msg + ")"
	}
	switch {
	case status&C.US_JACK_NAME_NOT_UNIQUE != 0:
		return &Error{Err: ErrName, Detail: fmt.Sprintf("%q on server %q", cfg.Name, server), Fix: "choose another client name"}
	case status&(C.US_JACK_SERVER_FAILED|C.US_JACK_SERVER_ERROR) != 0:
		return &Error{Err: ErrNoServer, Detail: fmt.Sprintf("server %q", server),
			Fix: "start one first (e.g. jackd -d dummy -r 48000 -p 64, or jackd -d alsa), or set JACK_DEFAULT_SERVER"}
	}
	return &Error{Err: ErrClientOpen, Detail: detail}
}

// fits says whether a server period of n frames suits the lanes.
func (c *Client) fits(n int) error {
	switch {
	case n%c.frames != 0:
		return &Error{Err: ErrBlockSize, Detail: fmt.Sprintf("server period %d frames, block %d frames", n, c.frames),
			Fix: "use a block that divides the period (jackd -p sets the period)"}
	case n/c.frames > c.latency:
		return &Error{Err: ErrBlockSize, Detail: fmt.Sprintf("server period %d frames is %d blocks of %d, latency only %d", n, n/c.frames, c.frames, c.latency),
			Fix: fmt.Sprintf("raise the latency to at least %d blocks", n/c.frames)}
	}
	return nil
}

// Activate starts the callbacks (the clock's period 0 is the first
// callback) and makes the configured connections.
func (c *Client) Activate() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.active {
		return errors.New("jack: Activate on a closed or active client")
	}
	if rc := C.us_jack_activate(c.j); rc != 0 {
		return &Error{Err: ErrClientOpen, Detail: fmt.Sprintf("jack_activate returned %d", int(rc))}
	}
	c.active = true
	for _, in := range []bool{true, false} {
		pats := c.cfg.ConnectOutputs
		if in {
			pats = c.cfg.ConnectInputs
		}
		next := 0 // our next port: each pattern's matches continue where the last one's ended
		for _, p := range pats {
			cp := C.CString(p)
			var ebuf [256]C.char
			rc := C.us_jack_connect_pattern(c.j, cp, boolInt(in), C.uint32_t(next), &ebuf[0], C.size_t(len(ebuf)))
			C.free(unsafe.Pointer(cp))
			if rc < 0 {
				return &Error{Err: ErrConnect, Detail: C.GoString(&ebuf[0]), Fix: "check the pattern against jack_lsp"}
			}
			next += int(rc)
		}
	}
	return nil
}

// Close deactivates and closes the client, then marks the clock ended
// (audioclock.Clock.EndExternal). No callback runs once it returns. It is
// idempotent and safe after the server died.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var err error
	if c.j.client != nil {
		if rc := C.us_jack_close(c.j, boolInt(c.active)); rc != 0 && !c.shutdown() {
			err = fmt.Errorf("jack: closing the client: error %d", int(rc))
		}
	}
	if c.active {
		c.clk.EndExternal()
	}
	c.active = false
	c.final = c.stats()
	c.finalHist = c.callbackTimes()
	C.us_jack_free(c.j)
	c.j = nil
	return err
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func (c *Client) shutdown() bool { return ld32(&c.j.shutdown) != 0 }

// Err is nil while the client runs as it should; after the server shut it
// down it is ErrShutdown with the server's reason, and after the server
// handed it a period the lanes cannot take (a buffer-size change) it is
// ErrBlockSize. Cheap: poll it.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.j == nil {
		return nil
	}
	if c.shutdown() {
		return &Error{Err: ErrShutdown, Detail: C.GoString(&c.j.shutdown_reason[0]), Fix: "restart the server, then understudy"}
	}
	if ld64(&c.j.refused) != 0 {
		n := int(ld32(&c.j.refused_nframes))
		if err := c.fits(n); err != nil {
			return err
		}
	}
	return nil
}

// Name is the client's name as the server knows it.
func (c *Client) Name() string { return c.name }

// SampleRate and BufferSize are the server's, as of Open.
func (c *Client) SampleRate() int { return c.rate }
func (c *Client) BufferSize() int { return c.bufSize }

// LatencyFrames is the latency the client adds and reports to JACK.
func (c *Client) LatencyFrames() int { return c.latency * c.frames }

// ReportsLatency says whether this libjack has latency ranges, so that
// jack_lsp -l shows LatencyFrames on the ports.
func (c *Client) ReportsLatency() bool { return c.hasLatRng }

// Port is the full name of lane l's channel ch (from 0) port; "" after Close.
func (c *Client) Port(output bool, l, ch int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.j == nil || c.j.client == nil || l < 0 || l >= int(c.j.n_lanes) || ch < 0 || ch >= int(c.j.channels[l]) {
		return ""
	}
	return C.GoString(C.us_jack_port_name(c.j, boolInt(output), C.uint32_t(l), C.uint32_t(ch)))
}

// CPULoad is JACK's DSP load, in percent, for the whole graph.
func (c *Client) CPULoad() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.j == nil || c.j.client == nil {
		return 0
	}
	return float64(C.us_jack_cpu_load(c.j))
}

// RTPriority is the SCHED_FIFO priority JACK runs the callback at, 0 when not
// real-time. Workers belong below it, the monitor above.
func (c *Client) RTPriority() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.j == nil || c.j.client == nil {
		return 0
	}
	return int(C.us_jack_rt_priority(c.j))
}

// Stats are the callbacks' counters.
type Stats struct {
	Callbacks       uint64        // callbacks that ran the clock
	Blocks          uint64        // clock periods run
	Refused         uint64        // callbacks that played silence (period unfit for the lanes)
	Discontinuities uint64        // callbacks after a cycle the client missed
	ServerXruns     uint64        // xruns the server reported
	CallbackMax     time.Duration // longest callback
	Started         bool          // the first callback has run
	FirstFrame      uint32        // JACK frame time of block 0, when Started
	// Gaps are the first cycles the client missed (at most 64): with them
	// a frame time maps to a stream position exactly (see Timing).
	Gaps           []Gap
	Shutdown       bool
	ShutdownReason string
}

// Stats reads the counters; after Close, their final values.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats()
}

func (c *Client) stats() Stats {
	j := c.j
	if j == nil {
		return c.final
	}
	s := Stats{
		Callbacks: ld64(&j.callbacks), Blocks: ld64(&j.blocks), Refused: ld64(&j.refused),
		Discontinuities: ld64(&j.discontinuities), ServerXruns: ld64(&j.server_xruns),
		CallbackMax: time.Duration(ld64(&j.cb_max_ns)),
	}
	for i := 0; i < int(min(s.Discontinuities, C.US_JACK_GAPS)); i++ {
		s.Gaps = append(s.Gaps, Gap{Frame: uint32(j.gap_frame[i]), Skip: int64(j.gap_skip[i]), Pos: uint64(j.gap_pos[i])})
	}
	if ld32(&j.started_pub) != 0 {
		s.Started = true
		s.FirstFrame = ld32(&j.first_frame_pub)
	}
	if c.shutdown() {
		s.Shutdown = true
		s.ShutdownReason = C.GoString(&j.shutdown_reason[0])
	}
	return s
}

// Gap is a run of JACK cycles the client was not called for.
type Gap struct {
	Frame uint32 // the first frame time missed
	Skip  int64  // frames skipped
	Pos   uint64 // the stream position (frames since block 0) resumed at
}

// Complete says whether Gaps holds every discontinuity.
func (s Stats) Complete() bool { return uint64(len(s.Gaps)) == s.Discontinuities }

// InputFrame is the JACK frame time at which stream position pos (frames
// since block 0) came in from the input ports.
func (s Stats) InputFrame(pos uint64) uint32 {
	t := s.FirstFrame + uint32(pos)
	for _, g := range s.Gaps {
		if g.Pos <= pos {
			t += uint32(g.Skip)
		}
	}
	return t
}

// OutputPos is the stream position played on the output ports at JACK frame
// time t, given the latency in frames; ok is false when the client was not
// called for t or t is before block 0 came through.
func (s Stats) OutputPos(t uint32, latencyFrames int) (pos uint64, ok bool) {
	raw, skipped := int64(int32(t-s.FirstFrame)), int64(0)
	for _, g := range s.Gaps {
		gd := int64(int32(g.Frame - s.FirstFrame))
		if raw >= gd+g.Skip {
			skipped += g.Skip
		} else if raw >= gd {
			return 0, false
		}
	}
	d := raw - skipped - int64(latencyFrames)
	if d < 0 {
		return 0, false
	}
	return uint64(d), true
}

// CallbackHistogram is the distribution of callback durations.
type CallbackHistogram struct {
	Counts [C.US_JACK_HIST]uint64
}

// CallbackTimes copies the callback-duration histogram; after Close, its
// final state.
func (c *Client) CallbackTimes() *CallbackHistogram {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.callbackTimes()
}

func (c *Client) callbackTimes() *CallbackHistogram {
	if c.j == nil {
		if c.finalHist != nil {
			return c.finalHist
		}
		return &CallbackHistogram{}
	}
	h := &CallbackHistogram{}
	for i := range h.Counts {
		h.Counts[i] = ld64(&c.j.cb_hist[i])
	}
	return h
}

// upper is the exclusive upper bound of bucket i.
func upper(i int) time.Duration {
	switch {
	case i < C.US_JACK_HIST_FINE:
		return time.Duration(i+1) * 100
	case i < C.US_JACK_HIST_FINE+C.US_JACK_HIST_COARSE:
		return 100*time.Microsecond + time.Duration(i-C.US_JACK_HIST_FINE+1)*10*time.Microsecond
	}
	return time.Duration(math.MaxInt64)
}

// Quantile is the upper bound of the bucket holding quantile q (0..1): the
// duration no more than a fraction 1-q of callbacks exceeded, to the
// bucket's resolution (100 ns below 100 µs, 10 µs above).
func (h *CallbackHistogram) Quantile(q float64) time.Duration {
	var n uint64
	for _, v := range h.Counts {
		n += v
	}
	if n == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(n)))
	if want < 1 {
		want = 1
	}
	var acc uint64
	for i, v := range h.Counts {
		acc += v
		if acc >= want {
			return upper(i)
		}
	}
	return upper(len(h.Counts) - 1)
}

// Total is the number of callbacks counted.
func (h *CallbackHistogram) Total() uint64 {
	var n uint64
	for _, v := range h.Counts {
		n += v
	}
	return n
}

func ld64(p *C.uint64_t) uint64 { return atomic.LoadUint64((*uint64)(unsafe.Pointer(p))) }
func ld32(p *C.uint32_t) uint32 { return atomic.LoadUint32((*uint32)(unsafe.Pointer(p))) }
