package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDemoNotifiesSystemd runs the demo as systemd would start it with
// Type=notify and WatchdogSec: READY=1 once it plays, WATCHDOG=1 while the
// clock advances, STOPPING=1 when the real-time run ends.
func TestDemoNotifiesSystemd(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	got := make(chan []string, 1)
	go func() {
		var msgs []string
		buf := make([]byte, 256)
		for {
			n, _, err := c.ReadFromUnix(buf)
			if err != nil {
				got <- msgs
				return
			}
			msgs = append(msgs, string(buf[:n]))
			if msgs[len(msgs)-1] == "STOPPING=1" {
				got <- msgs
				return
			}
		}
	}()
	code, _, errOut := runCLI("demo", "--worker", worker(t), "--duration", "2s", "--faults", "none",
		"--out", filepath.Join(dir, "o.wav"), "--report", filepath.Join(dir, "r.json"))
	if code != 0 {
		t.Fatalf("demo exit %d: %s", code, errOut)
	}
	// The demo has returned, so STOPPING=1 is sent; a reader still waiting
	// after this long will never see it.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	msgs := <-got
	feeds := strings.Count(strings.Join(msgs, "\n"), "WATCHDOG=1")
	if len(msgs) < 3 || msgs[0] != "READY=1" || msgs[len(msgs)-1] != "STOPPING=1" || feeds != len(msgs)-2 || feeds == 0 {
		t.Errorf("messages %q: want READY=1, WATCHDOG=1 at least once, then STOPPING=1", msgs)
	}
}
