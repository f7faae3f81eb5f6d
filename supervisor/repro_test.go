package supervisor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// A repro survives its own encoding, and every truncation or corruption of
// the header is refused, never read past.
func TestReproRoundTrip(t *testing.T) {
	r := &Repro{Lane: 3, Block: 1 << 40, Channels: 2, Frames: 64, Rate: 48000, Init: true,
		Chain: []ReproKernel{{Name: "lowpass", Variant: "scalar", Params: []float32{3000, 0.7071}, StateOffset: 0},
			{Name: "gain", Variant: "avx2", Params: []float32{-6}, StateOffset: 32}},
		Input: make([]float32, 2*40), State: make([]byte, 48)}
	for i := range r.Input {
		r.Input[i] = float32(i) * 0.25
	}
	r.Input[5] = float32(math.NaN())
	for i := range r.State {
		r.State[i] = byte(i * 7)
	}
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseRepro(b)
	if err != nil {
		t.Fatal(err)
	}
	if math.Float32bits(got.Input[5]) != math.Float32bits(r.Input[5]) {
		t.Error("the NaN's bits changed")
	}
	got.Input[5], r.Input[5] = 0, 0
	if !reflect.DeepEqual(got, r) {
		t.Errorf("read back %+v\nwant %+v", got, r)
	}
	for n := 0; n < len(b); n += 7 {
		if _, err := ParseRepro(b[:n]); err == nil {
			t.Fatalf("a file cut to %d of %d bytes was read", n, len(b))
		}
	}
	for _, off := range []int{0, 8, 20, 24, 28, 36, 40, 44} {
		c := append([]byte(nil), b...)
		c[off+3] ^= 0x40
		if _, err := ParseRepro(c); err == nil {
			t.Errorf("a header corrupted at %d was read", off)
		}
	}
}

// A poison block is saved with the committed state it started from: the
// hostile kernel crashes on its trigger block twice, the block is bypassed,
// and the failover that bypassed it names a repro file holding that block
// and the chain; the worker's replay mode runs it again and dies of the
// same signal, outside real time and without a sandbox.
func TestPoisonBlockSavesAReproThatReplaysTheCrash(t *testing.T) {
	worker := hostileWorker(t)
	dir := t.TempDir()
	r := runHostile(t, worker, modePrintCrash, 2, Config{ReproDir: dir})
	var repro string
	for _, e := range r.events {
		if e.Kind == EvFailover && e.Poisoned {
			if e.Repro == "" {
				t.Fatalf("the poisoned failover has no repro: %v", e.ReproErr)
			}
			repro = e.Repro
		} else if e.Repro != "" {
			t.Errorf("a %v event that bypassed nothing has a repro %s", e.Kind, e.Repro)
		}
	}
	if repro == "" {
		t.Fatal("no failover bypassed the block")
	}
	if filepath.Dir(repro) != dir {
		t.Errorf("repro %s, want it in %s", repro, dir)
	}
	rp, err := ReadRepro(repro)
	if err != nil {
		t.Fatal(err)
	}
	const frames = 64
	if rp.Lane != 0 || rp.Block != hostileBlock || rp.Channels != 1 || rp.Frames != frames || rp.Rate != 48000 ||
		len(rp.Chain) != 1 || rp.Chain[0].Name != "hostile" || len(rp.Chain[0].Params) != 1 || rp.Chain[0].Params[0] != modePrintCrash {
		t.Errorf("repro %+v; want lane 0, block %d, the hostile kernel in mode %d", rp, hostileBlock, modePrintCrash)
	}
	if n := sameBits(r.in[0][hostileBlock*frames:(hostileBlock+1)*frames], rp.Input); n != 0 || len(rp.Input) != frames {
		t.Errorf("the saved block differs from the input's block %d in %d samples", hostileBlock, n)
	}
	// The kernel counts its blocks in its state: the block started from the
	// state committed after the blocks before it.
	if len(rp.State) != 4 || binary.LittleEndian.Uint32(rp.State) != hostileBlock {
		t.Errorf("state %v; want the hostile kernel's count of the %d blocks before", rp.State, hostileBlock)
	}
	cmd := exec.Command(worker, "--replay", repro)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGSEGV {
		t.Fatalf("replay: %v; want death by SIGSEGV\n%s", err, out)
	}
	if !strings.Contains(string(out), "I cannot take it") {
		t.Errorf("the replay did not reach the kernel's crash: %s", out)
	}
}

// The monitor's part of a repro is one bounded copy into memory the
// supervisor was allocated with: no allocation, whatever it finds.
func TestReproCaptureAllocatesNothing(t *testing.T) {
	sup := startedSupervisor(t, Config{})
	lane := sup.Region().Lane(0)
	c := &sup.truth.repro
	w, _ := lane.In().Indices()
	allocs := testing.AllocsPerRun(100, func() {
		c.capture(0, lane, lane.InBlockNumber(lane.Committed()), w+1, false)
		for i := range c.slots {
			c.slots[i].full.Store(0)
		}
	})
	if allocs != 0 {
		t.Errorf("capture allocates %v times a call", allocs)
	}
	if c.slots[0].stateN != lane.StateBytesUsed() {
		t.Errorf("captured %d bytes of state, the lane has %d: the copy did not run", c.slots[0].stateN, lane.StateBytesUsed())
	}
}

// A repro file is read from wherever a user points `understudy replay`:
// whatever it holds, ParseRepro returns an error or a repro that passes its
// own checks, encodes, and reads back to the same encoding.
func FuzzParseRepro(f *testing.F) {
	r := &Repro{Lane: 1, Block: 9, Channels: 2, Frames: 4, Rate: 48000,
		Chain: []ReproKernel{{Name: "gain", Variant: "scalar", Params: []float32{-6}}},
		Input: []float32{1, 2, 3, 4, 5, 6}, State: []byte{1, 2, 3, 4}}
	good, err := r.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:reproHeader])
	f.Add([]byte(reproMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRepro(b)
		if err != nil {
			return
		}
		again, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("a parsed repro does not encode: %v", err)
		}
		r2, err := ParseRepro(again)
		if err != nil {
			t.Fatalf("a parsed repro, encoded, does not read back: %v", err)
		}
		// Compared as bytes: a NaN parameter is not equal to itself.
		if third, _ := r2.MarshalBinary(); !bytes.Equal(third, again) {
			t.Fatal("encoding a parsed repro is not a fixed point")
		}
	})
}
