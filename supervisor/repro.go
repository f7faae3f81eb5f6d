package supervisor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/understudy-rt/understudy/runtime/shm"
)

// A repro file holds one poison block: the lane's chain (kernel names,
// variants, parameters, where each keeps its state), its geometry, the
// input block and the committed state the block started from. `understudy
// replay FILE --worker W` runs it again in W (`W --replay FILE`), outside
// real time and without a sandbox, so that `gdb --args W --replay FILE`
// stops where the kernel crashed. The format is little-endian binary, read
// by csrc/us_replay.c as well as by ParseRepro:
//
//	offset  size  field
//	0       8     magic "USREPRO1"
//	8       4     version (1)
//	12      4     flags: 1 = run the chain's init over the state first
//	16      4     lane
//	20      4     channels
//	24      4     frames per block (the lane's)
//	28      4     frames in this block
//	32      4     rate, Hz
//	36      4     kernels in the chain
//	40      4     state bytes
//	44      4     kernel ABI version
//	48      8     block number
//	56      8     zero
//	64      112   per kernel: name[24] variant[16] (NUL-padded), n_params u32,
//	              state offset u32, params[16] float32
//	then          the block's samples (frames in block x channels float32,
//	              interleaved), then the state bytes
const (
	reproMagic      = "USREPRO1"
	reproVersion    = 1
	reproHeader     = 64
	reproEntry      = 24 + 16 + 4 + 4 + 16*4
	reproFlagInit   = 1
	reproMaxKernels = shm.MaxChain
)

// ReproKernel is one kernel of a repro's chain.
type ReproKernel struct {
	Name        string
	Variant     string
	Params      []float32
	StateOffset int // where its state starts in the chain's state buffer
}

// Repro is a poison block saved for replay.
type Repro struct {
	Lane     int
	Block    uint64
	Channels int
	Frames   int // the lane's frames per block
	Rate     int
	// Init: the chain's init runs over State before the block, as the
	// worker did (the lane's first block, or a re-init after garbage).
	Init  bool
	Chain []ReproKernel
	Input []float32 // the block: len/Channels frames, interleaved
	State []byte    // the committed state the block started from
}

// BlockFrames is how many frames the saved block holds.
func (r *Repro) BlockFrames() int { return len(r.Input) / r.Channels }

// MarshalBinary encodes r in the repro file format.
func (r *Repro) MarshalBinary() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	b := make([]byte, reproHeader+len(r.Chain)*reproEntry, reproHeader+len(r.Chain)*reproEntry+4*len(r.Input)+len(r.State))
	le := binary.LittleEndian
	copy(b, reproMagic)
	le.PutUint32(b[8:], reproVersion)
	var flags uint32
	if r.Init {
		flags |= reproFlagInit
	}
	le.PutUint32(b[12:], flags)
	le.PutUint32(b[16:], uint32(r.Lane))
	le.PutUint32(b[20:], uint32(r.Channels))
	le.PutUint32(b[24:], uint32(r.Frames))
	le.PutUint32(b[28:], uint32(r.BlockFrames()))
	le.PutUint32(b[32:], uint32(r.Rate))
	le.PutUint32(b[36:], uint32(len(r.Chain)))
	le.PutUint32(b[40:], uint32(len(r.State)))
	le.PutUint32(b[44:], shm.KernelABI)
	le.PutUint64(b[48:], r.Block)
	for i, k := range r.Chain {
		e := b[reproHeader+i*reproEntry:]
		copy(e[:shm.KernelNameMax-1], k.Name)
		copy(e[24:24+shm.VariantMax-1], k.Variant)
		le.PutUint32(e[40:], uint32(len(k.Params)))
		le.PutUint32(e[44:], uint32(k.StateOffset))
		for j, p := range k.Params {
			le.PutUint32(e[48+4*j:], math.Float32bits(p))
		}
	}
	for _, v := range r.Input {
		b = le.AppendUint32(b, math.Float32bits(v))
	}
	return append(b, r.State...), nil
}

// check is what every repro must satisfy, written or read.
func (r *Repro) check() error {
	switch {
	case r.Channels < 1 || r.Channels > shm.MaxChannels:
		return fmt.Errorf("%d channels, want 1..%d", r.Channels, shm.MaxChannels)
	case r.Frames < 1 || r.Frames > shm.MaxFrames || r.Frames*r.Channels > shm.SlotSamples:
		return fmt.Errorf("%d frames of %d channels per block: out of range", r.Frames, r.Channels)
	case len(r.Input)%r.Channels != 0 || r.BlockFrames() < 1 || r.BlockFrames() > r.Frames:
		return fmt.Errorf("a block of %d samples for %d channels and %d frames", len(r.Input), r.Channels, r.Frames)
	case r.Rate < 0 || r.Lane < 0 || r.Lane >= shm.MaxLanes:
		return fmt.Errorf("rate %d, lane %d: out of range", r.Rate, r.Lane)
	case len(r.Chain) < 1 || len(r.Chain) > reproMaxKernels:
		return fmt.Errorf("a chain of %d kernels, want 1..%d", len(r.Chain), reproMaxKernels)
	case len(r.State) > shm.StateBytes:
		return fmt.Errorf("%d bytes of state, at most %d", len(r.State), shm.StateBytes)
	}
	for _, k := range r.Chain {
		switch {
		case k.Name == "" || len(k.Name) >= shm.KernelNameMax || len(k.Variant) >= shm.VariantMax:
			return fmt.Errorf("kernel name %q or variant %q of the wrong length", k.Name, k.Variant)
		case len(k.Params) > shm.MaxParams:
			return fmt.Errorf("kernel %s has %d params, at most %d", k.Name, len(k.Params), shm.MaxParams)
		case k.StateOffset < 0 || k.StateOffset > len(r.State):
			return fmt.Errorf("kernel %s's state at %d, past the %d bytes of state", k.Name, k.StateOffset, len(r.State))
		}
	}
	return nil
}

// ParseRepro decodes a repro file; any error means the file is not one.
func ParseRepro(b []byte) (*Repro, error) {
	le := binary.LittleEndian
	if len(b) < reproHeader || string(b[:8]) != reproMagic {
		return nil, errors.New("not an understudy repro file")
	}
	if v := le.Uint32(b[8:]); v != reproVersion {
		return nil, fmt.Errorf("repro format version %d, this understudy reads %d", v, reproVersion)
	}
	if abi := le.Uint32(b[44:]); abi != shm.KernelABI {
		return nil, fmt.Errorf("saved under kernel ABI %d, this understudy speaks %d", abi, shm.KernelABI)
	}
	u := func(off int) int { return int(le.Uint32(b[off:])) }
	r := &Repro{Init: le.Uint32(b[12:])&reproFlagInit != 0, Lane: u(16), Channels: u(20), Frames: u(24), Rate: u(32),
		Block: le.Uint64(b[48:])}
	blockFrames, kernels, state := u(28), u(36), u(40)
	if kernels > reproMaxKernels || state > shm.StateBytes || blockFrames > shm.MaxFrames || r.Channels > shm.MaxChannels {
		return nil, errors.New("a repro header out of range")
	}
	want := reproHeader + kernels*reproEntry + 4*blockFrames*r.Channels + state
	if len(b) != want {
		return nil, fmt.Errorf("%d bytes, its header says %d", len(b), want)
	}
	cstr := func(p []byte) (string, bool) {
		for i, c := range p {
			if c == 0 {
				return string(p[:i]), true
			}
		}
		return "", false
	}
	for i := 0; i < kernels; i++ {
		e := b[reproHeader+i*reproEntry:]
		name, ok1 := cstr(e[:24])
		variant, ok2 := cstr(e[24:40])
		n := int(le.Uint32(e[40:]))
		if !ok1 || !ok2 || n > shm.MaxParams {
			return nil, fmt.Errorf("kernel %d of the chain is malformed", i)
		}
		k := ReproKernel{Name: name, Variant: variant, StateOffset: int(le.Uint32(e[44:]))}
		for j := 0; j < n; j++ {
			k.Params = append(k.Params, math.Float32frombits(le.Uint32(e[48+4*j:])))
		}
		r.Chain = append(r.Chain, k)
	}
	off := reproHeader + kernels*reproEntry
	r.Input = make([]float32, blockFrames*r.Channels)
	for i := range r.Input {
		r.Input[i] = math.Float32frombits(le.Uint32(b[off+4*i:]))
	}
	r.State = append([]byte(nil), b[off+4*len(r.Input):]...)
	if err := r.check(); err != nil {
		return nil, err
	}
	return r, nil
}

// ReadRepro reads and decodes a repro file.
func ReadRepro(path string) (*Repro, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r, err := ParseRepro(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// WriteFile saves r at path.
func (r *Repro) WriteFile(path string) error {
	b, err := r.MarshalBinary()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// reproCapture holds poison blocks between the monitor, which copies one in
// when it bypasses it, and the control plane, which writes it to a file.
// Its memory is part of the Supervisor, allocated with it: the monitor's
// copy allocates nothing and is bounded by one state buffer and one block.
type reproCapture struct {
	slots   [reproSlots]reproSlot
	dropped atomic.Uint64 // poison blocks not saved: no free slot, or the block had left the ring
}

// reproSlots is how many captured blocks may wait for the control plane at
// once; a poison block is rare, and one that finds no room is not saved.
const reproSlots = 2

type reproSlot struct {
	full   atomic.Uint32 // 0: the monitor may fill it; 1: the control plane's until it stores 0
	lane   int
	block  uint64
	init   bool
	frames int
	stateN int
	state  [shm.StateBytes]byte
	in     [shm.SlotSamples]float32
}

// capture copies lane l's poison block and the committed state it started
// from, before its next owner attaches and overwrites that state. The
// monitor calls it as it bypasses the block; pushed is how many input
// blocks the host has produced (its own count), against which the dead
// owner's commit point is checked. init: the next owner re-initialises the
// chain first (as the dead ones did).
func (c *reproCapture) capture(l int, lane *shm.Lane, block, pushed uint64, init bool) {
	r := lane.Committed()
	if r >= pushed || pushed-r > shm.RingSlots {
		c.dropped.Add(1)
		return
	}
	ib := lane.InBlock(r)
	if ib.Number() != block {
		c.dropped.Add(1)
		return
	}
	for i := range c.slots {
		sl := &c.slots[i]
		if sl.full.Load() != 0 {
			continue
		}
		frames := ib.Frames()
		if frames < 1 || frames > lane.Frames() {
			frames = lane.Frames()
		}
		n := frames * lane.Channels()
		copy(sl.in[:n], ib.Samples(n))
		sl.stateN = copy(sl.state[:], lane.CommittedState(r))
		sl.lane, sl.block, sl.frames, sl.init = l, block, frames, init || r == 0
		sl.full.Store(1)
		return
	}
	c.dropped.Add(1)
}

// take hands the control plane lane l's captured block, and frees its slot.
func (c *reproCapture) take(l int, block uint64) (*reproSlot, func(), bool) {
	for i := range c.slots {
		sl := &c.slots[i]
		if sl.full.Load() == 1 && sl.lane == l && sl.block == block {
			return sl, func() { sl.full.Store(0) }, true
		}
	}
	return nil, nil, false
}

// saveRepro writes lane l's captured poison block to a repro file in
// Config.ReproDir (the temporary directory by default). Control plane.
func (s *Supervisor) saveRepro(l int, block uint64) (string, error) {
	sl, release, ok := s.truth.repro.take(l, block)
	if !ok {
		return "", errors.New("the block was not saved (it had left the lane's ring, or too many were waiting)")
	}
	defer release()
	lane := s.region.Lane(l)
	cfg := lane.Config()
	r := &Repro{Lane: l, Block: block, Channels: cfg.Channels, Frames: cfg.Frames, Rate: cfg.Rate, Init: sl.init,
		Input: append([]float32(nil), sl.in[:sl.frames*cfg.Channels]...), State: append([]byte(nil), sl.state[:sl.stateN]...)}
	offs := lane.StateOffsets()
	for i, e := range cfg.Chain {
		r.Chain = append(r.Chain, ReproKernel{Name: e.Name, Variant: e.Variant, Params: e.Params, StateOffset: offs[i]})
	}
	b, err := r.MarshalBinary()
	if err != nil {
		return "", err
	}
	dir := s.cfg.ReproDir
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, fmt.Sprintf("understudy-repro-lane%d-block%d-*.bin", l, block))
	if err != nil {
		return "", err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	path := f.Name()
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	s.truth.mu.Lock()
	s.truth.saved = append(s.truth.saved, path)
	s.truth.mu.Unlock()
	return path, nil
}

// saveLeftRepros writes the captured blocks whose failover was not
// reported before Close (a render that ended right after its poison
// block). Close calls it once the monitor has stopped.
func (s *Supervisor) saveLeftRepros() {
	for i := range s.truth.repro.slots {
		sl := &s.truth.repro.slots[i]
		if sl.full.Load() == 1 {
			s.saveRepro(sl.lane, sl.block)
		}
	}
}

// Repros lists the repro files saved so far, one per poison block: those
// the events named, and those saved by Close for failovers it cut short.
func (s *Supervisor) Repros() []string {
	s.truth.mu.Lock()
	defer s.truth.mu.Unlock()
	return append([]string(nil), s.truth.saved...)
}
