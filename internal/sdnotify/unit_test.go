package sdnotify

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/understudy-rt/understudy/internal/workerbin"
)

func unitText(t *testing.T) string {
	t.Helper()
	root, err := workerbin.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "understudy.service"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// unitValues collects key=value settings of the unit, comments skipped.
func unitValues(text string) map[string][]string {
	m := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = append(m[k], v)
		}
	}
	return m
}

func analyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (apt-get install systemd): the unit cannot be verified here")
	}
	return p
}

// TestUnitVerifies runs `systemd-analyze verify` on the unit, with ExecStart
// pointed at an executable that exists here. Unknown keys and bad values are
// only warnings to systemd, so any output at all fails the test.
func TestUnitVerifies(t *testing.T) {
	sa := analyze(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(unitText(t), "/usr/local/bin/understudy ", self+" ")
	path := filepath.Join(t.TempDir(), "understudy.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestUnitSettings: what the issue and docs/design.md require of the unit.
func TestUnitSettings(t *testing.T) {
	v := unitValues(unitText(t))
	want := map[string]string{
		"Type": "notify", "LimitRTPRIO": "95", "LimitMEMLOCK": "infinity",
		"RestrictRealtime": "no", "NoNewPrivileges": "yes",
	}
	for k, w := range want {
		if got := v[k]; len(got) != 1 || got[0] != w {
			t.Errorf("%s=%v, want %s", k, got, w)
		}
	}
	if len(v["WatchdogSec"]) != 1 || len(v["ExecStart"]) != 1 {
		t.Errorf("WatchdogSec %v, ExecStart %v: want one each", v["WatchdogSec"], v["ExecStart"])
	}
	for _, k := range []string{"CPUSchedulingPolicy", "PrivateDevices", "CPUWeight", "CPUQuota"} {
		if len(v[k]) > 0 {
			t.Errorf("%s=%v: the unit's comments say why not", k, v[k])
		}
	}
}

// TestUnitAllowsWhatTheHostCalls expands the unit's SystemCallFilter with
// systemd's own tables and checks every call the host and its workers make
// that a narrower filter would kill.
func TestUnitAllowsWhatTheHostCalls(t *testing.T) {
	sa := analyze(t)
	v := unitValues(unitText(t))
	allowed := map[string]bool{}
	var expand func(string)
	seen := map[string]bool{}
	expand = func(item string) {
		if !strings.HasPrefix(item, "@") {
			allowed[item] = true
			return
		}
		if seen[item] {
			return
		}
		seen[item] = true
		out, err := exec.Command(sa, "syscall-filter", item).Output()
		if err != nil {
			t.Fatalf("systemd-analyze syscall-filter %s: %v", item, err)
		}
		for _, line := range strings.Split(string(out), "\n")[1:] {
			f := strings.TrimSpace(line)
			if f != "" && f[0] != '#' {
				expand(f)
			}
		}
	}
	for _, line := range v["SystemCallFilter"] {
		if strings.HasPrefix(line, "~") {
			t.Fatalf("SystemCallFilter=%s: a deny list here would need checking too", line)
		}
		for _, item := range strings.Fields(line) {
			expand(item)
		}
	}
	for _, call := range []string{
		"sched_setattr", "sched_setaffinity", "sched_getattr", // host sets workers' policy
		"pidfd_open", "pidfd_send_signal", "waitid", // monitor
		"memfd_create", "fcntl", "mmap", // shared memory, sealed
		"io_uring_setup", "io_uring_enter", "io_uring_register", "epoll_wait", "futex", "futex_waitv",
		"mlockall", "munlockall", "mlock",
		"prctl", "seccomp", "capset", "setgroups", "setuid", "setgid", // worker sandbox
		"clone", "execve", "kill", "set_robust_list", "clock_nanosleep",
	} {
		if !allowed[call] {
			t.Errorf("SystemCallFilter does not allow %s", call)
		}
	}
}
