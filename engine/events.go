package engine

import (
	"strings"

	"github.com/understudy-rt/understudy/supervisor"
)

// EventJSON is one event as a line of Config.EventLog (and of `understudy
// run --events`): its kind, lane, slot and pid, and what its kind adds.
func EventJSON(e supervisor.Event) map[string]any {
	m := map[string]any{"kind": e.Kind.String(), "lane": e.Lane, "slot": e.Slot, "pid": e.PID}
	switch e.Kind {
	case supervisor.EvFailover, supervisor.EvNoSpare:
		m["path"] = e.Path.String()
		m["block"] = e.Block
		m["detect_ns"] = e.DetectNS
		m["new_pid"] = e.NewPID
		if e.FaultNS != 0 { // known only for injected faults
			m["detection_us"] = float64(e.Detection()) / 1e3
		}
		m["failover_us"] = float64(e.Failover()) / 1e3
		m["poisoned"] = e.Poisoned
	case supervisor.EvWorkerExited:
		m["exit_code"], m["exit_signal"] = e.ExitCode, e.ExitSignal
	case supervisor.EvSpawnFailed, supervisor.EvLaneFailed:
		m["error"] = e.Err.Error()
	}
	return m
}

// kernelComplaint is the worker's last word when it is about a kernel, not
// about the worker matching the host: then the SpawnError's advice to
// rebuild would send the user the wrong way.
func kernelComplaint(output string) string {
	lines := strings.Split(strings.TrimSpace(output), "\n")
	last := strings.TrimPrefix(strings.TrimSpace(lines[len(lines)-1]), "understudy-worker: ")
	switch {
	case strings.Contains(last, "refused its parameters"):
		return last + " (its init returned an error for these values): change them in the chain; understudy kernels lists the ranges"
	case strings.HasPrefix(last, "user kernel "):
		return last
	}
	return ""
}
