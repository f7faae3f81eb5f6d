package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/rt"
	"github.com/understudy-rt/understudy/supervisor"
)

// verdict is one fixture's expectation: the status and words the line must
// hold (the finding and the fix together).
type verdict struct {
	name   string
	got    Result
	status Status
	has    []string
}

func judge(t *testing.T, check string, cases []verdict) {
	t.Helper()
	for _, c := range cases {
		if c.got.Name != check {
			t.Errorf("%s/%s: result named %q", check, c.name, c.got.Name)
		}
		text := c.got.Finding + " | fix: " + c.got.Fix
		if c.got.Status != c.status {
			t.Errorf("%s/%s: status %v, want %v: %s", check, c.name, c.got.Status, c.status, text)
		}
		for _, h := range c.has {
			if !strings.Contains(text, h) {
				t.Errorf("%s/%s: %q missing from: %s", check, c.name, h, text)
			}
		}
		if c.got.Status != OK && c.got.Fix == "" && c.status == Fail {
			t.Errorf("%s/%s: a failure without a fix: %s", check, c.name, text)
		}
	}
}

func TestRTPrio(t *testing.T) {
	h := hostLimits{user: "ann"}
	capped := h
	capped.capSysNice = true
	limited := h
	limited.rtprio = 95
	low := h
	low.rtprio = 50
	low.userNS = true
	judge(t, "rtprio", []verdict{
		{"capability", checkRTPrio(capped, 80), OK, []string{"CAP_SYS_NICE"}},
		{"limit", checkRTPrio(limited, 80), OK, []string{"RLIMIT_RTPRIO 95"}},
		{"unlimited", checkRTPrio(hostLimits{rtprio: unlimited}, 80), OK, []string{"unlimited"}},
		{"none", checkRTPrio(h, 80), Fail, []string{"RLIMIT_RTPRIO is 0 for ann", "`ann - rtprio 95`", "LimitRTPRIO=95"}},
		{"below, in a namespace", checkRTPrio(low, 80), Fail, []string{"is 50", "user namespace"}},
	})
}

func TestMemLock(t *testing.T) {
	judge(t, "memlock", []verdict{
		{"capability", checkMemLock(hostLimits{capIPCLock: true, memlock: 8 << 20}), OK, []string{"CAP_IPC_LOCK", "8 MiB"}},
		{"enough", checkMemLock(hostLimits{memlock: 64 << 20, memlockNeed: 10 << 20}), OK, []string{"64 MiB covers the 10 MiB"}},
		{"unlimited", checkMemLock(hostLimits{memlock: unlimited, memlockNeed: 1 << 30}), OK, []string{"unlimited"}},
		{"short", checkMemLock(hostLimits{user: "ann", memlock: 8 << 20, memlockNeed: (40 << 20) - 5}), Fail,
			[]string{"8 MiB for ann, below the 40 MiB", "`ann - memlock 40960`", "LimitMEMLOCK=40M"}},
	})
}

func TestRTTime(t *testing.T) {
	p := 1333 * time.Microsecond
	judge(t, "rttime", []verdict{
		{"unlimited", checkRTTime(unlimited, p, 20), OK, []string{"unlimited"}},
		{"generous", checkRTTime(200000, p, 20), OK, []string{"200000 µs"}},
		{"below a period", checkRTTime(1000, p, 20), Fail, []string{"1000 µs", "1353 µs", "LimitRTTIME=infinity"}},
		{"near", checkRTTime(5000, p, 20), Warn, []string{"5000 µs", "ulimit -R"}},
	})
}

func TestAudioGroup(t *testing.T) {
	grant := "# comment\n@audio   -  rtprio     95\n@audio - memlock unlimited\n"
	judge(t, "audio-group", []verdict{
		{"root", checkAudioGroup(audioGroup{root: true, gid: -1}), OK, []string{"root"}},
		{"no group", checkAudioGroup(audioGroup{user: "ann", gid: -1}), Warn, []string{"no audio group", "groupadd audio"}},
		{"not member", checkAudioGroup(audioGroup{user: "ann", gid: 29, groups: []int{100, 1000}, limits: grant}), Warn, []string{"ann is not in the audio group", "usermod -aG audio ann"}},
		{"member, no grant", checkAudioGroup(audioGroup{user: "ann", gid: 29, groups: []int{29}, limits: "#@audio - rtprio 95\n@audio - rtprio 0\n"}), Warn, []string{"no limits file grants", "@audio - rtprio 95"}},
		{"member, granted", checkAudioGroup(audioGroup{user: "ann", gid: 29, groups: []int{29}, limits: grant}), OK, []string{"limits.d grants rtprio"}},
	})
}

func TestFIFOTrial(t *testing.T) {
	pe := &rt.PrivilegeError{Op: "SCHED_FIFO priority 80", Need: "CAP_SYS_NICE or RLIMIT_RTPRIO >= 80", Fix: "run as root", Err: unix.EPERM}
	judge(t, "fifo", []verdict{
		{"granted", checkFIFOTrial([]fifoTry{{role: "monitor", prio: 80, policy: rt.SchedFIFO, got: 80}, {role: "clock", prio: 70, policy: rt.SchedFIFO, got: 70}}), OK,
			[]string{"monitor 80 and clock 70"}},
		{"refused", checkFIFOTrial([]fifoTry{{role: "monitor", prio: 80, err: pe}}), Fail, []string{"monitor's SCHED_FIFO 80 was refused", "RLIMIT_RTPRIO >= 80", "run as root"}},
		{"other error", checkFIFOTrial([]fifoTry{{role: "clock", prio: 70, err: errors.New("boom")}}), Fail, []string{"boom"}},
		{"overridden", checkFIFOTrial([]fifoTry{{role: "clock", prio: 70, policy: rt.SchedOther}}), Fail, []string{"reports policy 0"}},
	})
}

func TestMLockTrial(t *testing.T) {
	// rt's error counts the heap again when it fails; the line gives the
	// probe's need, as the memlock line does.
	pe := &rt.PrivilegeError{Op: "mlock of the Go heap", Need: "CAP_IPC_LOCK or RLIMIT_MEMLOCK >= 55 MiB", Fix: "setcap", Err: unix.ENOMEM}
	judge(t, "mlock", []verdict{
		{"locked", checkMLockTrial(mlockTry{}), OK, []string{"locked"}},
		{"refused", checkMLockTrial(mlockTry{err: pe, need: 51 << 20}), Fail, []string{"RLIMIT_MEMLOCK >= 51 MiB", "memlock 52224", "LimitMEMLOCK=51M", "setcap cap_ipc_lock+ep"}},
		{"other", checkMLockTrial(mlockTry{err: unix.EAGAIN}), Fail, []string{"failed"}},
	})
}

func TestWorkerTrial(t *testing.T) {
	missing := fmt.Errorf("%w: /x: no such file", supervisor.ErrWorkerBinary)
	judge(t, "worker-fifo", []verdict{
		{"set", checkWorkerFIFO(workerTry{path: "/w", policy: unix.SCHED_FIFO, prio: 60}, 60), OK, []string{"/w to SCHED_FIFO 60 from outside"}},
		{"missing binary", checkWorkerFIFO(workerTry{startErr: missing}, 60), Fail, []string{"no such file", "make"}},
		{"not held", checkWorkerFIFO(workerTry{startErr: unix.EPERM}, 60), Warn, []string{"could not hold", "ptrace"}},
		{"refused", checkWorkerFIFO(workerTry{setErr: unix.EPERM}, 60), Fail, []string{"ordinary scheduling", "cap_sys_nice"}},
		{"other", checkWorkerFIFO(workerTry{setErr: unix.EINVAL}, 60), Fail, []string{"invalid argument"}},
		{"read back", checkWorkerFIFO(workerTry{policy: unix.SCHED_NORMAL}, 60), Fail, []string{"reads back policy 0"}},
	})
	judge(t, "worker-memlock", []verdict{
		{"capability", checkWorkerMemLock(workerTry{capEff: 1 << unix.CAP_IPC_LOCK, memlock: 8 << 20}), OK, []string{"CAP_IPC_LOCK"}},
		{"enough", checkWorkerMemLock(workerTry{memlock: 8 << 20, need: 6 << 20}), OK, []string{"8 MiB covers the 6 MiB"}},
		{"short", checkWorkerMemLock(workerTry{memlock: 64 << 10, need: 6 << 20}), Fail, []string{"64 KiB, below the 6 MiB", "memlock unlimited"}},
		{"no worker", checkWorkerMemLock(workerTry{startErr: unix.EPERM}), Warn, []string{"see worker-fifo"}},
	})
}

func TestRTThrottle(t *testing.T) {
	judge(t, "rt-throttle", []verdict{
		{"default", checkRTThrottle("950000", "1000000"), OK, []string{"95% of each 1000 ms"}},
		{"unthrottled", checkRTThrottle("-1", "1000000"), Warn, []string{"-1", "950000"}},
		{"none", checkRTThrottle("0", "1000000"), Fail, []string{"no CPU time"}},
		{"small", checkRTThrottle("300000", "1000000"), Warn, []string{"only 300000 of every 1000000"}},
		{"unreadable", checkRTThrottle("", ""), Warn, []string{"unreadable"}},
	})
}

const mountinfo = `25 1 0:23 / /sys/fs/cgroup rw - tmpfs tmpfs rw
30 25 0:26 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
31 25 0:27 / /sys/fs/cgroup/cpu\040acct rw,relatime - cgroup cgroup rw,cpuacct
32 25 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory`

func TestCgroupRT(t *testing.T) {
	v1 := "9:name=systemd:/\n4:memory:/x\n1:cpu:/system.slice/understudy.service\n0::/\n"
	path := cgroupV1CPU(v1)
	if path != "/system.slice/understudy.service" {
		t.Fatalf("cgroupV1CPU = %q", path)
	}
	if got := cgroupV1CPU("0::/user.slice\n"); got != "" {
		t.Errorf("cgroup v2 gave a v1 path %q", got)
	}
	// The cpuacct-only hierarchy must not be mistaken for cpu's.
	if got := cgroupV1CPU("2:cpuacct:/a\n"); got != "" {
		t.Errorf("cpuacct taken for cpu: %q", got)
	}
	dir := cgroupV1Dir(mountinfo, path)
	if dir != "/sys/fs/cgroup/cpu/system.slice/understudy.service" {
		t.Fatalf("cgroupV1Dir = %q", dir)
	}
	// A container sees a subtree mounted at its root.
	sub := "40 1 0:26 /docker/abc /sys/fs/cgroup/cpu\\040x rw - cgroup cgroup rw,cpu,cpuacct"
	if got := cgroupV1Dir(sub, "/docker/abc/inner"); got != "/sys/fs/cgroup/cpu x/inner" {
		t.Errorf("subtree mount: %q", got)
	}
	judge(t, "cgroup-rt", []verdict{
		{"v2", checkCgroupRT("", "", ""), OK, []string{"no cgroup-v1 cpu controller"}},
		{"budget", checkCgroupRT("/", "/sys/fs/cgroup/cpu/", "950000"), OK, []string{"950000 µs"}},
		{"no rt group sched", checkCgroupRT(path, dir, ""), OK, []string{"no cpu.rt_runtime_us"}},
		{"zero", checkCgroupRT(path, dir, "0"), Fail, []string{"refuses SCHED_FIFO", "echo 950000 > " + dir + "/cpu.rt_runtime_us"}},
	})
}

const noneConfig = `CONFIG_PREEMPT_BUILD=y
CONFIG_PREEMPT_NONE=y
# CONFIG_PREEMPT_VOLUNTARY is not set
# CONFIG_PREEMPT is not set
CONFIG_PREEMPT_DYNAMIC=y
CONFIG_IRQ_FORCED_THREADING=y
CONFIG_HIGH_RES_TIMERS=y
CONFIG_NO_HZ_IDLE=y
CONFIG_HZ=250`

func TestPreempt(t *testing.T) {
	dyn := kernelInfo{version: "#1 SMP PREEMPT_DYNAMIC", config: parseConfig(noneConfig)}
	fs := dyn
	fs.preemptFS = "none voluntary (full) lazy"
	cmd := dyn
	cmd.cmdline = "quiet preempt=voluntary preempt=full -- preempt=none"
	initOnly := dyn
	initOnly.cmdline = "quiet -- preempt=full"
	judge(t, "preempt", []verdict{
		{"rt", checkPreempt(kernelInfo{version: "#1 SMP PREEMPT_RT Thu"}), OK, []string{"PREEMPT_RT"}},
		{"debugfs", checkPreempt(fs), OK, []string{"preemption full", "debug/sched/preempt"}},
		{"cmdline, last wins, init's args ignored", checkPreempt(cmd), OK, []string{"preemption full", "preempt=full on the command line"}},
		{"config default", checkPreempt(initOnly), Warn, []string{"preemption none (CONFIG_PREEMPT_NONE)", "add preempt=full"}},
		{"static voluntary", checkPreempt(kernelInfo{version: "#1 SMP", config: parseConfig("CONFIG_PREEMPT_VOLUNTARY=y")}), Warn,
			[]string{"voluntary", "linux-image-rt"}},
		{"static full from uname", checkPreempt(kernelInfo{version: "#1 SMP PREEMPT Mon"}), OK, []string{"full (uname -v)"}},
		{"lazy", checkPreempt(kernelInfo{config: parseConfig("CONFIG_PREEMPT_LAZY=y")}), OK, []string{"lazy"}},
		{"unknown", checkPreempt(kernelInfo{version: "#1 SMP PREEMPT_DYNAMIC"}), Warn, []string{"unknown", "preempt=full"}},
	})
}

func TestThreadIRQs(t *testing.T) {
	judge(t, "threadirqs", []verdict{
		{"rt", checkThreadIRQs(kernelInfo{version: "PREEMPT_RT"}), OK, []string{"PREEMPT_RT"}},
		{"on", checkThreadIRQs(kernelInfo{cmdline: "ro threadirqs quiet"}), OK, []string{"threadirqs"}},
		{"off", checkThreadIRQs(kernelInfo{cmdline: "ro quiet -- threadirqs", config: parseConfig(noneConfig)}), Warn, []string{"add threadirqs"}},
		{"cannot", checkThreadIRQs(kernelInfo{config: parseConfig("# CONFIG_IRQ_FORCED_THREADING is not set")}), Warn, []string{"cannot thread them"}},
	})
}

const timerList = `Timer List Version: v0.10
cpu: 0
 clock 0:
  .resolution: 1 nsecs
  .hres_active    : %d
  .nohz           : %d
cpu: 1
  .hres_active    : %d
  .nohz           : %d
`

func TestHighResAndNoHZ(t *testing.T) {
	tl := func(h0, n0, h1, n1 int) string { return fmt.Sprintf(timerList, h0, n0, h1, n1) }
	cfg := parseConfig(noneConfig)
	judge(t, "high-res-timers", []verdict{
		{"active", checkHighRes(kernelInfo{timerList: tl(1, 1, 1, 1)}), OK, []string{"all 2 CPUs"}},
		{"partly", checkHighRes(kernelInfo{timerList: tl(1, 1, 0, 1)}), Warn, []string{"active on 1 CPUs, not on 1"}},
		{"inactive", checkHighRes(kernelInfo{timerList: tl(0, 0, 0, 0), config: cfg}), Fail, []string{"HZ 250"}},
		{"highres=off", checkHighRes(kernelInfo{cmdline: "highres=off", timerList: tl(1, 1, 1, 1)}), Fail, []string{"remove highres=off"}},
		{"config only", checkHighRes(kernelInfo{config: cfg}), OK, []string{"CONFIG_HIGH_RES_TIMERS"}},
		{"not built", checkHighRes(kernelInfo{config: parseConfig("# CONFIG_HIGH_RES_TIMERS is not set\nCONFIG_HZ=100")}), Fail, []string{"HZ 100"}},
		{"unknown", checkHighRes(kernelInfo{}), Warn, []string{"as root"}},
	})
	judge(t, "nohz", []verdict{
		{"tickless", checkNoHZ(kernelInfo{timerList: tl(1, 1, 1, 1)}), OK, []string{"2 CPUs"}},
		{"config", checkNoHZ(kernelInfo{config: cfg}), OK, []string{"CONFIG_NO_HZ"}},
		{"periodic", checkNoHZ(kernelInfo{timerList: tl(1, 0, 1, 0), config: parseConfig("CONFIG_HZ_PERIODIC=y\nCONFIG_HZ=1000")}), Warn, []string{"1000 times a second"}},
		{"nohz=off", checkNoHZ(kernelInfo{cmdline: "nohz=off", config: cfg}), Warn, []string{"remove nohz=off"}},
		{"unknown", checkNoHZ(kernelInfo{}), Warn, []string{"unknown"}},
	})
}

func TestClocksource(t *testing.T) {
	judge(t, "clocksource", []verdict{
		{"tsc", checkClocksource("tsc", "tsc kvm-clock"), OK, []string{"tsc"}},
		{"kvm", checkClocksource("kvm-clock", "kvm-clock"), OK, nil},
		{"hpet, tsc there", checkClocksource("hpet", "hpet tsc acpi_pm"), Warn, []string{"echo tsc >"}},
		{"hpet, no tsc", checkClocksource("hpet", "hpet acpi_pm"), Warn, []string{"tsc=reliable"}},
		{"unreadable", checkClocksource("", ""), Warn, []string{"unknown"}},
	})
}

func TestIsolated(t *testing.T) {
	if got, err := cpuList("0-2,5"); err != nil || fmt.Sprint(got) != "[0 1 2 5]" {
		t.Errorf("cpuList = %v, %v", got, err)
	}
	if _, err := cpuList("3-1"); err == nil {
		t.Error("cpuList accepted a backward range")
	}
	judge(t, "isolated-cpus", []verdict{
		{"none", checkIsolated("", "(null)", "0-3"), OK, []string{"none"}},
		{"isolated and tickless", checkIsolated("2-3", "2-3", "0-3"), OK, []string{"isolated 2-3, tickless"}},
		{"ticking", checkIsolated("2-3", "3", "0-3"), Warn, []string{"[2]", "nohz_full=2-3"}},
		{"all", checkIsolated("0-1", "0-1", "0-1"), Warn, []string{"every online CPU"}},
	})
}

func TestGovernorSMT(t *testing.T) {
	judge(t, "governor", []verdict{
		{"no cpufreq", checkGovernor(nil), OK, []string{"no cpufreq"}},
		{"performance", checkGovernor(map[string]string{"cpu0": "performance", "cpu1": "performance"}), OK, []string{"all 2 CPUs"}},
		{"mixed", checkGovernor(map[string]string{"cpu0": "performance", "cpu1": "powersave", "cpu2": "powersave"}), Warn,
			[]string{"powersave on cpu1,cpu2", "cpupower"}},
	})
	judge(t, "smt", []verdict{
		{"on", checkSMT("on", "1"), Warn, []string{"nosmt"}},
		{"off", checkSMT("off", "0"), OK, []string{"SMT off"}},
		{"none", checkSMT("notsupported", "0"), OK, []string{"no SMT"}},
	})
}

func TestCPUDMALatencyAndSwappiness(t *testing.T) {
	judge(t, "cpu-dma-latency", []verdict{
		{"writable", checkCPUDMALatency(nil, "haltpoll"), OK, []string{"idle driver haltpoll"}},
		{"missing", checkCPUDMALatency(fs.ErrNotExist, ""), Warn, []string{"max_cstate"}},
		{"root's", checkCPUDMALatency(&fs.PathError{Op: "open", Path: "/dev/cpu_dma_latency", Err: unix.EACCES}, "intel_idle"), Warn, []string{"udev rule"}},
		{"other", checkCPUDMALatency(unix.EIO, ""), Warn, []string{"input/output error"}},
	})
	judge(t, "swappiness", []verdict{
		{"low", checkSwappiness("10"), OK, nil},
		{"default", checkSwappiness("60"), Warn, []string{"vm.swappiness 60", "sysctl vm.swappiness=10"}},
		{"unreadable", checkSwappiness(""), Warn, []string{"unreadable"}},
	})
}

func TestHypervisorCPU(t *testing.T) {
	judge(t, "hypervisor", []verdict{
		{"bare", checkHypervisor(false, "", ""), OK, []string{"none"}},
		{"kvm", checkHypervisor(true, "KVMKVMKVM", "KVM"), Warn, []string{"KVM", "--latency 10s"}},
	})
	judge(t, "cpu", []verdict{
		{"known", checkCPU(cpuFacts{brand: "AMD EPYC", physical: 2, logical: 2, features: []string{"SSE2", "AVX2"}, l1d: 32 << 10, l2: 1 << 20, l3: -1}), OK,
			[]string{"AMD EPYC, 2 cores / 2 threads; SSE2 AVX2; L1d 32 KiB, L2 1 MiB, L3 ?"}},
		{"nothing", checkCPU(cpuFacts{}), Warn, []string{"CPUID told nothing"}},
	})
}

func TestAudioServers(t *testing.T) {
	stat := func(comm string, prio int) string {
		// pid (comm) then fields 3..41; rt_priority is field 40.
		f := make([]string, 39)
		for i := range f {
			f[i] = "0"
		}
		f[0] = "S"
		f[40-3] = fmt.Sprint(prio)
		f[41-3] = "1"
		return "123 (" + comm + ") " + strings.Join(f, " ")
	}
	if p, ok := statRTPrio(stat("data loop) x (", 88)); !ok || p != 88 {
		t.Errorf("statRTPrio = %d, %v; want 88", p, ok)
	}
	if _, ok := statRTPrio("123 (short) S 1 2"); ok {
		t.Error("statRTPrio read a truncated stat")
	}
	judge(t, "audio-server", []verdict{
		{"none", checkAudioServers(nil, nil, 80), OK, []string{"no JACK or PipeWire"}},
		{"below", checkAudioServers([]string{"/run/user/1000/pipewire-0"}, []serverProc{{"pipewire", 900, 20}}, 80), OK,
			[]string{"pipewire (pid 900, FIFO 20)", "pipewire-0"}},
		{"above", checkAudioServers(nil, []serverProc{{"jackd", 77, 95}}, 80), Warn, []string{"jackd at 95 outrank", "jackd -P"}},
		{"stale sockets", checkAudioServers([]string{"/dev/shm/jack_d_0_0_0", "/dev/shm/jack_c_0_0_0", "/dev/shm/jack_b_0_0_0", "/dev/shm/jack_a_0_0_0"}, nil, 80), OK,
			[]string{"sockets left behind", "jack_a_0_0_0, /dev/shm/jack_b_0_0_0, /dev/shm/jack_c_0_0_0, and 1 more"}},
	})
}

func TestWriteOneLineEach(t *testing.T) {
	var b strings.Builder
	fails := Write(&b, []Result{
		{Status: OK, Name: "a", Finding: "fine"},
		{Status: Fail, Name: "long-name", Finding: "broken\nacross lines", Fix: "mend it"},
		{Status: Warn, Name: "b", Finding: "meh"},
	})
	want := "ok    a          fine\nfail  long-name  broken across lines — fix: mend it\nwarn  b          meh\n"
	if fails != 1 || b.String() != want {
		t.Errorf("Write gave %d fails and\n%s\nwant 1 and\n%s", fails, b.String(), want)
	}
}
