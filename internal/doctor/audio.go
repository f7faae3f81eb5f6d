package doctor

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// serverProc is an audio server process and the highest SCHED_FIFO/RR
// priority among its threads (0: none real-time).
type serverProc struct {
	name    string
	pid     int
	maxPrio int
}

// audioServerNames are the processes that own the sound card on Linux
// desktops and studios.
var audioServerNames = map[string]bool{
	"jackd": true, "jackdbus": true, "pipewire": true, "pipewire-pulse": true, "pulseaudio": true,
}

func readAudioServers(monitorPrio int) Result {
	runDir := os.Getenv("XDG_RUNTIME_DIR")
	if runDir == "" {
		runDir = "/run/user/" + strconv.Itoa(os.Getuid())
	}
	var sockets []string
	for _, p := range []string{filepath.Join(runDir, "pipewire-0"), filepath.Join(runDir, "pulse", "native")} {
		if _, err := os.Stat(p); err == nil {
			sockets = append(sockets, p)
		}
	}
	// JACK2's server sockets are /dev/shm/jack_<server>_<uid>_<n>_0 (its
	// semaphores and registry sit beside them as plain files).
	if ents, err := os.ReadDir("/dev/shm"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "jack_") && e.Type()&fs.ModeSocket != 0 {
				sockets = append(sockets, filepath.Join("/dev/shm", e.Name()))
			}
		}
	}
	var procs []serverProc
	pids, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range pids {
		name := readTrimmed(p + "/comm")
		if !audioServerNames[name] {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(p))
		sp := serverProc{name: name, pid: pid}
		tasks, _ := filepath.Glob(p + "/task/[0-9]*/stat")
		for _, t := range tasks {
			if prio, ok := statRTPrio(readTrimmed(t)); ok {
				sp.maxPrio = max(sp.maxPrio, prio)
			}
		}
		procs = append(procs, sp)
	}
	return checkAudioServers(sockets, procs, monitorPrio)
}

// statRTPrio reads rt_priority (field 40 of /proc/<pid>/stat, counting from
// 1). The command name, field 2, may hold spaces and parentheses, so fields
// are counted from the last ')'.
func statRTPrio(stat string) (int, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3
	if len(f) < 40-2 {
		return 0, false
	}
	n, err := strconv.Atoi(f[40-3])
	return n, err == nil
}

func checkAudioServers(sockets []string, procs []serverProc, monitorPrio int) Result {
	r := Result{Name: "audio-server"}
	if len(sockets) == 0 && len(procs) == 0 {
		r.Finding = "no JACK or PipeWire server: understudy's own clock paces the audio"
		return r
	}
	sort.Strings(sockets)
	if len(sockets) > 3 {
		sockets = append(sockets[:3], fmt.Sprintf("and %d more", len(sockets)-3))
	}
	if len(procs) == 0 {
		r.Finding = "no JACK or PipeWire process, but sockets left behind (stale, or a server in another PID namespace): " + strings.Join(sockets, ", ")
		return r
	}
	var found, above []string
	for _, p := range procs {
		found = append(found, fmt.Sprintf("%s (pid %d, FIFO %d)", p.name, p.pid, p.maxPrio))
		if p.maxPrio >= monitorPrio {
			above = append(above, fmt.Sprintf("%s at %d", p.name, p.maxPrio))
		}
	}
	found = append(found, sockets...)
	if len(above) > 0 {
		r.Status = Warn
		r.Finding = fmt.Sprintf("%s; real-time threads of %s outrank understudy's monitor (%d), which must preempt everything that plays",
			strings.Join(found, ", "), strings.Join(above, ", "), monitorPrio)
		r.Fix = fmt.Sprintf("run the server below %d (JACK: jackd -P; PipeWire: rt.prio in the rt module's settings)", monitorPrio)
		return r
	}
	r.Finding = "found " + strings.Join(found, ", ")
	return r
}
