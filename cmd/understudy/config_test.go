package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/understudy-rt/understudy/internal/jacktest"
)

// Every class of mistake in a --config file, and in a file and flags taken
// together, is one line naming the file and its key, exit 2, before any
// audio (no worker is left, no server is needed).
func TestRunConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, file string
		args       []string
		want       string
	}{
		{"missing file", "", nil, "--config: open"},
		{"syntax", "{\n  \"block\": 64,,\n}", nil, "session.json: line 2"},
		{"not an object", `["block"]`, nil, "one JSON object keyed by run's flag names"},
		{"unknown key", `{"frobnicate": 1}`, nil, `unknown setting "frobnicate"`},
		{"a file naming a file", `{"config": "other.json"}`, nil, "cannot name another"},
		{"array expected", `{"lane": "gain"}`, nil, "session.json: lane: give an array of strings"},
		{"value of no kind", `{"block": {"frames": 64}}`, nil, "session.json: block: give a string, a number or true/false"},
		{"value the flag refuses", `{"block": "sixty-four"}`, nil, "session.json: block sixty-four"},
		{"duration unparsable", `{"duration": 10}`, nil, "session.json: duration 10"},
		{"out of range", `{"block": 5000}`, nil, "session.json: block 5000 is out of range"},
		{"wrong backend", `{"backend": "alsa"}`, nil, `session.json: backend "alsa"`},
		{"lane twice", `{"lane": ["gain"]}`, []string{"--lane", "0=gain", "--lane", "0=gain"}, "--lane 0 given twice"},
		{"a lane's chain", `{"lane": ["gain db=-6", "nosuchkernel"]}`, nil, "session.json: lane 1:"},
		{"a lane's chain out of range", `{"chain": "lowpass f=99999", "lanes": 2}`, nil, "session.json: lane 0: "},
		{"file and flags together", `{"channels": 8}`, []string{"--block", "1024"}, "session.json: channels 8 (lane 0) at 1024 frames"},
		{"declick past the file's block", `{"block": 16, "declick": 32}`, nil, "session.json: declick 32"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "session.json")
			os.Remove(path)
			if c.file != "" {
				require.NoError(t, os.WriteFile(path, []byte(c.file), 0o644))
			}
			args := append([]string{"run", "--worker", worker(t), "--config", path}, c.args...)
			if !strings.Contains(c.file, "backend") {
				args = append(args, "--backend", "jack")
			}
			code, _, stderr := runCLI(args...)
			stderr = strings.ReplaceAll(stderr, path, "session.json")
			require.Equal(t, 2, code, "stderr: %s", stderr)
			require.Contains(t, stderr, c.want)
			require.Equal(t, 1, strings.Count(strings.TrimSpace(stderr), "\n")+1, "one line: %s", stderr)
			require.Empty(t, workerPIDs(), "workers left")
		})
	}
}

// A flag given on the command line wins over the file's: the file's bad
// block is never used, so the run gets as far as looking for its server.
func TestRunFlagsWinOverConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "session.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"backend": "jack", "block": 5000, "server": "ustest_nobody_here"}`), 0o644))
	code, _, stderr := runCLI("run", "--worker", worker(t), "--config", path, "--block", "64")
	require.Equal(t, 2, code, stderr)
	require.Contains(t, stderr, "no JACK server")
	require.NotContains(t, stderr, "block")
}

// A session from a file alone: per-lane chains, latency, block, duration
// and report all come from it, and the run plays them against a server.
func TestRunFromConfigFile(t *testing.T) {
	srv := jacktest.StartServer(t, 48000, 64)
	dir := t.TempDir()
	rep := filepath.Join(dir, "run.json")
	cfg := map[string]any{"backend": "jack", "server": srv.Name, "name": "ustest_cfg", "worker": worker(t),
		"lane": []string{"sine f=440 | gain db=-6", "noise db=-20 | lowpass f=2000"}, "channels": 1,
		"block": 32, "latency": 8, "duration": "1s", "report": rep, "fallback": "silence", "declick": 16}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "session.json")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	code, stdout, stderr := runCLI("run", "--config", path)
	require.Equal(t, 0, code, "stdout %s\nstderr %s", stdout, stderr)
	out, err := os.ReadFile(rep)
	require.NoError(t, err)
	var got struct {
		Config struct {
			LaneChains []string `json:"lane_chains"`
			Block      int      `json:"block"`
			Latency    int      `json:"latency_periods"`
			Channels   int      `json:"channels"`
			Fallback   string   `json:"fallback"`
			Declick    int      `json:"declick_frames"`
		} `json:"config"`
		Blocks uint64 `json:"blocks"`
		Lanes  []struct {
			Delivered uint64 `json:"delivered"`
		} `json:"lanes"`
	}
	require.NoError(t, json.Unmarshal(out, &got))
	require.Equal(t, cfg["lane"], got.Config.LaneChains)
	require.Equal(t, 32, got.Config.Block)
	require.Equal(t, 8, got.Config.Latency)
	require.Equal(t, 1, got.Config.Channels)
	require.Equal(t, "silence", got.Config.Fallback)
	require.Equal(t, 16, got.Config.Declick)
	require.Len(t, got.Lanes, 2)
	for l, lane := range got.Lanes {
		require.Positive(t, lane.Delivered, "lane %d delivered nothing", l)
	}
	require.Empty(t, workerPIDs(), "workers left")
}

// The worker is found without the repository: a copy of the two binaries
// elsewhere, run from elsewhere, with no $UNDERSTUDY_WORKER, finds its own.
func TestWorkerPathWithoutCheckout(t *testing.T) {
	dir := t.TempDir()
	for src, dst := range map[string]string{host(t): "understudy", worker(t): "understudy-worker"} {
		b, err := os.ReadFile(src)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, dst), b, 0o755))
	}
	cmd := exec.Command(filepath.Join(dir, "understudy"), "worker-path")
	cmd.Dir = "/"
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "UNDERSTUDY_WORKER=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, filepath.Join(dir, "understudy-worker"), strings.TrimSpace(string(out)))
	// Without it: one line saying how to point at one, exit 2.
	require.NoError(t, os.Remove(filepath.Join(dir, "understudy-worker")))
	cmd = exec.Command(filepath.Join(dir, "understudy"), "worker-path")
	cmd.Dir, cmd.Env = "/", append(cmd.Env, "PATH=/nonexistent")
	out, err = cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "%s", out)
	require.Equal(t, 2, ee.ExitCode(), "%s", out)
	require.Contains(t, string(out), "UNDERSTUDY_WORKER")
}
