package doctor

import (
	"bufio"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/understudy-rt/understudy/rt"
)

const unlimited = unix.RLIM_INFINITY

// hostLimits is what this process, the would-be host, may do.
type hostLimits struct {
	rtprio, memlock, rtTime uint64 // soft limits; unlimited = RLIM_INFINITY
	memlockNeed             uint64 // what the host's locking needs without CAP_IPC_LOCK
	capSysNice, capIPCLock  bool   // held, and honoured by the kernel (initial user namespace)
	userNS                  bool   // capabilities held only inside a user namespace
	user                    string
}

func readHostLimits() hostLimits {
	p := rt.Probe()
	h := hostLimits{
		rtprio: p.RTPrioLimit, memlock: p.MemLockLimit, memlockNeed: p.MemLockNeed,
		capSysNice: p.CapSysNice, capIPCLock: p.CapIPCLock, userNS: p.UserNS,
		rtTime: unlimited, user: currentUser(),
	}
	var r unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_RTTIME, &r) == nil {
		h.rtTime = r.Cur
	}
	return h
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return strconv.Itoa(os.Getuid())
}

func limitText(v uint64, unit func(uint64) string) string {
	if v == unlimited {
		return "unlimited"
	}
	return unit(v)
}

func plain(v uint64) string { return strconv.FormatUint(v, 10) }

// bytesText rounds up, so a need is never understated.
func bytesText(b uint64) string {
	switch {
	case b < 1<<10:
		return fmt.Sprintf("%d B", b)
	case b < 1<<20:
		return fmt.Sprintf("%d KiB", (b+(1<<10)-1)>>10)
	default:
		return fmt.Sprintf("%d MiB", (b+(1<<20)-1)>>20)
	}
}

func limitsFix(user, item, value, systemd string) string {
	return fmt.Sprintf("add `%s - %s %s` to /etc/security/limits.d/95-understudy.conf (or `@audio - %s %s` and join the audio group) and log in again; under systemd, %s",
		user, item, value, item, value, systemd)
}

func checkRTPrio(h hostLimits, prio int) Result {
	r := Result{Name: "rtprio"}
	switch {
	case h.capSysNice:
		r.Finding = fmt.Sprintf("CAP_SYS_NICE: SCHED_FIFO up to 99 for the host, and for its workers (it sets their priority itself); RLIMIT_RTPRIO %s", limitText(h.rtprio, plain))
	case h.rtprio == unlimited || h.rtprio >= uint64(prio):
		r.Finding = fmt.Sprintf("RLIMIT_RTPRIO %s covers the monitor's priority %d", limitText(h.rtprio, plain), prio)
	default:
		r.Status = Fail
		r.Finding = fmt.Sprintf("RLIMIT_RTPRIO is %d for %s, below the monitor's priority %d, and no CAP_SYS_NICE", h.rtprio, h.user, prio)
		if h.userNS {
			r.Finding += " (capabilities inside a user namespace do not count)"
		}
		r.Fix = limitsFix(h.user, "rtprio", "95", "LimitRTPRIO=95") + "; or `setcap cap_sys_nice+ep` on the understudy binary"
	}
	return r
}

func checkMemLock(h hostLimits) Result {
	r := Result{Name: "memlock"}
	switch {
	case h.capIPCLock:
		r.Finding = fmt.Sprintf("CAP_IPC_LOCK: the host may lock any amount; RLIMIT_MEMLOCK %s", limitText(h.memlock, bytesText))
	case h.memlock == unlimited || h.memlock >= h.memlockNeed:
		r.Finding = fmt.Sprintf("RLIMIT_MEMLOCK %s covers the %s the host locks", limitText(h.memlock, bytesText), bytesText(h.memlockNeed))
	default:
		r.Status = Fail
		r.Finding = fmt.Sprintf("RLIMIT_MEMLOCK is %s for %s, below the %s the host locks, and no CAP_IPC_LOCK: page faults can stall the audio threads",
			bytesText(h.memlock), h.user, bytesText(h.memlockNeed))
		if h.userNS {
			r.Finding += " (capabilities inside a user namespace do not count)"
		}
		// limits.conf counts KiB; ask for whole MiB, as rt's own warning does.
		mb := (h.memlockNeed + (1 << 20) - 1) >> 20
		r.Fix = limitsFix(h.user, "memlock", fmt.Sprint(mb<<10), fmt.Sprintf("LimitMEMLOCK=%dM", mb)) + "; or `setcap cap_ipc_lock+ep` on the understudy binary"
	}
	return r
}

// checkRTTime judges RLIMIT_RTTIME: the CPU time, in µs, a real-time thread
// may use without blocking before the kernel sends SIGXCPU and then SIGKILL.
// Our threads block every period, a worker after its spin; a limit near that
// kills a healthy thread on one slow period.
func checkRTTime(limitUS uint64, period time.Duration, spinUS int) Result {
	r := Result{Name: "rttime"}
	busy := uint64(period.Microseconds()) + uint64(spinUS)
	switch {
	case limitUS == unlimited:
		r.Finding = "RLIMIT_RTTIME unlimited"
	case limitUS < busy:
		r.Status = Fail
		r.Finding = fmt.Sprintf("RLIMIT_RTTIME is %d µs, less than one period and a worker's spin (%d µs): the kernel will kill real-time threads", limitUS, busy)
		r.Fix = "raise it (`ulimit -R unlimited` in the starting shell, `LimitRTTIME=infinity` under systemd, or the `rttime` item in limits.d)"
	case limitUS < 10*busy:
		r.Status = Warn
		r.Finding = fmt.Sprintf("RLIMIT_RTTIME is %d µs, within 10 periods (%d µs): one slow stretch kills a healthy real-time thread", limitUS, 10*busy)
		r.Fix = "raise it (`ulimit -R unlimited`, or `LimitRTTIME=infinity` under systemd)"
	default:
		r.Finding = fmt.Sprintf("RLIMIT_RTTIME %d µs: a thread that spins that long without sleeping is killed", limitUS)
	}
	return r
}

// audioGroup is what checkAudioGroup reads: whether the user is in the
// audio group, and what limits.d grants that group.
type audioGroup struct {
	root   bool
	user   string
	gid    int // -1: no such group
	groups []int
	limits string // /etc/security/limits.conf and limits.d/*.conf, concatenated
}

func readAudioGroup() Result {
	a := audioGroup{root: os.Geteuid() == 0, user: currentUser(), gid: -1}
	if g, err := user.LookupGroup("audio"); err == nil {
		a.gid, _ = strconv.Atoi(g.Gid)
	}
	a.groups, _ = unix.Getgroups()
	a.groups = append(a.groups, os.Getegid())
	var b strings.Builder
	files, _ := filepath.Glob("/etc/security/limits.d/*.conf")
	for _, f := range append([]string{"/etc/security/limits.conf"}, files...) {
		if data, err := os.ReadFile(f); err == nil {
			b.Write(data)
			b.WriteByte('\n')
		}
	}
	a.limits = b.String()
	return checkAudioGroup(a)
}

func checkAudioGroup(a audioGroup) Result {
	r := Result{Name: "audio-group"}
	member := false
	for _, g := range a.groups {
		member = member || (a.gid >= 0 && g == a.gid)
	}
	grants := limitsGrant(a.limits, "@audio", "rtprio")
	switch {
	case a.root:
		r.Finding = "running as root, which needs no group"
	case a.gid < 0:
		r.Status = Warn
		r.Finding = "this system has no audio group, the usual way to grant real-time limits to a user"
		r.Fix = fmt.Sprintf("`groupadd audio && usermod -aG audio %s`, and `@audio - rtprio 95` and `@audio - memlock unlimited` in /etc/security/limits.d/95-audio.conf", a.user)
	case !member:
		r.Status = Warn
		r.Finding = fmt.Sprintf("%s is not in the audio group (or joined it after this login)", a.user)
		r.Fix = fmt.Sprintf("`usermod -aG audio %s` and log in again", a.user)
	case !grants:
		r.Status = Warn
		r.Finding = fmt.Sprintf("%s is in the audio group, but no limits file grants @audio an rtprio", a.user)
		r.Fix = "add `@audio - rtprio 95` and `@audio - memlock unlimited` to /etc/security/limits.d/95-audio.conf and log in again"
	default:
		r.Finding = fmt.Sprintf("%s is in the audio group, which limits.d grants rtprio", a.user)
	}
	return r
}

// limitsGrant reports whether a limits.conf text has a line for domain and
// item: "<domain> <type> <item> <value>".
func limitsGrant(text, domain, item string) bool {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == domain && f[2] == item && f[3] != "0" {
			return true
		}
	}
	return false
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
