package supervisor

// A worker slot's life, as the monitor sees it. The monitor is the only
// writer of workerRec.state (see workerRec); the control plane's part in a
// worker's life reaches it as commands on the control queue (evSpawned,
// evReaped), and every other event is the monitor's own finding. Every
// change of state goes through step, over the one table below.
const (
	wFree     uint32 = iota // no process; the control plane may claim the slot
	wSpawning               // a process runs its handshake; its pidfd is watched
	wSpare                  // READY: may be handed a lane
	wOwner                  // owns a lane
	wKilled                 // hung, corrupt, garbage or could not be attached: SIGKILL sent, its fence awaited
	wDying                  // died by its own hand (last gasp, death word): fenced, its lane may move at once
	wDead                   // its pidfd fired; the control plane reaps it
	nStates
)

// wEvent is something that happens to a worker.
type wEvent uint8

const (
	evSpawned      wEvent = iota // control plane: a process was started in the slot
	evReady                      // its slot says READY
	evAttach                     // the monitor handed it a lane (its fd went out)
	evAttachFailed               // the lane's fd could not be sent to it
	evGasp                       // its fatal-signal handler spoke
	evWord                       // its death word fired and its exit flag confirms it
	evKill                       // the monitor killed it: hung, corrupt, garbage, or found already exiting
	evPidfd                      // its pidfd: the process is gone (or can no longer be watched)
	evReaped                     // control plane: collected, its fds closed
	nEvents
)

// wAction is what the monitor does on a transition, beyond the new state.
type wAction uint8

const (
	aWatch  wAction = 1 << iota // add its pidfd to the epoll set
	aArm                        // arm its death word
	aKill                       // SIGKILL it through its pidfd
	aDetect                     // record the lane's outage (owner only)
	aOrphan                     // take its lane from it and queue the lane for a spare
	aFence                      // its lane, awaited since the kill, may move now
	aReport                     // tell the control plane (mReady, mDeath)
)

type wTransition struct {
	ok   bool
	next uint32
	act  wAction
}

// workerTable is the worker state machine: every (state, event) pair not
// listed is refused (the event is stale or impossible in that state, and
// nothing happens). Tested cell by cell in workerstate_test.go.
var workerTable = func() (t [nStates][nEvents]wTransition) {
	set := func(s uint32, e wEvent, next uint32, act wAction) { t[s][e] = wTransition{true, next, act} }
	set(wFree, evSpawned, wSpawning, aWatch)

	set(wSpawning, evReady, wSpare, aArm|aReport)
	set(wSpawning, evPidfd, wDead, aReport) // failed its handshake

	set(wSpare, evAttach, wOwner, aArm)
	set(wSpare, evAttachFailed, wKilled, aKill)
	set(wSpare, evGasp, wDying, aKill)
	set(wSpare, evWord, wDying, 0) // never hand it a lane
	set(wSpare, evPidfd, wDead, aReport)

	set(wOwner, evGasp, wDying, aKill|aDetect|aOrphan)
	set(wOwner, evWord, wDying, aDetect|aOrphan)
	set(wOwner, evKill, wKilled, aKill|aDetect)
	set(wOwner, evPidfd, wDead, aDetect|aOrphan|aReport)

	// A killed owner keeps its state until its pidfd: its death word, when
	// it fires first, is only the fence that lets its lane move sooner.
	set(wKilled, evWord, wKilled, aFence)
	set(wKilled, evPidfd, wDead, aOrphan|aReport)

	set(wDying, evPidfd, wDead, aReport)

	set(wDead, evReaped, wFree, 0)
	return t
}()

// step applies ev to slot's state and returns the previous state and the
// actions the transition asks for; ok is false (and nothing changes) when
// the table refuses ev in the current state. Monitor only.
func (m *monitor) step(slot int, ev wEvent) (prev uint32, act wAction, ok bool) {
	st := &m.s.workers[slot].state
	prev = st.Load()
	tr := workerTable[prev][ev]
	if !tr.ok {
		return prev, 0, false
	}
	st.Store(tr.next)
	return prev, tr.act, true
}
