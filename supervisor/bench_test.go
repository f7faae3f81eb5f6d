package supervisor

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/internal/rttest"
	"github.com/understudy-rt/understudy/internal/uring"
	"github.com/understudy-rt/understudy/rt"
	"github.com/understudy-rt/understudy/runtime/shm"
)

// One block to a C worker and back through the shared-memory rings: spin
// path (both sides spin before sleeping) and futex path (both sleep at once).
func BenchmarkRingRoundTrip(b *testing.B) {
	for _, mode := range []struct {
		name       string
		workerSpin int
		hostSpin   time.Duration
	}{{"spin", 200, 200 * time.Microsecond}, {"futex", -1, 0}} {
		b.Run(mode.name, func(b *testing.B) {
			// Two spinners sharing a core would wait out each other's spin:
			// the worker gets CPU 1, this goroutine's thread CPU 0.
			_, lane := unityLaneOn(b, 64, mode.workerSpin, 1)
			rttest.PinToCPU0(b)
			roundTrips(b, lane, mode.hostSpin, nil)
		})
	}
}

// roundTrips sends b.N blocks of 64 frames through lane one at a time,
// each filled in by head (if not nil) after its header, and reports the
// round trips' percentiles.
func roundTrips(b *testing.B, lane *shm.Lane, hostSpin time.Duration, head func(blk *shm.Block, i int)) {
	prod := shm.NewProducer(lane.In())
	cons := shm.NewConsumer(lane.Out())
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		blk, _ := prod.Peek()
		blk.SetHeader(uint64(i), 64, 0, 0)
		if head != nil {
			head(blk, i)
		}
		prod.Publish()
		var o *shm.Block
		for o == nil {
			cons.Wait(hostSpin, time.Second)
			o, _ = cons.Peek()
		}
		cons.Release()
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// SIGKILL of a lane's owner to the monitor's decision, and on to the new
// owner's first commit, with a clock running at 64 frames / 48 kHz: by the
// death word (the default), by the pidfd alone (death words off), and the
// bare pidfd floor measured in the same run (floor), for the ratio the
// death word is judged by.
func BenchmarkKillToDetection(b *testing.B) {
	b.Run("death_word", func(b *testing.B) { benchFault(b, FaultKill, false) })
	b.Run("pidfd", func(b *testing.B) { benchFault(b, FaultKill, true) })
	b.Run("floor", benchBarePidfd)
}

// Each fault kind, injected into a lane's owner with a clock running at 64
// frames / 48 kHz: the fault to the monitor's decision (ns-p50, ns-p99), the
// share of each detection path, and detection to the new owner's first
// commit (failover-ns-p99: the target is 150 µs for every kind).
func BenchmarkFaultDetection(b *testing.B) {
	for _, f := range []Fault{FaultKill, FaultExit, FaultSegv, FaultAbort, FaultBus, FaultFPE} {
		b.Run(f.String(), func(b *testing.B) { benchFault(b, f, false) })
	}
}

func benchFault(b *testing.B, f Fault, noDeathWord bool) {
	rttest.RequireRT(b)
	// Faults back to back, on purpose: the restart policy would rightly
	// give the lane up.
	r := newRig(b, rigConfig{lanes: 1, spares: 1, blocks: 1 << 30, rt: true, noDeathWord: noDeathWord, restartLimit: -1})
	if w := r.sup.DeathWordWarning(); w != "" && !noDeathWord {
		b.Fatalf("no death words to measure: %s", w)
	}
	r.play()
	r.waitPeriods(50)
	var det, fo []time.Duration
	paths := map[Path]int{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ready := r.count(EvSpareReady)
		var err error
		var inj Injection
		for try := 0; try < 10000; try++ { // the lane is between owners for a moment
			var block uint64
			if f != FaultKill {
				block = r.clk.Periods() + 3
			}
			if inj, err = r.sup.InjectFault(0, f, block); err == nil {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		if err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for r.count(EvFailover) < i+1 || r.count(EvSpareReady) <= ready {
			if time.Now().After(deadline) {
				b.Fatalf("%v %d: no failover and new spare within 5 s", f, i)
			}
			time.Sleep(100 * time.Microsecond)
		}
		e := r.eventsOf(EvFailover)[i]
		paths[e.Path]++
		if f == FaultKill { // the worker records no fault time: the host sent it
			e.FaultNS = inj.InjectNS
		}
		if d := e.Detection(); d >= 0 {
			det = append(det, d)
		}
		if d := e.Failover(); d >= 0 {
			fo = append(fo, d)
		}
	}
	b.StopTimer()
	r.clk.Stop()
	reportPercentiles(b, det)
	sort.Slice(fo, func(i, j int) bool { return fo[i] < fo[j] })
	if len(fo) > 0 {
		b.ReportMetric(float64(fo[len(fo)/2].Nanoseconds()), "failover-ns-p50")
		b.ReportMetric(float64(fo[len(fo)*99/100].Nanoseconds()), "failover-ns-p99")
	}
	for _, p := range []Path{PathDeathWord, PathLastGasp, PathPidfd, PathExiting, PathDeadline} {
		b.ReportMetric(100*float64(paths[p])/float64(b.N), "%-by-"+p.String())
	}
}

// The attach on the failover path, now that it maps the lane: from the
// monitor's send of the lane's fd to the new owner having received and
// mapped it (map), and to its first committed block (commit, counted from
// the send or from the pending block's push, whichever is later), with a
// clock running at 64 frames / 48 kHz and a SIGKILL of the owner each time.
func BenchmarkAttach(b *testing.B) {
	rttest.RequireRT(b)
	// Kills back to back, on purpose: the restart policy would rightly give
	// the lane up.
	r := newRig(b, rigConfig{lanes: 1, spares: 1, blocks: 1 << 30, rt: true, restartLimit: -1})
	r.play()
	r.waitPeriods(50)
	var mapLat, commitLat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ready := r.count(EvSpareReady)
		_, err := r.sup.InjectFault(0, FaultKill, 0)
		for err != nil {
			time.Sleep(100 * time.Microsecond)
			_, err = r.sup.InjectFault(0, FaultKill, 0)
		}
		for r.count(EvFailover) < i+1 || r.count(EvSpareReady) <= ready {
			time.Sleep(100 * time.Microsecond)
		}
		e := r.eventsOf(EvFailover)[i]
		mapped := r.sup.region.Slot(e.NewSlot).AttachNS() // still its owner: the slot is not reused yet
		mapLat = append(mapLat, time.Duration(nsDiff(e.AttachNS, mapped)))
		commitLat = append(commitLat, time.Duration(nsDiff(max(e.AttachNS, e.FirstPushNS), e.FirstCommitNS)))
	}
	b.StopTimer()
	r.clk.Stop()
	reportPercentiles(b, commitLat)
	sort.Slice(mapLat, func(i, j int) bool { return mapLat[i] < mapLat[j] })
	if len(mapLat) > 0 {
		b.ReportMetric(float64(mapLat[len(mapLat)/2].Nanoseconds()), "map-ns-p50")
		b.ReportMetric(float64(mapLat[len(mapLat)*99/100].Nanoseconds()), "map-ns-p99")
	}
	b.ReportMetric(float64(r.sup.region.Lane(0).Bytes()), "lane-bytes")
}

// benchBarePidfd is the floor: SIGKILL of an exec'd tiny static child at
// the workers' priority, to a FIFO thread above it waking in epoll_wait on
// the child's pidfd, with the CPU wake-up latency held at 0 as the
// supervisor holds it. Nothing of the supervisor runs.
func benchBarePidfd(b *testing.B) { benchBare(b, 0, false) }

// bareChildSrc is the bare benchmarks' child: it maps and locks argv[1] MiB
// (the footprint the kernel must tear down before a pidfd reads ready),
// lists a death word as its thread's one robust futex when fd 3 is a memfd
// (as the worker does with its slot's word), and sleeps.
const bareChildSrc = `#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
static struct robust_list entry;
static struct robust_list_head head;
int main(int argc, char **argv) {
	size_t bytes = (argc > 1 ? strtoul(argv[1], 0, 10) : 0) << 20;
	if (bytes) {
		char *p = mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) return 2;
		memset(p, 1, bytes);
		mlockall(MCL_CURRENT | MCL_FUTURE); /* as the workers run */
	}
	uint32_t *word = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 3, 0);
	if (word != MAP_FAILED) {
		*word = (uint32_t)syscall(SYS_gettid) & FUTEX_TID_MASK;
		entry.next = &head.list;
		head.list.next = &entry;
		head.futex_offset = (char *)word - (char *)&entry;
		syscall(SYS_set_robust_list, &head, sizeof head);
	}
	for (;;) pause();
}
`

// bareChild builds the bare benchmarks' child once per benchmark.
func bareChild(b *testing.B) string {
	dir := b.TempDir()
	child, src := filepath.Join(dir, "child"), filepath.Join(dir, "child.c")
	if err := os.WriteFile(src, []byte(bareChildSrc), 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-static", "-O2", "-o", child, src).CombinedOutput(); err != nil {
		b.Skipf("cannot build a static child (gcc -static): %v\n%s", err, out)
	}
	return child
}

// benchBare kills a bare child of mib MiB asleep at the workers' priority
// and times the kill to the wake-up of a FIFO thread above it in epoll_wait:
// on the child's pidfd, or (word) on the ring of an io_uring futex wait on
// the child's death word, as the monitor waits. Nothing of the supervisor
// runs; the CPU wake-up latency is held at 0 as the supervisor holds it.
func benchBare(b *testing.B, mib int, word bool) {
	rttest.RequireRT(b)
	child := bareChild(b)
	if hold, err := rt.HoldWakeLatency(0); err == nil {
		defer hold.Release()
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(epfd)
	var wordMem []byte
	var memfd *os.File
	if word {
		fd, err := unix.MemfdCreate("deathword", unix.MFD_CLOEXEC)
		if err != nil {
			b.Fatal(err)
		}
		memfd = os.NewFile(uintptr(fd), "deathword")
		defer memfd.Close()
		if err := unix.Ftruncate(fd, 4096); err != nil {
			b.Fatal(err)
		}
		if wordMem, err = unix.Mmap(fd, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
			b.Fatal(err)
		}
		defer unix.Munmap(wordMem)
	}
	wordp := func() *uint32 { return (*uint32)(unsafe.Pointer(&wordMem[0])) }
	// The ring belongs to the waiter's thread: completions are its task work.
	var ring *uring.Ring
	woke := make(chan uint64)
	arm := make(chan struct{})
	armErr := make(chan error, 1)
	waiterDone, err := rt.RunLockedFIFO(80, func() {
		if word {
			r, err := uring.New(8)
			if err == nil {
				err = r.ProbeFutexWait()
			}
			if err == nil {
				ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1}
				err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, r.FD(), &ev)
			}
			if err != nil {
				r.Close()
				armErr <- err
				return
			}
			ring = r
			defer r.Close()
		}
		armErr <- nil
		var evs [1]unix.EpollEvent
		var cqe uring.CQE
		for range arm {
			if word {
				p := wordp()
				want := atomic.LoadUint32(p)&shm.FutexTIDMask | shm.FutexWaiters
				atomic.StoreUint32(p, want)
				ring.FutexWait(p, want, 1)
				ring.Submit()
			}
			for {
				n, err := unix.EpollWait(epfd, evs[:], 5000)
				if word && ring.Next(&cqe) { // task work ran on the way out, EINTR or not
					break
				}
				if n == 1 || (err != nil && err != unix.EINTR) || (n == 0 && err == nil) {
					break
				}
			}
			woke <- shm.NowNS()
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { close(arm); <-waiterDone }()
	if err := <-armErr; err != nil {
		b.Skipf("no io_uring futex waits: %v", err)
	}
	// A 64 MiB child's own setup (its memset) leaves every cache cold,
	// the kernel's path to the wake-up included; a 1 MiB child's leaves them
	// warm. Sweeping 64 MiB here before every kill of a child with a
	// footprint starts both from the same cold caches, so that the rows
	// differ by the footprint alone. The floor (mib 0) is left as it was.
	var evict []byte
	if mib > 0 {
		evict = make([]byte, 64<<20)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		pidfd := -1
		cmd := exec.Command(child, strconv.Itoa(mib))
		cmd.SysProcAttr = &syscall.SysProcAttr{PidFD: &pidfd}
		if word {
			atomic.StoreUint32(wordp(), 0)
			cmd.ExtraFiles = []*os.File{memfd} // fd 3
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		unix.SchedSetAttr(cmd.Process.Pid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 60}, 0)
		if !word {
			ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(pidfd)}
			if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, pidfd, &ev); err != nil {
				b.Fatal(err)
			}
		}
		for statStateOf(cmd.Process.Pid) != 'S' || (word && atomic.LoadUint32(wordp()) == 0) { // asleep in pause(), as an idle worker is
			time.Sleep(100 * time.Microsecond)
		}
		for j := 0; j < len(evict); j += 64 {
			evict[j]++
		}
		arm <- struct{}{}
		time.Sleep(time.Millisecond) // the waiter is in epoll_wait
		b.StartTimer()
		t0 := shm.NowNS()
		unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		t1 := <-woke
		b.StopTimer()
		lat = append(lat, time.Duration(t1-t0))
		if word && atomic.LoadUint32(wordp())&shm.FutexOwnerDied == 0 {
			b.Fatalf("woken without the word marked: %#x", atomic.LoadUint32(wordp()))
		}
		if !word {
			unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, pidfd, nil)
		}
		cmd.Wait()
		unix.Close(pidfd)
		b.StartTimer()
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkDetection is the detection table's bare part: SIGKILL of a child
// with 1 MiB and with 64 MiB mapped and locked, to the waiter's wake-up, by
// the pidfd, by the death word (the io_uring futex wait the monitor uses),
// and by the seed's pattern (a Python multiprocessing.connection.wait loop
// on the child's sentinel pipe, 2 ms timeout). The death word's wake comes
// before the kernel tears the memory down, so it is flat in the footprint.
func BenchmarkDetection(b *testing.B) {
	for _, mib := range []int{1, 64} {
		fp := strconv.Itoa(mib) + "MiB"
		b.Run("death_word/"+fp, func(b *testing.B) { benchBare(b, mib, true) })
		b.Run("pidfd/"+fp, func(b *testing.B) { benchBare(b, mib, false) })
		b.Run("seed/"+fp, func(b *testing.B) { benchSeed(b, mib) })
	}
}

// benchSeed runs bench/seed/seedwait.py for b.N kills of the bare child, at
// the floor's waiter priority (FIFO 80, the child at 60) and with the CPU
// wake-up latency held at 0, and reports its latencies.
func benchSeed(b *testing.B, mib int) {
	rttest.RequireRT(b)
	py, err := exec.LookPath("python3")
	if err != nil {
		b.Skip("no python3 for the seed's pattern (scripts/bench-deps installs it)")
	}
	child := bareChild(b)
	if hold, err := rt.HoldWakeLatency(0); err == nil {
		defer hold.Release()
	}
	_, self, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(self), "..", "bench", "seed", "seedwait.py")
	b.ResetTimer()
	cmd := exec.Command(py, script, child, strconv.Itoa(mib), strconv.Itoa(b.N))
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	unix.SchedSetAttr(cmd.Process.Pid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 80}, 0)
	lat := make([]time.Duration, 0, b.N)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		ns, err := strconv.ParseInt(strings.TrimSpace(sc.Text()), 10, 64)
		if err == nil {
			lat = append(lat, time.Duration(ns))
		}
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("%s: %v", script, err)
	}
	b.StopTimer()
	if len(lat) != b.N {
		b.Fatalf("seed pattern: %d latencies for %d kills", len(lat), b.N)
	}
	reportPercentiles(b, lat)
}

// statStateOf is a process's state letter from /proc/<pid>/stat, 0 if gone.
func statStateOf(pid int) byte {
	buf, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	for i := len(buf) - 1; i >= 0; i-- {
		if buf[i] == ')' && i+2 < len(buf) {
			return buf[i+2]
		}
	}
	return 0
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "ns-p50")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "ns-p99")
	b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "ns-max")
}
