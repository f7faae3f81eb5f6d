package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/understudy-rt/understudy/internal/jacktest"
)

// jack_iodelay measures what understudy reports. Its output goes through a
// pass-through lane (gain 0 dB) and back to its input; the round trip it
// measures must be the latency understudy puts in its ports' latency ranges
// (lane0_out's capture latency less lane0_in's), plus exactly one period.
//
// That period is the loop's, not understudy's: the loop is a cycle in the
// graph, so one of the two clients runs first in every cycle and reads what
// the other wrote in the cycle before. jack_iodelay's own "extra loopback
// latency" line is no use here: it subtracts its input's capture latency
// and its output's playback latency, and in a loop both of those are
// understudy's same latency, counted twice (it prints 320 - 512 as an
// unsigned number).
//
// Two block sizes and latencies, so that a latency reported as a constant,
// or in blocks of the wrong size, cannot pass both.
func TestIODelayMeasuresReportedLatency(t *testing.T) {
	if _, err := exec.LookPath("jack_iodelay"); err != nil {
		jacktest.RequireJACK(t)
		t.Skip("needs jack_iodelay (jackd2's example clients)")
	}
	const period = 64
	srv := jacktest.StartServer(t, 48000, period)
	for _, c := range []struct{ block, latency int }{{64, 4}, {32, 5}} {
		t.Run(fmt.Sprintf("block%d_latency%d", c.block, c.latency), func(t *testing.T) {
			name := jacktest.UniqueName("usio")
			done := runAsync("run", "--backend", "jack", "--server", srv.Name, "--worker", worker(t), "--name", name,
				"--duration", "6s", "--lanes", "1", "--channels", "1", "--chain", "gain db=0",
				"--block", strconv.Itoa(c.block), "--latency", strconv.Itoa(c.latency))
			in, out := name+":lane0_in_1", name+":lane0_out_1"
			require.Eventually(t, func() bool {
				l, _ := srv.Lsp()
				return strings.Contains(l, out)
			}, 10*time.Second, 20*time.Millisecond, "understudy's ports never came up")

			measured := iodelay(t, srv, out, in)
			lsp, err := srv.Lsp("-l")
			require.NoError(t, err)
			reported := captureLatency(t, lsp, out) - captureLatency(t, lsp, in)
			t.Logf("understudy reports %d frames (block %d × latency %d); jack_iodelay measures %.3f; the loop's period %d",
				reported, c.block, c.latency, measured, period)
			require.Equal(t, c.block*c.latency, reported, "the latency in understudy's ports")
			require.InDelta(t, float64(reported+period), measured, 0.5,
				"measured round trip is not the reported latency plus the loop's one period")

			runOK(t, done)
		})
	}
}

// iodelay runs jack_iodelay with its output to `to` and its input from
// `from`, and returns the round trip (frames) once it has measured the same
// value three times in a row.
func iodelay(t *testing.T, srv *jacktest.Server, from, to string) float64 {
	t.Helper()
	// Line-buffered: jack_iodelay prints with printf and never flushes.
	cmd := exec.Command("stdbuf", "-oL", "jack_iodelay")
	cmd.Env = append(os.Environ(), "JACK_DEFAULT_SERVER="+srv.Name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	// jack_iodelay names itself jack_delay; a second one would be jack_delay-01.
	require.Eventually(t, func() bool {
		l, _ := srv.Lsp()
		return strings.Contains(l, "jack_delay:out")
	}, 10*time.Second, 20*time.Millisecond, "jack_iodelay never registered its ports")
	for _, c := range [][2]string{{"jack_delay:out", to}, {from, "jack_delay:in"}} {
		out, err := exec.Command("jack_connect", "-s", srv.Name, c[0], c[1]).CombinedOutput()
		require.NoError(t, err, "jack_connect %s %s: %s", c[0], c[1], out)
	}
	got := make(chan float64)
	go func() {
		defer close(got)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			// "   320.000 frames      6.667 ms total roundtrip latency"
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && f[1] == "frames" {
				if v, err := strconv.ParseFloat(f[0], 64); err == nil {
					got <- v
				}
			}
		}
	}()
	var last float64
	same := 0
	timeout := time.After(15 * time.Second)
	for same < 3 {
		select {
		case v, ok := <-got:
			require.True(t, ok, "jack_iodelay ended without a measurement")
			if v == last {
				same++
			} else {
				last, same = v, 1
			}
		case <-timeout:
			t.Fatalf("jack_iodelay measured no steady round trip (last %.3f)", last)
		}
	}
	return last
}

// captureLatency is the max of port's capture latency range in `jack_lsp -l`.
func captureLatency(t *testing.T, lsp, port string) int {
	t.Helper()
	lines := strings.Split(lsp, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != port {
			continue
		}
		for _, m := range lines[i+1:] {
			if !strings.HasPrefix(m, "\t") && !strings.HasPrefix(m, " ") {
				break
			}
			// "	port capture latency = [ 256 256 ] frames"
			if rest, ok := strings.CutPrefix(strings.TrimSpace(m), "port capture latency = ["); ok {
				f := strings.Fields(rest)
				require.GreaterOrEqual(t, len(f), 2, "%q", m)
				v, err := strconv.Atoi(f[1])
				require.NoError(t, err, "%q", m)
				return v
			}
		}
	}
	t.Fatalf("no capture latency for %s in jack_lsp -l:\n%s", port, lsp)
	return 0
}
