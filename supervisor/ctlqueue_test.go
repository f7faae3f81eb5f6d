package supervisor

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

type qrec struct {
	seq  uint64
	data [3]uint64
}

// Records come out in order and whole; a full queue refuses a record
// rather than overwrite one; indices wrap past the ring's size; every push
// makes the eventfd readable.
func TestQueueFIFOBounded(t *testing.T) {
	q, err := newQueue[qrec](8)
	if err != nil {
		t.Fatal(err)
	}
	defer q.close(true)
	var next, want uint64
	var r qrec
	for round := 0; round < 5; round++ {
		for i := 0; i < 8; i++ {
			next++
			if !q.push(&qrec{seq: next, data: [3]uint64{next, ^next, next * 3}}) {
				t.Fatalf("round %d: push %d of 8 refused", round, i+1)
			}
		}
		if q.push(&qrec{seq: 999}) {
			t.Fatalf("round %d: a ninth record went into a queue of 8", round)
		}
		var cnt [8]byte
		if n, err := unix.Read(q.efd, cnt[:]); err != nil || n != 8 || cnt[0] != 8 {
			t.Fatalf("round %d: eventfd read %d %v %v, want a count of 8", round, n, err, cnt)
		}
		for i := 0; i < 8; i++ {
			want++
			if !q.pop(&r) {
				t.Fatalf("round %d: pop %d of 8 found nothing", round, i+1)
			}
			if r.seq != want || r.data != [3]uint64{want, ^want, want * 3} {
				t.Fatalf("round %d: popped %+v, want record %d", round, r, want)
			}
		}
		if q.pop(&r) {
			t.Fatalf("round %d: popped %+v from an empty queue", round, r)
		}
	}
}

// Neither end allocates: the monitor pushes and pops on its real-time
// thread.
func TestQueueAllocatesNothing(t *testing.T) {
	q, err := newQueue[monEvent](monQueueLen)
	if err != nil {
		t.Fatal(err)
	}
	defer q.close(true)
	var e monEvent
	var scratch [8]byte
	allocs := testing.AllocsPerRun(1000, func() {
		q.push(&monEvent{kind: mDeath, slot: 3})
		unix.Read(q.efd, scratch[:])
		if !q.pop(&e) || e.slot != 3 {
			t.Fatal("record lost")
		}
	})
	if allocs != 0 {
		t.Errorf("push and pop allocate %.2f times", allocs)
	}
}

// One producer and one consumer goroutine: every record arrives once, in
// order, and what the producer wrote to Go memory before a push is visible
// after the pop (run with -race: the race detector sees the queue's
// ordering).
func TestQueueAcrossGoroutines(t *testing.T) {
	const n = 20000
	q, err := newQueue[qrec](16)
	if err != nil {
		t.Fatal(err)
	}
	defer q.close(true)
	side := make([]uint64, n+1) // Go memory handed over with each record
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(1); i <= n; {
			side[i] = i * 7
			if q.push(&qrec{seq: i}) {
				i++
			} else {
				runtime.Gosched()
			}
		}
	}()
	var r qrec
	for want := uint64(1); want <= n; {
		if !q.pop(&r) {
			var fds = []unix.PollFd{{Fd: int32(q.efd), Events: unix.POLLIN}}
			unix.Poll(fds, 10)
			var c [8]byte
			unix.Read(q.efd, c[:])
			continue
		}
		if r.seq != want || side[r.seq] != want*7 {
			t.Fatalf("popped %d (its side value %d), want %d", r.seq, side[r.seq], want)
		}
		want++
	}
	<-done
}
