package sdnotify

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// listen makes the test its own systemd: a unixgram socket named by
// NOTIFY_SOCKET, with the watchdog armed for this process.
func listen(t *testing.T, watchdog time.Duration) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", strconv.FormatInt(watchdog.Microseconds(), 10))
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	return c
}

// next reads one datagram, or "" when none comes within wait.
func next(t *testing.T, c *net.UnixConn, wait time.Duration) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 256)
	n, _, err := c.ReadFromUnix(buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

// TestServeProtocol: READY=1 first; WATCHDOG=1 while the counter advances;
// none once it stops; STOPPING=1 at the end. The counter moves only after
// each feed is received, so once it stops no feed is owed: any that arrives
// is a bug, not a race.
func TestServeProtocol(t *testing.T) {
	const wd = 40 * time.Millisecond // fed every 20 ms
	c := listen(t, wd)
	var periods atomic.Uint64
	stop := Serve(periods.Load, testWriter{t})
	defer stop()
	if m := next(t, c, 10*time.Second); m != "READY=1" {
		t.Fatalf("first message %q, want READY=1", m)
	}
	for i := 0; i < 3; i++ {
		periods.Add(1)
		if m := next(t, c, 10*time.Second); m != "WATCHDOG=1" {
			t.Fatalf("feed %d: got %q, want WATCHDOG=1 while periods advance", i, m)
		}
	}
	if m := next(t, c, 10*wd); m != "" {
		t.Fatalf("got %q after the periods stopped, want no feeding", m)
	}
	periods.Add(1)
	if m := next(t, c, 10*time.Second); m != "WATCHDOG=1" {
		t.Fatalf("got %q once periods resumed, want WATCHDOG=1", m)
	}
	stop()
	for {
		m := next(t, c, 10*time.Second)
		if m == "STOPPING=1" {
			break
		}
		if m != "WATCHDOG=1" { // one feed may have been on its way
			t.Fatalf("got %q at stop, want STOPPING=1", m)
		}
	}
}

// TestWatchdogFeedsOnlyOnProgress drives the ticks by hand. The tick channel
// is unbuffered, so a send returns only once the previous tick is done.
func TestWatchdogFeedsOnlyOnProgress(t *testing.T) {
	var periods, feeds atomic.Uint64
	ticks := make(chan time.Time)
	w := startWatchdog(periods.Load, ticks, func() error { feeds.Add(1); return nil })
	defer w.Stop()
	tick := func() { ticks <- time.Time{} }
	step := []struct {
		advance uint64
		want    uint64 // feeds after the tick
	}{{0, 0}, {1, 1}, {0, 1}, {0, 1}, {5, 2}, {1, 3}, {0, 3}}
	for i, s := range step {
		periods.Add(s.advance)
		tick()
		tick() // returns once the first has been handled; it sees no new progress
		if got := feeds.Load(); got != s.want {
			t.Fatalf("step %d: %d feeds, want %d", i, got, s.want)
		}
	}
}

// TestOutsideSystemd: no notify socket, no watchdog, nothing to do.
func TestOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	if sent, err := Ready(); sent || err != nil {
		t.Errorf("Ready outside systemd: %v, %v", sent, err)
	}
	if w, err := StartWatchdog(func() uint64 { return 0 }); w != nil || err != nil {
		t.Errorf("StartWatchdog outside systemd: %v, %v", w, err)
	}
	// The watchdog is another process's.
	t.Setenv("WATCHDOG_USEC", "1000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	if w, _ := StartWatchdog(func() uint64 { return 0 }); w != nil {
		w.Stop()
		t.Error("fed a watchdog armed for another pid")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Errorf("warning: %s", p); return len(p), nil }
