package rt

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Privileges is what Probe found. The zero value means "nothing allowed".
type Privileges struct {
	FIFO    bool      // may set SCHED_FIFO at the probed priority
	MaxFIFO int       // highest SCHED_FIFO priority allowed (0 = none)
	MemLock bool      // LockMemory should succeed and leave room to grow
	Missing []Missing // one entry per missing privilege; empty when FIFO and MemLock

	// RTThrottle is /proc/sys/kernel/sched_rt_runtime_us verbatim ("" if
	// unreadable). The default 950000 reserves 5% of each second for
	// ordinary threads; "-1" disables that, so a runaway FIFO spinner can
	// starve the whole machine.
	RTThrottle string
	// CgroupRTRuntime is cpu.rt_runtime_us of this process's cgroup-v1 cpu
	// controller ("" when not applicable). "0" refuses SCHED_FIFO even to
	// root, as in a Docker container started without --cpu-rt-runtime.
	CgroupRTRuntime string

	Root         bool   // effective uid 0 (capabilities decide, not this)
	CapSysNice   bool   // effective CAP_SYS_NICE that the kernel honours for SCHED_FIFO
	CapIPCLock   bool   // effective CAP_IPC_LOCK that the kernel honours for mlock
	UserNS       bool   // in a non-initial user namespace, whose capabilities SCHED_FIFO and mlock ignore
	RTPrioLimit  uint64 // soft RLIMIT_RTPRIO (unix.RLIM_INFINITY = unlimited)
	MemLockLimit uint64 // soft RLIMIT_MEMLOCK in bytes (unix.RLIM_INFINITY = unlimited)
	MemLockNeed  uint64 // RLIMIT_MEMLOCK bytes the host's locking needs without CAP_IPC_LOCK (MemLockNeed)
	Prio         int    // the priority FIFO was probed for
}

// Missing is one privilege the process lacks.
type Missing struct {
	What string // what is missing, e.g. "RLIMIT_RTPRIO is 0 and no CAP_SYS_NICE"
	Fix  string // how to grant it
}

// Probe reports what real-time privileges this process has, without changing
// anything. FIFO means SCHED_FIFO at any priority; MaxFIFO says how high. Use
// ProbeFor to ask about a specific priority.
func Probe() Privileges { return ProbeFor(FIFOMin) }

// ProbeFor is Probe for SCHED_FIFO at prio (clamped to FIFOMin..FIFOMax).
func ProbeFor(prio int) Privileges { return ProbeLock(prio, DefaultShared) }

// ProbeLock is ProbeFor for a host whose real-time threads will also lock
// shared bytes of shared memory (its region and clock), so that MemLock and
// the warning speak of what this host will actually lock.
func ProbeLock(prio int, shared uint64) Privileges {
	prio = max(FIFOMin, min(prio, FIFOMax))
	p := Privileges{
		Prio:            prio,
		Root:            unix.Geteuid() == 0,
		UserNS:          !initialUserNS(),
		RTPrioLimit:     rlimit(unix.RLIMIT_RTPRIO),
		MemLockLimit:    rlimit(unix.RLIMIT_MEMLOCK),
		RTThrottle:      readTrimmed("/proc/sys/kernel/sched_rt_runtime_us"),
		CgroupRTRuntime: cgroupRTRuntime(),
	}
	caps := effectiveCaps()
	p.CapSysNice = honouredCap(unix.CAP_SYS_NICE)
	p.CapIPCLock = honouredCap(unix.CAP_IPC_LOCK)

	if p.CapSysNice || p.RTPrioLimit >= FIFOMax {
		p.MaxFIFO = FIFOMax
	} else {
		p.MaxFIFO = int(p.RTPrioLimit)
	}
	p.FIFO = p.fifoByPrivilege() && p.CgroupRTRuntime != "0"
	if !p.fifoByPrivilege() {
		what := fmt.Sprintf("RLIMIT_RTPRIO is %d and no CAP_SYS_NICE", p.RTPrioLimit)
		if p.RTPrioLimit > 0 {
			what = fmt.Sprintf("RLIMIT_RTPRIO is %d (below priority %d) and no CAP_SYS_NICE", p.RTPrioLimit, prio)
		}
		if p.UserNS && caps&(1<<unix.CAP_SYS_NICE) != 0 {
			what += " (CAP_SYS_NICE is held only inside a user namespace)"
		}
		p.Missing = append(p.Missing, Missing{What: what, Fix: fixRTPrio()})
	}
	if p.CgroupRTRuntime == "0" {
		p.Missing = append(p.Missing, Missing{
			What: "this cgroup has no real-time budget (cpu.rt_runtime_us is 0)",
			Fix:  fixCgroupRT,
		})
	}

	p.MemLockNeed = MemLockNeed(shared)
	p.MemLock = p.CapIPCLock || p.MemLockLimit == unix.RLIM_INFINITY || p.MemLockLimit >= p.MemLockNeed
	if !p.MemLock {
		what := fmt.Sprintf("RLIMIT_MEMLOCK is %s, below the %s the real-time threads' memory needs, and no CAP_IPC_LOCK",
			mib(p.MemLockLimit), mib(p.MemLockNeed))
		if p.UserNS && caps&(1<<unix.CAP_IPC_LOCK) != 0 {
			what += " (CAP_IPC_LOCK is held only inside a user namespace)"
		}
		p.Missing = append(p.Missing, Missing{What: what, Fix: FixMemLock(p.MemLockNeed)})
	}
	return p
}

func (p Privileges) fifoByPrivilege() bool { return p.MaxFIFO >= p.Prio }

// Warning is "" when nothing is missing, else one line for the log naming
// every missing privilege, how to grant it, and what we fall back to.
func (p Privileges) Warning() string {
	if len(p.Missing) == 0 {
		return ""
	}
	var fallback []string
	if !p.FIFO {
		fallback = append(fallback, "on ordinary scheduling (SCHED_OTHER)")
	}
	if !p.MemLock {
		fallback = append(fallback, "with unlocked memory (page faults can stall audio threads)")
	}
	parts := make([]string, len(p.Missing))
	for i, m := range p.Missing {
		parts[i] = m.What + " (fix: " + m.Fix + ")"
	}
	s := "rt: running " + strings.Join(fallback, " and ") + ": " + strings.Join(parts, "; ")
	return strings.Join(strings.Fields(s), " ")
}

func rlimit(res int) uint64 {
	var r unix.Rlimit
	if unix.Getrlimit(res, &r) != nil {
		return 0
	}
	return r.Cur
}

// effectiveCaps returns the effective capability set as seen in this
// process's own user namespace; 0 if it cannot be read.
func effectiveCaps() uint64 {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	// Version 3 always transfers two 32-bit words, even though the two
	// capabilities we care about are both in the first.
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) != nil {
		return 0
	}
	return uint64(data[1].Effective)<<32 | uint64(data[0].Effective)
}

// honouredCap reports whether we hold capability c in a way that counts for
// sched_setattr and mlock: they check against the initial user namespace, so
// "root" inside a container's own namespace holds c only there.
func honouredCap(c int) bool {
	return effectiveCaps()&(1<<c) != 0 && initialUserNS()
}

// initialUserNS reports whether we run in the initial user namespace, whose
// uid_map is the identity over the whole range. Kernels without user
// namespaces have no uid_map and only the initial namespace.
func initialUserNS() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	return len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295"
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// cgroupRTRuntime finds cpu.rt_runtime_us for this process's cgroup-v1 cpu
// hierarchy. cgroup v2 has no per-group RT budget, so there it is "".
func cgroupRTRuntime() string {
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	cgPath := CgroupV1CPU(string(cg))
	if cgPath == "" {
		return ""
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	for _, dir := range CgroupV1Dirs(string(mi), cgPath) {
		if v := readTrimmed(filepath.Join(dir, "cpu.rt_runtime_us")); v != "" {
			return v
		}
	}
	return ""
}

// CgroupV1CPU is this process's path in the cgroup-v1 hierarchy that has
// the cpu controller, from the text of /proc/self/cgroup: "" under cgroup
// v2 (no per-group real-time budget there) or without that controller.
func CgroupV1CPU(procCgroup string) string {
	for _, line := range strings.Split(procCgroup, "\n") {
		// hierarchy-ID:controller-list:path
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && f[0] != "0" && hasController(f[1], "cpu") {
			return f[2]
		}
	}
	return ""
}

// CgroupV1Dirs are the directories where cgPath of the cpu hierarchy
// appears in the file system, in mount order, from the text of
// /proc/self/mountinfo.
func CgroupV1Dirs(mountinfo, cgPath string) []string {
	var dirs []string
	for _, line := range strings.Split(mountinfo, "\n") {
		// id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		pf, sf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(sf) < 3 || sf[0] != "cgroup" || !hasController(sf[2], "cpu") {
			continue
		}
		// The mount may expose only a subtree (cgroup namespaces, bind
		// mounts into containers); our path is relative to the hierarchy.
		rel, ok := strings.CutPrefix(cgPath, pf[3])
		if !ok {
			continue
		}
		dirs = append(dirs, strings.TrimSuffix(unescapeMount(pf[4]), "/")+"/"+strings.TrimPrefix(rel, "/"))
	}
	return dirs
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escaping of spaces and the like.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
