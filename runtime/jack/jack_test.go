package jack_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/understudy-rt/understudy/internal/jacktest"
	"github.com/understudy-rt/understudy/runtime/audioclock"
	"github.com/understudy-rt/understudy/runtime/jack"
	"github.com/understudy-rt/understudy/runtime/shm"
)

const (
	rate   = 48000
	period = 64
)

// bareClock is a clock over lanes nobody owns: every block is an xrun, and
// the fallback (dry) passes the input through. Enough to see the JACK side.
func bareClock(t *testing.T, lanes, channels, frames, latency int) *audioclock.Clock {
	t.Helper()
	cfgs := make([]shm.LaneConfig, lanes)
	for i := range cfgs {
		cfgs[i] = shm.LaneConfig{Channels: channels, Frames: frames, Rate: rate}
	}
	r, err := shm.Create(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	var refs []*shm.Lane
	for i := 0; i < lanes; i++ {
		refs = append(refs, r.Lane(i))
	}
	clk, err := audioclock.New(audioclock.Config{Rate: rate, Frames: frames, Latency: latency, CPU: -1,
		Fallback: audioclock.Dry, Doorbell: -1, Lanes: refs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(clk.Free)
	return clk
}

// waitFor polls cond for up to d; the bound is a hang guard, not a timing
// assertion.
func waitFor(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cond()
}

func clientName(t *testing.T) string {
	return fmt.Sprintf("us%d_%s", os.Getpid(), strings.ToLower(strings.TrimPrefix(t.Name(), "Test")))
}

func TestOpenActivateClosePorts(t *testing.T) {
	srv := jacktest.StartServer(t, rate, period)
	// The server is chosen the way users choose it: JACK_DEFAULT_SERVER.
	t.Setenv("JACK_DEFAULT_SERVER", srv.Name)
	clk := bareClock(t, 1, 2, period, 2)
	name := clientName(t)
	c, err := jack.Open(jack.Config{Name: name, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.BufferSize() != period || c.SampleRate() != rate {
		t.Fatalf("server period %d rate %d, want %d %d", c.BufferSize(), c.SampleRate(), period, rate)
	}
	activate(t, c)
	if !clk.Running() {
		t.Fatal("an externally driven clock reads as not running")
	}
	t.Logf("callback thread: SCHED_FIFO %d (0: not real-time), JACK DSP load %.1f%%", c.RTPriority(), c.CPULoad())
	out, err := srv.Lsp()
	if err != nil {
		t.Fatalf("jack_lsp: %v\n%s", err, out)
	}
	for _, p := range []string{"lane0_in_1", "lane0_in_2", "lane0_out_1", "lane0_out_2"} {
		if !strings.Contains(out, name+":"+p+"\n") {
			t.Errorf("jack_lsp does not list %s:%s:\n%s", name, p, out)
		}
	}
	if got := c.Port(true, 0, 1); got != name+":lane0_out_2" {
		t.Errorf("Port(out, 0, 1) = %q", got)
	}
	s := c.Stats()
	if !s.Started || s.Refused != 0 || s.Shutdown || clk.Periods() < s.Callbacks {
		t.Errorf("stats %+v, clock periods %d", s, clk.Periods())
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err() = %v on a healthy client", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if clk.Running() {
		t.Error("the clock still reads as running after Close")
	}
	// Closing deactivated: the clock is not driven any more.
	p := clk.Periods()
	time.Sleep(50 * time.Millisecond)
	if clk.Periods() != p {
		t.Errorf("periods went on after Close: %d -> %d", p, clk.Periods())
	}
	out, _ = srv.Lsp()
	if strings.Contains(out, name+":") {
		t.Errorf("ports left after Close:\n%s", out)
	}
}

func TestServerAbsent(t *testing.T) {
	jacktest.RequireJACK(t)
	clk := bareClock(t, 1, 1, period, 2)
	start := time.Now()
	_, err := jack.Open(jack.Config{Name: clientName(t), Server: fmt.Sprintf("nosuch%d", os.Getpid()), Clock: clk})
	t.Logf("Open without a server took %v: %v", time.Since(start), err)
	if !errors.Is(err, jack.ErrNoServer) {
		t.Fatalf("err = %v, want ErrNoServer", err)
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "jackd") {
		t.Errorf("not one line naming the fix: %q", msg)
	}
}

// The library missing is checked in a child process: libjack loads once per
// process, and this one has loaded the real one.
func TestLibraryAbsent(t *testing.T) {
	if os.Getenv("US_JACK_CHILD") == "nolib" {
		r, err := shm.Create([]shm.LaneConfig{{Channels: 1, Frames: period, Rate: rate}})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		l := r.Lane(0)
		clk, err := audioclock.New(audioclock.Config{Rate: rate, Frames: period, Latency: 2, CPU: -1, Doorbell: -1, Lanes: []*shm.Lane{l}})
		if err != nil {
			t.Fatal(err)
		}
		defer clk.Free()
		_, err = jack.Open(jack.Config{Clock: clk, Library: "libjack-understudy-absent.so.0"})
		fmt.Printf("ERR=%v\nIS=%v\n", err, errors.Is(err, jack.ErrNoLibrary))
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLibraryAbsent$", "-test.count=1")
	cmd.Env = append(os.Environ(), "US_JACK_CHILD=nolib")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "IS=true") || !strings.Contains(string(out), "apt-get install libjack-jackd2-0") {
		t.Fatalf("child did not get ErrNoLibrary naming the fix:\n%s", out)
	}
}

func TestBlockMustFitThePeriod(t *testing.T) {
	srv := jacktest.StartServer(t, rate, period)
	for _, tc := range []struct {
		frames, latency int
		want            string
	}{
		{48, 4, "divides the period"}, // 64 is no multiple of 48
		{32, 1, "at least 2 blocks"},  // two blocks per period, latency one
	} {
		clk := bareClock(t, 1, 1, tc.frames, tc.latency)
		_, err := jack.Open(jack.Config{Name: clientName(t), Server: srv.Name, Clock: clk})
		if !errors.Is(err, jack.ErrBlockSize) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("frames %d latency %d: err = %v, want ErrBlockSize", tc.frames, tc.latency, err)
		}
	}
	// A block that divides the period runs several blocks per callback.
	clk := bareClock(t, 1, 1, 16, 4)
	c, err := jack.Open(jack.Config{Name: clientName(t), Server: srv.Name, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	activate(t, c)
	c.Close()
	if s, p := c.Stats(), clk.Periods(); p < 20*4 || p%4 != 0 {
		t.Errorf("16-frame blocks under a 64-frame period: %d clock periods (%+v)", p, s)
	}
}

func TestServerKilledMidRun(t *testing.T) {
	srv := jacktest.StartServer(t, rate, period)
	clk := bareClock(t, 1, 1, period, 2)
	c, err := jack.Open(jack.Config{Name: clientName(t), Server: srv.Name, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	activate(t, c)
	srv.Kill()
	if !waitFor(10*time.Second, func() bool { return c.Err() != nil }) {
		t.Fatalf("the server died and the client did not notice: %+v", c.Stats())
	}
	err = c.Err()
	t.Logf("after the kill: %v", err)
	if !errors.Is(err, jack.ErrShutdown) {
		t.Fatalf("Err() = %v, want ErrShutdown", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close after the server died: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close hung after the server died")
	}
	if clk.Running() {
		t.Error("clock still reads as running")
	}
}

// TestConnectPatternsInOrder: each pattern's matches take our next ports,
// lane by lane, channel by channel; a pattern that matches nothing is an
// error naming it.
func TestConnectPatternsInOrder(t *testing.T) {
	srv := jacktest.StartServer(t, rate, period)
	playName := jacktest.UniqueName("play")
	play, err := jacktest.NewPlayer(srv.Name, playName, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer play.Close()
	clk := bareClock(t, 2, 1, period, 2)
	name := jacktest.UniqueName("us")
	// out_2 first: lane 0 gets it, lane 1 gets out_1.
	c, err := jack.Open(jack.Config{Name: name, Server: srv.Name, Clock: clk,
		ConnectInputs: []string{"^" + playName + ":out_2$", "^" + playName + ":out_1$"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Activate(); err != nil {
		t.Fatal(err)
	}
	out, err := srv.Lsp("-c", name+":lane")
	if err != nil {
		t.Fatalf("jack_lsp: %v\n%s", err, out)
	}
	want := name + ":lane0_in_1\n   " + playName + ":out_2\n" + name + ":lane0_out_1\n" +
		name + ":lane1_in_1\n   " + playName + ":out_1\n" + name + ":lane1_out_1\n"
	if out != want {
		t.Errorf("connections:\n%s\nwant:\n%s", out, want)
	}
	c.Close()

	clk2 := bareClock(t, 1, 1, period, 2)
	c2, err := jack.Open(jack.Config{Name: jacktest.UniqueName("us"), Server: srv.Name, Clock: clk2, ConnectOutputs: []string{"^nosuchclient:"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	err = c2.Activate()
	if !errors.Is(err, jack.ErrConnect) || !strings.Contains(err.Error(), "nosuchclient") {
		t.Errorf("Activate with a pattern matching nothing: %v", err)
	}
}

// TestBufferSizeChangeIsReported: the server switches to a period the lanes'
// block does not divide; the client plays silence instead of blocks it
// cannot cut, and Err says what to do.
func TestBufferSizeChangeIsReported(t *testing.T) {
	srv := jacktest.StartServer(t, rate, period)
	clk := bareClock(t, 1, 1, period, 2)
	c, err := jack.Open(jack.Config{Name: jacktest.UniqueName("us"), Server: srv.Name, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	activate(t, c)
	cmd := exec.Command("jack_bufsize", "48")
	cmd.Env = append(os.Environ(), "JACK_DEFAULT_SERVER="+srv.Name)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("jack_bufsize 48: %v\n%s", err, out)
	}
	if !waitFor(10*time.Second, func() bool { return c.Err() != nil }) {
		t.Fatalf("the period changed to 48 frames and Err stayed nil: %+v", c.Stats())
	}
	err = c.Err()
	t.Logf("after jack_bufsize 48: %v", err)
	if !errors.Is(err, jack.ErrBlockSize) || !strings.Contains(err.Error(), "48 frames") {
		t.Errorf("Err() = %v, want ErrBlockSize naming 48 frames", err)
	}
	if s := c.Stats(); s.Refused == 0 {
		t.Errorf("no refused callbacks: %+v", s)
	}
}

// The clock stops its JACK driver as it would join its own thread: closing
// the lanes' region (what the supervisor's Close does) or freeing the clock
// first deactivates the client, and no callback reads unmapped memory.
func TestCloseInAnyOrder(t *testing.T) {
	srv := jacktest.StartServer(t, rate, period)
	t.Setenv("JACK_DEFAULT_SERVER", srv.Name)
	for _, first := range []string{"region", "clock"} {
		t.Run(first+" first", func(t *testing.T) {
			r, err := shm.Create([]shm.LaneConfig{{Channels: 2, Frames: period, Rate: rate}})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			l := r.Lane(0)
			clk, err := audioclock.New(audioclock.Config{Rate: rate, Frames: period, Latency: 2, CPU: -1,
				Fallback: audioclock.Dry, Doorbell: -1, Lanes: []*shm.Lane{l}})
			if err != nil {
				t.Fatal(err)
			}
			defer clk.Free()
			name := clientName(t)
			c, err := jack.Open(jack.Config{Name: name, Clock: clk})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			activate(t, c)
			if first == "region" {
				r.Close()
			} else {
				clk.Free()
			}
			n := c.Stats().Callbacks
			time.Sleep(50 * time.Millisecond)
			if got := c.Stats().Callbacks; got != n {
				t.Errorf("callbacks went on after the %s was closed: %d -> %d", first, n, got)
			}
			if out, _ := srv.Lsp(); strings.Contains(out, name+":") {
				t.Errorf("the client's ports outlived its clock:\n%s", out)
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close after the %s: %v", first, err)
			}
		})
	}
}

// activate starts c's callbacks and waits (up to 10 s) until it has run 20
// of them.
func activate(t *testing.T, c *jack.Client) {
	t.Helper()
	if err := c.Activate(); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { return c.Stats().Callbacks >= 20 }) {
		t.Fatalf("no callbacks: %+v", c.Stats())
	}
}
