package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/klauspost/cpuid/v2"
)

const cpuSys = "/sys/devices/system/cpu"

func readClocksource() Result {
	d := "/sys/devices/system/clocksource/clocksource0/"
	return checkClocksource(readTrimmed(d+"current_clocksource"), readTrimmed(d+"available_clocksource"))
}

// checkClocksource: every timestamp and every sleep's end goes through the
// clocksource; the good ones are read in user space (vDSO) in nanoseconds,
// the fallbacks (hpet, acpi_pm) cost a microsecond or more per read and a
// system call.
func checkClocksource(current, available string) Result {
	r := Result{Name: "clocksource"}
	switch current {
	case "tsc", "kvm-clock", "arch_sys_counter", "hyperv_clocksource_tsc_page", "riscv_clocksource":
		r.Finding = fmt.Sprintf("%s (available: %s)", current, available)
	case "":
		r.Status = Warn
		r.Finding = "unknown: /sys/devices/system/clocksource is unreadable"
	default:
		r.Status = Warn
		r.Finding = fmt.Sprintf("%s: slow to read, and read through a system call rather than the vDSO", current)
		if hasItem(strings.ReplaceAll(available, " ", ","), "tsc") {
			r.Fix = "`echo tsc > /sys/devices/system/clocksource/clocksource0/current_clocksource`"
		} else {
			r.Fix = "see `dmesg | grep -i clocksource` for why the TSC was rejected (tsc=reliable on the command line if you trust it)"
		}
	}
	return r
}

// cpuList parses a kernel CPU list ("0-3,8"); "(null)" and "" are empty.
func cpuList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "(null)" {
		return nil, nil
	}
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("CPU list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("CPU list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

func readIsolated() Result {
	return checkIsolated(readTrimmed(cpuSys+"/isolated"), readTrimmed(cpuSys+"/nohz_full"), readTrimmed(cpuSys+"/online"))
}

func checkIsolated(isolated, nohzFull, online string) Result {
	r := Result{Name: "isolated-cpus"}
	iso, _ := cpuList(isolated)
	nf, _ := cpuList(nohzFull)
	on, _ := cpuList(online)
	full := map[int]bool{}
	for _, c := range nf {
		full[c] = true
	}
	var ticking []int
	for _, c := range iso {
		if !full[c] {
			ticking = append(ticking, c)
		}
	}
	switch {
	case len(iso) == 0:
		r.Finding = "none: real-time threads share their CPUs with everything else (isolcpus= and nohz_full= with --cpu would reserve some)"
	case len(on) > 0 && len(iso) >= len(on):
		r.Status = Warn
		r.Finding = fmt.Sprintf("every online CPU is isolated (%s): ordinary threads, the Go runtime's among them, are left to whatever CPU they started on", isolated)
		r.Fix = "leave at least one CPU out of isolcpus="
	case len(ticking) > 0:
		r.Status = Warn
		r.Finding = fmt.Sprintf("isolated %s, but the tick still interrupts %v", isolated, ticking)
		r.Fix = fmt.Sprintf("add nohz_full=%s to the kernel command line", isolated)
	default:
		r.Finding = fmt.Sprintf("isolated %s, tickless (nohz_full %s)", isolated, nohzFull)
	}
	return r
}

func readGovernor() Result {
	govs := map[string]string{}
	paths, _ := filepath.Glob(cpuSys + "/cpu[0-9]*/cpufreq/scaling_governor")
	for _, p := range paths {
		govs[filepath.Base(filepath.Dir(filepath.Dir(p)))] = readTrimmed(p)
	}
	return checkGovernor(govs)
}

// checkGovernor takes each CPU's scaling governor (none: no cpufreq).
func checkGovernor(govs map[string]string) Result {
	r := Result{Name: "governor"}
	byGov := map[string][]string{}
	for cpu, g := range govs {
		byGov[g] = append(byGov[g], cpu)
	}
	var slow []string
	for g, cpus := range byGov {
		if g != "performance" {
			sort.Strings(cpus)
			slow = append(slow, fmt.Sprintf("%s on %s", g, strings.Join(cpus, ",")))
		}
	}
	sort.Strings(slow)
	switch {
	case len(govs) == 0:
		r.Finding = "no cpufreq: the frequency is the firmware's or the hypervisor's to set"
	case len(slow) == 0:
		r.Finding = fmt.Sprintf("performance on all %d CPUs", len(govs))
	default:
		r.Status = Warn
		r.Finding = "governor " + strings.Join(slow, "; ") + ": a CPU that just woke runs its first periods slowly"
		r.Fix = "`cpupower frequency-set -g performance` (or write performance to /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor)"
	}
	return r
}

func readSMT() Result {
	return checkSMT(readTrimmed(cpuSys+"/smt/control"), readTrimmed(cpuSys+"/smt/active"))
}

func checkSMT(control, active string) Result {
	r := Result{Name: "smt"}
	switch {
	case active == "1":
		r.Status = Warn
		r.Finding = "SMT is on: a sibling hardware thread shares a real-time thread's core and slows it unpredictably"
		r.Fix = "`echo off > /sys/devices/system/cpu/smt/control`, or nosmt on the kernel command line"
	case control == "notsupported" || control == "notimplemented" || control == "":
		r.Finding = "no SMT on this CPU (or not exposed to this kernel)"
	default:
		r.Finding = fmt.Sprintf("SMT off (%s)", control)
	}
	return r
}

func readCPUDMALatency() Result {
	_, statErr := os.Stat("/dev/cpu_dma_latency")
	var openErr error
	if statErr == nil {
		// Opening alone files a request of "no constraint", which closing
		// withdraws: nothing changes for the machine.
		f, err := os.OpenFile("/dev/cpu_dma_latency", os.O_WRONLY, 0)
		if err == nil {
			f.Close()
		}
		openErr = err
	} else {
		openErr = statErr
	}
	return checkCPUDMALatency(openErr, readTrimmed(cpuSys+"/cpuidle/current_driver"))
}

func checkCPUDMALatency(openErr error, idleDriver string) Result {
	r := Result{Name: "cpu-dma-latency"}
	idle := ""
	if idleDriver != "" {
		idle = " (idle driver " + idleDriver + ")"
	}
	switch {
	case openErr == nil:
		r.Finding = "/dev/cpu_dma_latency is writable: while playing, understudy keeps idle CPUs polling rather than halting" + idle
	case errors.Is(openErr, fs.ErrNotExist):
		r.Status = Warn
		r.Finding = "no /dev/cpu_dma_latency (no CPU latency PM QoS): idle CPUs may sleep deep and wake late" + idle
		r.Fix = "limit idle states on the command line (processor.max_cstate=1, or idle=poll)"
	case errors.Is(openErr, fs.ErrPermission):
		r.Status = Warn
		r.Finding = "/dev/cpu_dma_latency is root's: understudy cannot keep idle CPUs from halting, and a halted CPU (a descheduled vCPU, in a VM) wakes late" + idle
		r.Fix = "run as root, or a udev rule: KERNEL==\"cpu_dma_latency\", GROUP=\"audio\", MODE=\"0660\""
	default:
		r.Status = Warn
		r.Finding = fmt.Sprintf("/dev/cpu_dma_latency: %v%s", openErr, idle)
	}
	return r
}

func checkSwappiness(v string) Result {
	r := Result{Name: "swappiness"}
	n, err := strconv.Atoi(v)
	switch {
	case err != nil:
		r.Status = Warn
		r.Finding = fmt.Sprintf("vm.swappiness unreadable (%q)", v)
	case n > 10:
		r.Status = Warn
		r.Finding = fmt.Sprintf("vm.swappiness %d: the kernel swaps readily; locked pages stay, but everything else the host touches may page in slowly", n)
		r.Fix = "`sysctl vm.swappiness=10` (persist it in /etc/sysctl.d/)"
	default:
		r.Finding = fmt.Sprintf("vm.swappiness %d", n)
	}
	return r
}

func readHypervisor() Result {
	return checkHypervisor(cpuid.CPU.VM(), cpuid.CPU.HypervisorVendorString, cpuid.CPU.HypervisorVendorID.String())
}

func checkHypervisor(vm bool, vendorString, vendor string) Result {
	r := Result{Name: "hypervisor"}
	if !vm {
		r.Finding = "none (the CPUID hypervisor bit is clear)"
		return r
	}
	who := strings.TrimSpace(vendorString)
	if vendor != "" && vendor != "VendorUnknown" {
		who = vendor + ", " + who
	}
	r.Status = Warn
	r.Finding = fmt.Sprintf("running under a hypervisor (%s): it can stop a vCPU for milliseconds, which nothing inside the guest can prevent", who)
	r.Fix = "measure it with `understudy doctor --latency 10s`; on the host, give the guest dedicated, pinned cores, or run on bare metal"
	return r
}

// cpuFacts is what cpuid reports about the CPU.
type cpuFacts struct {
	brand             string
	physical, logical int
	features          []string // the ones kernels' variants use
	l1d, l2, l3       int      // bytes; <= 0 unknown
}

func readCPU() Result {
	c := cpuid.CPU
	f := cpuFacts{brand: c.BrandName, physical: c.PhysicalCores, logical: c.LogicalCores,
		l1d: c.Cache.L1D, l2: c.Cache.L2, l3: c.Cache.L3}
	for _, id := range []cpuid.FeatureID{cpuid.SSE2, cpuid.SSE4, cpuid.AVX, cpuid.AVX2, cpuid.FMA3, cpuid.AVX512F, cpuid.ASIMD} {
		if c.Supports(id) {
			f.features = append(f.features, id.String())
		}
	}
	return checkCPU(f)
}

func checkCPU(f cpuFacts) Result {
	r := Result{Name: "cpu"}
	if f.brand == "" && len(f.features) == 0 {
		r.Status = Warn
		r.Finding = "CPUID told nothing: kernel variants fall back to scalar"
		return r
	}
	cache := func(name string, b int) string {
		if b <= 0 {
			return name + " ?"
		}
		return name + " " + bytesText(uint64(b))
	}
	feats := "none of SSE2/AVX/AVX2/FMA3/AVX512F/ASIMD"
	if len(f.features) > 0 {
		feats = strings.Join(f.features, " ")
	}
	r.Finding = fmt.Sprintf("%s, %d cores / %d threads; %s; %s, %s, %s",
		strings.TrimSpace(f.brand), f.physical, f.logical, feats, cache("L1d", f.l1d), cache("L2", f.l2), cache("L3", f.l3))
	return r
}
