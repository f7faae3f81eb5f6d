package shm

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ringIn maps a ring of 4 slots in anonymous memory, as a region would.
func ringIn(t *testing.T) (Ring, *RingCtl) {
	t.Helper()
	n := int(unsafe.Sizeof(RingCtl{}) + 4*unsafe.Sizeof(Block{}))
	mem, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	ctl := unsafe.Pointer(&mem[0])
	return NewRing(ctl, unsafe.Add(ctl, unsafe.Sizeof(RingCtl{})), 4), (*RingCtl)(ctl)
}

// The other side's index is followed only where the protocol can put it:
// every value outside is refused as corrupt, and stays refused.
func TestRingRefusesImpossibleIndices(t *testing.T) {
	for _, c := range []struct {
		name        string
		write, read uint64 // our write after filling the ring from 6, and the read the consumer then stores
		prodCorrupt bool   // as seen by a producer whose consumer was last at 4
	}{
		{"read behind its last value", 8, 3, true},
		{"read past our write", 8, 9, true},
		{"read where it may be", 8, 6, false},
	} {
		t.Run("producer/"+c.name, func(t *testing.T) {
			r, ctl := ringIn(t)
			st64(&ctl.write, 6)
			st64(&ctl.read, 4)
			p := NewProducer(r)
			// Fill the ring so the producer must reload `read`.
			for i := 0; i < 2; i++ {
				if b, err := p.Peek(); b == nil || err != nil {
					t.Fatalf("slot %d: %v %v", i, b, err)
				}
				p.Publish()
			}
			st64(&ctl.read, c.read)
			b, err := p.Peek()
			if got := err == ErrCorrupt; got != c.prodCorrupt || (!got && b == nil) {
				t.Fatalf("read %d: corrupt %v (a block: %v), want corrupt %v", c.read, got, b != nil, c.prodCorrupt)
			}
			if c.prodCorrupt {
				st64(&ctl.read, 8) // a sane value later does not clear it
				if _, err := p.Peek(); err != ErrCorrupt {
					t.Fatal("corruption forgotten")
				}
			}
		})
	}
	for _, c := range []struct {
		name    string
		write   uint64
		corrupt bool
	}{
		{"write behind", 3, true},
		{"write more than a ring ahead", 4 + 5, true},
		{"write a full ring ahead", 4 + 4, false},
		{"write one ahead", 5, false},
	} {
		t.Run("consumer/"+c.name, func(t *testing.T) {
			r, ctl := ringIn(t)
			st64(&ctl.write, 4)
			st64(&ctl.read, 4)
			cons := NewConsumer(r)
			st64(&ctl.write, c.write)
			b, err := cons.Peek()
			if got := err == ErrCorrupt; got != c.corrupt {
				t.Fatalf("write %d: corrupt %v (a block: %v), want %v", c.write, got, b != nil, c.corrupt)
			}
			if !c.corrupt && b == nil {
				t.Fatalf("write %d: no block", c.write)
			}
		})
	}
	t.Run("init refuses indices the other side left impossible", func(t *testing.T) {
		r, ctl := ringIn(t)
		st64(&ctl.write, 100)
		st64(&ctl.read, 2)
		if _, err := NewConsumer(r).Peek(); err != ErrCorrupt {
			t.Error("consumer followed a write index 98 blocks ahead of a 4-slot ring")
		}
		if _, err := NewProducer(r).Peek(); err != ErrCorrupt {
			t.Error("producer followed a read index 98 blocks behind")
		}
	})
}
