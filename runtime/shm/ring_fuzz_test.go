package shm

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fuzzRing is a ring in anonymous memory, as a region's (the C endpoints
// may not hold pointers into Go's heap): the other side's index is
// whatever the fuzzer says a hostile worker wrote.
func fuzzRing(t *testing.T, slotsLog uint8) (Ring, uintptr, uintptr) {
	slots := 1 << (slotsLog % 5) // 1..16 slots: the logic does not depend on the size
	n := int(unsafe.Sizeof(RingCtl{}) + uintptr(slots)*unsafe.Sizeof(Block{}))
	mem, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	ctl := unsafe.Pointer(&mem[0])
	blocks := unsafe.Add(ctl, unsafe.Sizeof(RingCtl{}))
	base := uintptr(blocks)
	return NewRing(ctl, blocks, slots), base, base + uintptr(slots)*unsafe.Sizeof(Block{})
}

func inRange(t *testing.T, b *Block, lo, hi uintptr) {
	t.Helper()
	p := uintptr(unsafe.Pointer(b))
	if p < lo || p >= hi || (p-lo)%unsafe.Sizeof(Block{}) != 0 {
		t.Fatalf("block pointer %#x outside the ring [%#x, %#x) or misaligned", p, lo, hi)
	}
}

// The producer, given any read index by its consumer, either reports
// ErrCorrupt, says the ring is full, or hands out a slot of the ring that
// is really free: never a pointer outside the ring, and never trusting an
// index that moved backwards or past what was written.
func FuzzProducerPeek(f *testing.F) {
	f.Add(uint8(4), uint64(0), uint64(0), uint64(0))
	f.Add(uint8(4), uint64(16), uint64(0), uint64(3))
	f.Add(uint8(4), uint64(20), uint64(4), uint64(30))       // read past write
	f.Add(uint8(4), uint64(20), uint64(4), uint64(2))        // read moved backwards
	f.Add(uint8(2), ^uint64(0), ^uint64(0)-4, ^uint64(0))    // indices about to wrap
	f.Add(uint8(3), uint64(1)<<63, uint64(0), uint64(1)<<62) // absurd distance
	f.Fuzz(func(t *testing.T, slotsLog uint8, write, readCache, shared uint64) {
		r, lo, hi := fuzzRing(t, slotsLog)
		if readCache > write || write-readCache > r.mask+1 {
			return // not a state our own producer can be in
		}
		st64(&r.ctl.read, shared)
		p := newProducerAt(r, write, readCache)
		b, err := p.Peek()
		// The shared index is read when the cached one says full; read, it
		// must be believed only inside [cached, write].
		if err == nil && write-readCache > r.mask && (shared < readCache || shared > write) {
			t.Fatalf("read index %d outside [%d, %d] taken as %v", shared, readCache, write, map[bool]string{true: "full", false: "a free slot"}[b == nil])
		}
		switch {
		case err != nil:
			if err != ErrCorrupt {
				t.Fatalf("error %v, want ErrCorrupt", err)
			}
			if shared >= readCache && shared <= write {
				t.Fatalf("read index %d in [%d, %d] refused", shared, readCache, write)
			}
		case b != nil:
			inRange(t, b, lo, hi)
			if b != r.block(write) {
				t.Fatal("not the slot at the write index")
			}
			if p.readCache() < readCache || p.readCache() > write || write-p.readCache() > r.mask {
				t.Fatalf("handed out slot %d with read index %d (was %d): not free", write, p.readCache(), readCache)
			}
		default:
			if write-p.readCache() <= r.mask {
				t.Fatalf("said full with write %d, read %d, %d slots", write, p.readCache(), r.mask+1)
			}
		}
	})
}

// The consumer, given any write index by its producer, either reports
// ErrCorrupt, says the ring is empty, or hands out a slot the producer
// really filled.
func FuzzConsumerPeek(f *testing.F) {
	f.Add(uint8(4), uint64(0), uint64(0), uint64(0))
	f.Add(uint8(4), uint64(5), uint64(5), uint64(9))
	f.Add(uint8(4), uint64(5), uint64(5), uint64(100)) // more than the ring holds
	f.Add(uint8(4), uint64(5), uint64(5), uint64(2))   // write moved backwards
	f.Add(uint8(0), ^uint64(0)-1, ^uint64(0)-1, ^uint64(0))
	f.Fuzz(func(t *testing.T, slotsLog uint8, read, writeCache, shared uint64) {
		r, lo, hi := fuzzRing(t, slotsLog)
		if writeCache < read || writeCache-read > r.mask+1 {
			return
		}
		st64(&r.ctl.write, shared)
		c := newConsumerAt(r, read, writeCache)
		b, err := c.Peek()
		if err == nil && read == writeCache && (shared < read || shared-read > r.mask+1) {
			t.Fatalf("write index %d with read %d and %d slots not refused", shared, read, r.mask+1)
		}
		switch {
		case err != nil:
			if err != ErrCorrupt {
				t.Fatalf("error %v, want ErrCorrupt", err)
			}
			if shared >= read && shared-read <= r.mask+1 {
				t.Fatalf("write index %d with read %d and %d slots refused", shared, read, r.mask+1)
			}
		case b != nil:
			inRange(t, b, lo, hi)
			if b != r.block(read) {
				t.Fatal("not the slot at the read index")
			}
			if c.writeCache() <= read || c.writeCache()-read > r.mask+1 {
				t.Fatalf("handed out slot %d with write index %d: not filled", read, c.writeCache())
			}
		default:
			if c.writeCache() != read {
				t.Fatalf("said empty with read %d, write %d", read, c.writeCache())
			}
		}
	})
}
