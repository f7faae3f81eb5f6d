package supervisor

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/runtime/shm"
)

// memfdInode is the inode of one of the host's memfds, as /proc/<pid>/maps
// shows it for every process that maps it.
func memfdInode(t *testing.T, fd int) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// sharedMaps lists the inodes of the understudy memfds pid maps.
func sharedMaps(t *testing.T, pid int) map[uint64]bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint64]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// The host's memfds are named understudy-slot and understudy-lane
		// (the worker's own bus-fault page is understudy-bus).
		if len(f) < 6 || !(strings.HasPrefix(f[5], "/memfd:understudy-slot") || strings.HasPrefix(f[5], "/memfd:understudy-lane")) {
			continue
		}
		ino, err := strconv.ParseUint(f[4], 10, 64)
		if err != nil {
			t.Fatalf("maps line %q: %v", line, err)
		}
		got[ino] = true
	}
	return got
}

// openFDs lists pid's open fds and what each is.
func openFDs(t *testing.T, pid int) map[int]string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fds := map[int]string{}
	for _, e := range ents {
		n, _ := strconv.Atoi(e.Name())
		target, _ := os.Readlink(dir + "/" + e.Name())
		fds[n] = target
	}
	return fds
}

// A worker maps only what it owns: a spare maps its own slot and nothing
// else, an owner its slot and its lane; neither holds any memfd in its fd
// table (the slot's is closed once mapped, the lane's once mapped), only
// stdio, the doorbell and its control socket. So another lane's memory,
// another slot's last gasp or command, cannot even be named by a kernel.
func TestWorkerMapsOnlyWhatItOwns(t *testing.T) {
	cfg := Config{Worker: testWorker(t), Lanes: testLanes(t, 2, 64, 48000), Spares: 1, WorkerCPU: -1}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Start(nil); err != nil {
		t.Fatal(err)
	}
	laneInode := []uint64{memfdInode(t, s.region.Lane(0).FD()), memfdInode(t, s.region.Lane(1).FD())}
	type worker struct {
		slot, pid, lane int
	}
	var ws []worker
	deadline := time.Now().Add(5 * time.Second)
	for {
		ws = ws[:0]
		for i := range s.workers {
			w := &s.workers[i]
			switch w.state.Load() {
			case wOwner:
				ws = append(ws, worker{i, int(w.pid.Load()), int(w.lane.Load())})
			case wSpare:
				ws = append(ws, worker{i, int(w.pid.Load()), -1})
			}
		}
		if len(ws) == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(ws) != 3 {
		t.Fatalf("%d workers up, want 2 owners and a spare", len(ws))
	}
	spares := 0
	for _, w := range ws {
		want := map[uint64]bool{memfdInode(t, s.region.SlotFD(w.slot)): true}
		what := "spare"
		if w.lane >= 0 {
			want[laneInode[w.lane]] = true
			what = fmt.Sprintf("owner of lane %d", w.lane)
		} else {
			spares++
		}
		got := sharedMaps(t, w.pid)
		if len(got) != len(want) {
			t.Errorf("%s (slot %d, pid %d) maps %d understudy memfds, want %d (its slot%s)", what, w.slot, w.pid, len(got), len(want),
				map[bool]string{true: " and its lane", false: ""}[w.lane >= 0])
		}
		for ino := range want {
			if !got[ino] {
				t.Errorf("%s (slot %d, pid %d) does not map memfd inode %d it owns", what, w.slot, w.pid, ino)
			}
		}
		fds := openFDs(t, w.pid)
		for n, target := range fds {
			if strings.HasPrefix(target, "/memfd:") {
				t.Errorf("%s (pid %d) holds fd %d -> %s: no memfd may stay in a worker's fd table", what, w.pid, n, target)
			}
		}
		for _, n := range []int{0, 1, 2, 4, 5} {
			if _, ok := fds[n]; !ok {
				t.Errorf("%s (pid %d) lacks fd %d", what, w.pid, n)
			}
		}
		// fd 3: the listener of its own seccomp filter, which it holds so
		// that its death does not free the filter (see us_sandbox.c).
		if fds[3] != "anon_inode:seccomp notify" {
			t.Errorf("%s (pid %d) fd 3 is %q, want its seccomp filter's listener", what, w.pid, fds[3])
		}
		if len(fds) != 6 {
			t.Errorf("%s (pid %d) has fds %v, want exactly stdio, its filter's listener (3), the doorbell (4) and its control socket (5)", what, w.pid, fds)
		}
		if !strings.HasPrefix(fds[5], "socket:") {
			t.Errorf("%s (pid %d) fd 5 is %q, want its control socket", what, w.pid, fds[5])
		}
	}
	if spares != 1 {
		t.Errorf("%d spares, want 1", spares)
	}
}

// The owner epoch is a fencing token. An owner that carries on under an
// older epoch (as one the host had fenced would: FaultStale) has its output
// dropped by the clock (counted as fenced) and its commits counted as no
// progress, so the monitor's deadline moves the lane to a spare. What
// reaches the output is the fallback for those blocks and bit-exact audio
// for every other.
func TestStaleEpochIgnored(t *testing.T) {
	underNoise(t, func(tr *trial) *rig {
		r := playingRig(t)
		if _, _, ok := r.failOnceBy(tr, FaultStale, 150, PathDeadline); !ok {
			return r
		}
		st := r.clk.Stats(0)
		if st.Fenced == 0 {
			tr.errorf("stats %+v: no output block was fenced", st)
		}
		ref := r.reference()[0]
		fallback := 0
		for b := 0; b < r.nBlocks; b++ {
			lo, hi := b*r.frames, (b+1)*r.frames
			if r.flags[0][b]&shm.BlockBypassed != 0 {
				fallback++
				continue
			}
			if !r.blockIs(b, ref) {
				n := mismatches(ref[lo:hi], r.out[0][lo:hi])
				tr.errorf("block %d: %d samples differ from the reference (not a fallback block)", b, n)
				return r
			}
		}
		// Block 150 was processed under the stale epoch only: the new owner
		// resumed past the stale owner's commits.
		if r.flags[0][150]&shm.BlockBypassed == 0 {
			tr.errorf("block 150, written under a stale epoch, reached the output as the chain's")
		}
		if fallback == 0 || uint64(fallback) < st.Fenced {
			tr.errorf("%d fallback blocks for %d fenced ones", fallback, st.Fenced)
		}
		t.Logf("%d blocks fenced, %d fallback blocks, the rest bit-exact", st.Fenced, fallback)
		return r
	})
}

// The monitor hands a lane's fd over without allocating: one sendmsg from
// buffers built beforehand. What arrives is the lane's own memfd, with the
// lane and epoch it is for.
func TestSendLaneAllocatesNothing(t *testing.T) {
	s, err := New(Config{Worker: testWorker(t), Lanes: testLanes(t, 2, 64, 48000), WorkerCPU: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sp[1])
	const slot = 7 // no process: the test reads the worker's end itself
	s.workers[slot].ctl.Store(int32(sp[0]))
	defer func() { unix.Close(int(s.workers[slot].ctl.Swap(-1))) }()
	want := memfdInode(t, s.region.Lane(1).FD())
	epoch := uint64(41)
	recv := func() {
		t.Helper()
		buf := make([]byte, 64)
		oob := make([]byte, unix.CmsgSpace(4))
		n, oobn, _, _, err := unix.Recvmsg(sp[1], buf, oob, unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
		if err != nil {
			t.Fatalf("recvmsg: %v", err)
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			t.Fatalf("control messages %v: %v", msgs, err)
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			t.Fatalf("rights %v: %v", fds, err)
		}
		defer unix.Close(fds[0])
		if got := memfdInode(t, fds[0]); got != want {
			t.Errorf("received memfd inode %d, want lane 1's %d", got, want)
		}
		lane := uint32(buf[0]) | uint32(buf[1])<<8 | uint32(buf[2])<<16 | uint32(buf[3])<<24
		var ep uint64
		for i := 0; i < 8; i++ {
			ep |= uint64(buf[8+i]) << (8 * i)
		}
		if n != 16 || lane != 1 || ep != epoch {
			t.Errorf("message of %d bytes for lane %d epoch %d, want 16 bytes, lane 1, epoch %d", n, lane, ep, epoch)
		}
	}
	const runs = 50
	for i := 0; i < 3; i++ {
		epoch++
		if !s.mon.sendLane(slot, 1, epoch) {
			t.Fatal("sendLane failed")
		}
		recv()
	}
	// recv allocates (it is the test's side); measure the send alone.
	allocs := testing.AllocsPerRun(runs, func() {
		if !s.mon.sendLane(slot, 1, epoch) {
			t.Fatal("sendLane failed")
		}
	})
	for i := 0; i < runs+1; i++ {
		recv()
	}
	if allocs != 0 {
		t.Errorf("sendLane allocates %.2f times per call", allocs)
	}
}

// A gasp is a promise to write nothing more, and a kernel can forge its
// own worker's (FaultForge: the gasp, then on as before). The lane moves
// at the gasp as for a crash, the forger's later output is fenced by its
// old epoch, and the monitor's kill (sent once the lane is handed on) ends
// the forger: every block but the one it named is bit-exact.
func TestForgedGaspIsKilled(t *testing.T) {
	underNoise(t, func(tr *trial) *rig {
		r := playingRig(t)
		inj, _, ok := r.failOnceBy(tr, FaultForge, 150, PathLastGasp)
		if !ok {
			return r
		}
		if !waitFor(func() bool { return !alive(inj.PID) }) {
			tr.errorf("the forger (pid %d) is still alive after its gasp", inj.PID)
			return r
		}
		ref := r.reference()[0]
		for b := 0; b < r.nBlocks; b++ {
			if b == 150 || r.blockIs(b, ref) {
				continue
			}
			lo, hi := b*r.frames, (b+1)*r.frames
			tr.errorf("block %d: %d samples differ from the reference", b, mismatches(ref[lo:hi], r.out[0][lo:hi]))
			return r
		}
		return r
	})
}
