package supervisor

import (
	"strings"
	"sync"
)

// kernelTruth is what a kernel author is told when a worker fails: its last
// output lines, and a repro file of a poison block. The control plane keeps
// it; the monitor's only part is reproCapture.capture, which copies into
// memory allocated here, with the supervisor.
type kernelTruth struct {
	outputs outputIndex
	repro   reproCapture
	mu      sync.Mutex
	saved   []string // repro files written, in order
}

// outputIndex finds a worker's output tail by pid, after its death too: its
// failure event is emitted once its successor committed, by when the slot
// may hold a new worker with a new tail.
type outputIndex struct {
	mu    sync.Mutex
	byPID map[int]trackedOutput
	order []int // pids, oldest first
}

type trackedOutput struct {
	tail    *outputTail
	drained <-chan struct{} // closed at the end of the worker's output
}

// outputsKept bounds the tails remembered: a restart storm forgets the
// oldest dead workers' output, never a live one's while a dead one remains.
const outputsKept = 64

// lastLines is how many of a worker's last lines go into its failure event.
const lastLines = 10

func (o *outputIndex) track(pid int, t *outputTail, drained <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.byPID == nil {
		o.byPID = map[int]trackedOutput{}
	}
	if _, ok := o.byPID[pid]; !ok {
		o.order = append(o.order, pid)
	}
	o.byPID[pid] = trackedOutput{tail: t, drained: drained}
	for len(o.order) > outputsKept {
		victim := 0 // the oldest drained one, else the oldest
		for i, p := range o.order {
			if isClosed(o.byPID[p].drained) {
				victim = i
				break
			}
		}
		delete(o.byPID, o.order[victim])
		o.order = append(o.order[:victim], o.order[victim+1:]...)
	}
}

// lastWords is what worker pid printed last, up to lastLines lines of the
// 4 KiB its tail keeps, or "". For a dead worker that is all it printed: the
// tail catches up with its pipe first. It never waits.
func (o *outputIndex) lastWords(pid int) string {
	o.mu.Lock()
	t, ok := o.byPID[pid]
	o.mu.Unlock()
	if !ok || pid <= 0 {
		return ""
	}
	out := t.tail.String()
	return tailLines(out, lastLines, len(out) >= outputTailBytes)
}

// tailLines is the last n lines of s, trailing blank lines dropped. cut says
// s lost its beginning to the ring, so its first line is a fragment: it
// goes too, unless it is all there is.
func tailLines(s string, n int, cut bool) string {
	s = strings.TrimRight(s, " \t\r\n")
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if cut && len(lines) > 1 {
		lines = lines[1:]
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FoldLines folds a worker's lines into one, for messages that must be one
// line: " / " between them.
func FoldLines(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " / ")), " ")
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// annotate fills what the control plane adds to an event before it goes
// out: the failed worker's last output, and for a poisoned block its repro
// file. Called by emitLocked, under s.mu, on the control plane.
func (s *Supervisor) annotate(e *Event) {
	switch e.Kind {
	case EvFailover, EvNoSpare, EvLaneFailed:
	case EvWorkerExited:
		if e.ExitCode == 0 && e.ExitSignal == 0 {
			return // a clean exit is no failure
		}
	default:
		return
	}
	if e.Output == "" {
		e.Output = s.truth.outputs.lastWords(e.PID)
	}
	if e.Kind == EvFailover && e.Poisoned && e.Repro == "" && e.ReproErr == nil {
		e.Repro, e.ReproErr = s.saveRepro(e.Lane, e.Block)
	}
}
