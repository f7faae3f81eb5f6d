package doctor

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/rt"
)

// kernelInfo is what the kernel checks read. Any field may be empty when
// its file is missing or unreadable (debugfs unmounted, /proc/timer_list
// being root's, no config shipped).
type kernelInfo struct {
	version   string // uname -v: "#1 SMP PREEMPT_DYNAMIC ..."
	release   string // uname -r
	cmdline   string // /proc/cmdline
	config    map[string]string
	preemptFS string // /sys/kernel/debug/sched/preempt: "none (voluntary) full"
	timerList string // /proc/timer_list
}

func readKernel() kernelInfo {
	var k kernelInfo
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		k.version = unix.ByteSliceToString(u.Version[:])
		k.release = unix.ByteSliceToString(u.Release[:])
	}
	k.cmdline = readTrimmed("/proc/cmdline")
	k.preemptFS = readTrimmed("/sys/kernel/debug/sched/preempt")
	k.timerList = readTrimmed("/proc/timer_list")
	k.config = readConfig(k.release)
	return k
}

func readConfig(release string) map[string]string {
	if f, err := os.Open("/proc/config.gz"); err == nil {
		defer f.Close()
		if z, err := gzip.NewReader(f); err == nil {
			if b, err := io.ReadAll(z); err == nil {
				return parseConfig(string(b))
			}
		}
	}
	if b, err := os.ReadFile("/boot/config-" + release); err == nil {
		return parseConfig(string(b))
	}
	return nil
}

// parseConfig maps CONFIG_X to its value; "n" for "# CONFIG_X is not set",
// so absent (unknown) and off are told apart.
func parseConfig(text string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if name, ok := strings.CutPrefix(line, "# "); ok {
			if name, ok = strings.CutSuffix(name, " is not set"); ok {
				m[name] = "n"
			}
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "CONFIG_") {
			m[k] = strings.Trim(v, `"`)
		}
	}
	return m
}

// cmdlineArgs is the kernel's own part of the command line: what follows
// "--" goes to init.
func cmdlineArgs(cmdline string) []string {
	f := strings.Fields(cmdline)
	for i, a := range f {
		if a == "--" {
			return f[:i]
		}
	}
	return f
}

// cmdlineValue is the last value given to key= (the kernel takes the last),
// and whether key appears at all, bare or with a value.
func cmdlineValue(cmdline, key string) (string, bool) {
	v, found := "", false
	for _, a := range cmdlineArgs(cmdline) {
		if a == key {
			v, found = "", true
		} else if rest, ok := strings.CutPrefix(a, key+"="); ok {
			v, found = rest, true
		}
	}
	return v, found
}

func (k kernelInfo) rt() bool {
	return strings.Contains(k.version, "PREEMPT_RT") || k.config["CONFIG_PREEMPT_RT"] == "y"
}

func (k kernelInfo) dynamic() bool {
	return k.preemptFS != "" || strings.Contains(k.version, "PREEMPT_DYNAMIC") || k.config["CONFIG_PREEMPT_DYNAMIC"] == "y"
}

// preemptMode is the preemption model in force and where it was read.
func preemptMode(k kernelInfo) (mode, source string) {
	if k.rt() {
		return "rt", "PREEMPT_RT kernel"
	}
	if k.preemptFS != "" {
		for _, w := range strings.Fields(k.preemptFS) {
			if strings.HasPrefix(w, "(") && strings.HasSuffix(w, ")") {
				return strings.Trim(w, "()"), "/sys/kernel/debug/sched/preempt"
			}
		}
	}
	if k.dynamic() {
		if v, ok := cmdlineValue(k.cmdline, "preempt"); ok && v != "" {
			return v, "preempt=" + v + " on the command line"
		}
	}
	switch {
	case k.config["CONFIG_PREEMPT_LAZY"] == "y":
		return "lazy", "CONFIG_PREEMPT_LAZY"
	case k.config["CONFIG_PREEMPT"] == "y":
		return "full", "CONFIG_PREEMPT"
	case k.config["CONFIG_PREEMPT_VOLUNTARY"] == "y":
		return "voluntary", "CONFIG_PREEMPT_VOLUNTARY"
	case k.config["CONFIG_PREEMPT_NONE"] == "y":
		return "none", "CONFIG_PREEMPT_NONE"
	}
	if !k.dynamic() {
		for _, w := range strings.Fields(k.version) {
			if w == "PREEMPT" {
				return "full", "uname -v"
			}
		}
	}
	return "", ""
}

func checkPreempt(k kernelInfo) Result {
	r := Result{Name: "preempt"}
	mode, src := preemptMode(k)
	fix := "install a kernel built with CONFIG_PREEMPT or PREEMPT_RT (Debian: linux-image-rt-amd64; Ubuntu: linux-lowlatency)"
	if k.dynamic() {
		fix = "add preempt=full to the kernel command line (this kernel is PREEMPT_DYNAMIC), or now: `mount -t debugfs none /sys/kernel/debug; echo full > /sys/kernel/debug/sched/preempt`"
	}
	switch mode {
	case "rt":
		r.Finding = "PREEMPT_RT: the kernel preempts almost anywhere, interrupts run in threads"
	case "full", "lazy":
		r.Finding = fmt.Sprintf("preemption %s (%s): a woken real-time thread preempts kernel code at once", mode, src)
	case "none", "voluntary":
		r.Status = Warn
		r.Finding = fmt.Sprintf("preemption %s (%s): a real-time thread waits until kernel code running on its CPU yields, milliseconds at worst", mode, src)
		r.Fix = fix
	default:
		r.Status = Warn
		r.Finding = "preemption model unknown (no debugfs, no preempt= on the command line, no kernel config)"
		r.Fix = "check `uname -v` for PREEMPT or PREEMPT_RT; " + fix
	}
	return r
}

func checkThreadIRQs(k kernelInfo) Result {
	r := Result{Name: "threadirqs"}
	_, on := cmdlineValue(k.cmdline, "threadirqs")
	switch {
	case k.rt():
		r.Finding = "PREEMPT_RT runs interrupt handlers in threads"
	case on:
		r.Finding = "threadirqs: interrupt handlers run in threads, below the audio threads' priority"
	case k.config["CONFIG_IRQ_FORCED_THREADING"] == "n":
		r.Status = Warn
		r.Finding = "interrupt handlers run ahead of every thread, and this kernel cannot thread them (CONFIG_IRQ_FORCED_THREADING is off)"
		r.Fix = "a kernel with CONFIG_IRQ_FORCED_THREADING (most distribution kernels) booted with threadirqs"
	default:
		r.Status = Warn
		r.Finding = "interrupt handlers run in interrupt context, ahead of every real-time thread"
		r.Fix = "add threadirqs to the kernel command line"
	}
	return r
}

// timerListField counts per-CPU values of a /proc/timer_list field, such as
// ".hres_active : 1".
func timerListField(text, field string) (on, off int) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok || strings.TrimSpace(k) != field {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			if n != 0 {
				on++
			} else {
				off++
			}
		}
	}
	return on, off
}

func checkHighRes(k kernelInfo) Result {
	r := Result{Name: "high-res-timers"}
	on, off := timerListField(k.timerList, ".hres_active")
	hz := k.config["CONFIG_HZ"]
	lowFix := "a kernel with CONFIG_HIGH_RES_TIMERS, without highres=off on the command line"
	if v, _ := cmdlineValue(k.cmdline, "highres"); v == "off" {
		r.Status = Fail
		r.Finding = "highres=off on the command line: sleeps end on the tick, not on time"
		r.Fix = "remove highres=off from the kernel command line"
		return r
	}
	switch {
	case on > 0 && off == 0:
		r.Finding = fmt.Sprintf("active on all %d CPUs (/proc/timer_list)", on)
	case on > 0:
		r.Status = Warn
		r.Finding = fmt.Sprintf("active on %d CPUs, not on %d (/proc/timer_list)", on, off)
		r.Fix = "check the clock event devices in /proc/timer_list"
	case off > 0:
		r.Status = Fail
		r.Finding = fmt.Sprintf("inactive (/proc/timer_list): sleeps end on the tick (HZ %s), not on time", hz)
		r.Fix = lowFix
	case k.config["CONFIG_HIGH_RES_TIMERS"] == "y":
		r.Finding = "configured (CONFIG_HIGH_RES_TIMERS; /proc/timer_list, which says whether they are active, is root's)"
	case k.config["CONFIG_HIGH_RES_TIMERS"] == "n":
		r.Status = Fail
		r.Finding = fmt.Sprintf("not built into this kernel: sleeps end on the tick (HZ %s), not on time", hz)
		r.Fix = lowFix
	default:
		r.Status = Warn
		r.Finding = "unknown: neither /proc/timer_list nor the kernel config is readable"
		r.Fix = "run doctor as root to read /proc/timer_list"
	}
	return r
}

func checkNoHZ(k kernelInfo) Result {
	r := Result{Name: "nohz"}
	on, off := timerListField(k.timerList, ".nohz")
	if v, _ := cmdlineValue(k.cmdline, "nohz"); v == "off" {
		r.Status = Warn
		r.Finding = "nohz=off on the command line: every CPU takes the tick even when idle"
		r.Fix = "remove nohz=off from the kernel command line"
		return r
	}
	switch {
	case on > 0:
		r.Finding = fmt.Sprintf("tickless idle on %d CPUs (/proc/timer_list)", on)
	case k.config["CONFIG_NO_HZ_FULL"] == "y" || k.config["CONFIG_NO_HZ_IDLE"] == "y":
		r.Finding = "tickless idle configured (CONFIG_NO_HZ_IDLE/FULL)"
	case off > 0 || k.config["CONFIG_HZ_PERIODIC"] == "y":
		r.Status = Warn
		r.Finding = fmt.Sprintf("periodic tick: every CPU is interrupted %s times a second, idle or not", k.config["CONFIG_HZ"])
		r.Fix = "a kernel with CONFIG_NO_HZ_IDLE (most distribution kernels)"
	default:
		r.Status = Warn
		r.Finding = "unknown: neither /proc/timer_list nor the kernel config is readable"
		r.Fix = "run doctor as root to read /proc/timer_list"
	}
	return r
}

func checkRTThrottle(runtimeUS, periodUS string) Result {
	r := Result{Name: "rt-throttle"}
	rtu, err1 := strconv.ParseInt(runtimeUS, 10, 64)
	per, err2 := strconv.ParseInt(periodUS, 10, 64)
	switch {
	case err1 != nil:
		r.Status = Warn
		r.Finding = fmt.Sprintf("sched_rt_runtime_us unreadable (%q)", runtimeUS)
	case rtu == -1:
		r.Status = Warn
		r.Finding = "sched_rt_runtime_us is -1: nothing throttles real-time threads, so one that spins (a user kernel gone wrong before its worker is killed) can freeze a CPU"
		r.Fix = "`sysctl kernel.sched_rt_runtime_us=950000` (the default), unless a real-time thread must own a CPU outright"
	case rtu == 0:
		r.Status = Fail
		r.Finding = "sched_rt_runtime_us is 0: real-time threads get no CPU time"
		r.Fix = "`sysctl kernel.sched_rt_runtime_us=950000`"
	case err2 != nil || per <= 0:
		r.Finding = fmt.Sprintf("real-time threads may use %d µs of each period", rtu)
	case rtu*2 < per:
		r.Status = Warn
		r.Finding = fmt.Sprintf("real-time threads may use only %d of every %d µs, then all stop until the next period", rtu, per)
		r.Fix = "`sysctl kernel.sched_rt_runtime_us=950000`"
	default:
		r.Finding = fmt.Sprintf("real-time threads may use %d%% of each %d ms (the rest is kept for ordinary threads)", rtu*100/per, per/1000)
	}
	return r
}

// cgroupV1CPU is this process's path in the cgroup-v1 cpu hierarchy, as
// rt reads it for its own probe.
func cgroupV1CPU(procCgroup string) string { return rt.CgroupV1CPU(procCgroup) }

// cgroupV1Dir is where cgPath of the cpu hierarchy appears in the file
// system (the first mount of it); "" if not mounted.
func cgroupV1Dir(mountinfo, cgPath string) string {
	if dirs := rt.CgroupV1Dirs(mountinfo, cgPath); len(dirs) > 0 {
		return dirs[0]
	}
	return ""
}

func hasItem(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

func readCgroupRT() Result {
	path := cgroupV1CPU(readTrimmed("/proc/self/cgroup"))
	dir := ""
	if path != "" {
		dir = cgroupV1Dir(readTrimmed("/proc/self/mountinfo"), path)
	}
	value := ""
	if dir != "" {
		value = readTrimmed(strings.TrimSuffix(dir, "/") + "/cpu.rt_runtime_us")
	}
	return checkCgroupRT(path, dir, value)
}

// checkCgroupRT judges the cgroup-v1 cpu group's real-time budget. A new v1
// cpu group starts with none (cpu.rt_runtime_us 0) when the kernel has
// CONFIG_RT_GROUP_SCHED, and then refuses SCHED_FIFO even to root.
func checkCgroupRT(path, dir, value string) Result {
	r := Result{Name: "cgroup-rt"}
	switch {
	case path == "":
		r.Finding = "no cgroup-v1 cpu controller over this process: no per-group real-time budget applies"
	case value == "":
		r.Finding = fmt.Sprintf("cpu cgroup %s has no cpu.rt_runtime_us (no RT group scheduling)", path)
	case value == "0":
		r.Status = Fail
		r.Finding = fmt.Sprintf("cpu cgroup %s has cpu.rt_runtime_us 0: it refuses SCHED_FIFO, even to root", path)
		r.Fix = fmt.Sprintf("`echo 950000 > %s/cpu.rt_runtime_us` (each parent first; Docker: --cpu-rt-runtime=950000), or start understudy in the root cpu group", strings.TrimSuffix(dir, "/"))
	default:
		r.Finding = fmt.Sprintf("cpu cgroup %s has a real-time budget of %s µs per period", path, value)
	}
	return r
}
