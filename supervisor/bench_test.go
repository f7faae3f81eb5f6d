package supervisor

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/internal/rttest"
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
	b.Run("death_word", func(b *testing.B) { benchKill(b, false) })
	b.Run("pidfd", func(b *testing.B) { benchKill(b, true) })
	b.Run("floor", benchBarePidfd)
}

func benchKill(b *testing.B, noDeathWord bool) {
	rttest.RequireRT(b)
	r := newRig(b, rigConfig{lanes: 1, spares: 1, blocks: 1 << 30, rt: true, noDeathWord: noDeathWord, restartLimit: -1})
	if w := r.sup.DeathWordWarning(); w != "" && !noDeathWord {
		b.Fatalf("no death words to measure: %s", w)
	}
	r.play()
	r.waitPeriods(50)
	var det, fo []time.Duration
	byWord := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ready := r.count(EvSpareReady)
		inj, err := r.sup.InjectFault(0, FaultKill, 0)
		for err != nil {
			time.Sleep(100 * time.Microsecond)
			inj, err = r.sup.InjectFault(0, FaultKill, 0)
		}
		for r.count(EvFailover) < i+1 || r.count(EvSpareReady) <= ready {
			time.Sleep(100 * time.Microsecond)
		}
		e := r.eventsOf(EvFailover)[i]
		det = append(det, time.Duration(e.DetectNS-inj.InjectNS))
		fo = append(fo, e.Failover())
		if e.Path == PathDeathWord {
			byWord++
		}
	}
	b.StopTimer()
	r.clk.Stop()
	reportPercentiles(b, det)
	sort.Slice(fo, func(i, j int) bool { return fo[i] < fo[j] })
	if len(fo) > 0 {
		b.ReportMetric(float64(fo[len(fo)/2].Nanoseconds()), "failover-ns-p50")
		b.ReportMetric(float64(fo[len(fo)*99/100].Nanoseconds()), "failover-ns-p99")
		b.ReportMetric(100*float64(byWord)/float64(len(fo)), "%-by-death-word")
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
func benchBarePidfd(b *testing.B) {
	rttest.RequireRT(b)
	child := filepath.Join(b.TempDir(), "pause")
	src := filepath.Join(b.TempDir(), "pause.c")
	if err := os.WriteFile(src, []byte("#include <unistd.h>\nint main(void) { for (;;) pause(); }\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-static", "-O2", "-o", child, src).CombinedOutput(); err != nil {
		b.Skipf("cannot build a static child (gcc -static): %v\n%s", err, out)
	}
	if hold, err := rt.HoldWakeLatency(0); err == nil {
		defer hold.Release()
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(epfd)
	woke := make(chan uint64)
	arm := make(chan struct{})
	waiterDone, err := rt.RunLockedFIFO(80, func() {
		var evs [1]unix.EpollEvent
		for range arm {
			for {
				n, err := unix.EpollWait(epfd, evs[:], 5000)
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
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		pidfd := -1
		cmd := exec.Command(child)
		cmd.SysProcAttr = &syscall.SysProcAttr{PidFD: &pidfd}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		unix.SchedSetAttr(cmd.Process.Pid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 60}, 0)
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(pidfd)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, pidfd, &ev); err != nil {
			b.Fatal(err)
		}
		for statStateOf(cmd.Process.Pid) != 'S' { // asleep in pause(), as an idle worker is
			time.Sleep(100 * time.Microsecond)
		}
		arm <- struct{}{}
		time.Sleep(time.Millisecond) // the waiter is in epoll_wait
		b.StartTimer()
		t0 := shm.NowNS()
		unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		t1 := <-woke
		b.StopTimer()
		lat = append(lat, time.Duration(t1-t0))
		unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, pidfd, nil)
		cmd.Wait()
		unix.Close(pidfd)
		b.StartTimer()
	}
	b.StopTimer()
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
