package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var stateNames = [nStates]string{"free", "spawning", "spare", "owner", "killed", "dying", "dead"}
var eventNames = [nEvents]string{"spawned", "ready", "attach", "attachFailed", "gasp", "word", "kill", "pidfd", "reaped"}

// Every cell of the worker state machine, written out: the expected next
// state and actions, or a refusal (absent). The monitor goes through step
// for every change, so this is the whole of what a worker can go through.
func TestWorkerTableEveryCell(t *testing.T) {
	type cell struct {
		next uint32
		act  wAction
	}
	type key struct {
		s uint32
		e wEvent
	}
	want := map[key]cell{
		{wFree, evSpawned}: {wSpawning, aWatch},

		{wSpawning, evReady}: {wSpare, aArm | aReport},
		{wSpawning, evPidfd}: {wDead, aReport},

		{wSpare, evAttach}:       {wOwner, aArm},
		{wSpare, evAttachFailed}: {wKilled, aKill},
		{wSpare, evGasp}:         {wDying, aKill},
		{wSpare, evWord}:         {wDying, 0},
		{wSpare, evPidfd}:        {wDead, aReport},

		{wOwner, evGasp}:  {wDying, aKill | aDetect | aOrphan},
		{wOwner, evWord}:  {wDying, aDetect | aOrphan},
		{wOwner, evKill}:  {wKilled, aKill | aDetect},
		{wOwner, evPidfd}: {wDead, aDetect | aOrphan | aReport},

		{wKilled, evWord}:  {wKilled, aFence},
		{wKilled, evPidfd}: {wDead, aOrphan | aReport},

		{wDying, evPidfd}: {wDead, aReport},

		{wDead, evReaped}: {wFree, 0},
	}
	m := &monitor{s: &Supervisor{}}
	for st := uint32(0); st < nStates; st++ {
		for ev := wEvent(0); ev < nEvents; ev++ {
			name := stateNames[st] + "+" + eventNames[ev]
			m.s.workers[0].state.Store(st)
			prev, act, ok := m.step(0, ev)
			got := m.s.workers[0].state.Load()
			if prev != st {
				t.Errorf("%s: step reports previous state %s", name, stateNames[prev])
			}
			w, allowed := want[key{st, ev}]
			switch {
			case !allowed && ok:
				t.Errorf("%s: accepted (-> %s, actions %b), want refused", name, stateNames[got], act)
			case !allowed && got != st:
				t.Errorf("%s: refused but the state moved to %s", name, stateNames[got])
			case allowed && !ok:
				t.Errorf("%s: refused, want -> %s", name, stateNames[w.next])
			case allowed && (got != w.next || act != w.act):
				t.Errorf("%s: -> %s actions %b, want -> %s actions %b", name, stateNames[got], act, stateNames[w.next], w.act)
			}
		}
	}
	// Every state a worker can be in is reachable from wFree and leads
	// back to it: no state the table strands a slot in.
	reach := map[uint32]bool{wFree: true}
	for changed := true; changed; {
		changed = false
		for k, c := range want {
			if reach[k.s] && !reach[c.next] {
				reach[c.next], changed = true, true
			}
		}
	}
	for st := uint32(0); st < nStates; st++ {
		if !reach[st] {
			t.Errorf("%s cannot be reached from free", stateNames[st])
		}
		if !leadsTo(st, wFree, workerTable) {
			t.Errorf("%s never leads back to free", stateNames[st])
		}
	}
}

func leadsTo(from, to uint32, table [nStates][nEvents]wTransition) bool {
	seen := map[uint32]bool{from: true}
	for q := []uint32{from}; len(q) > 0; q = q[1:] {
		if q[0] == to {
			return true
		}
		for _, tr := range table[q[0]] {
			if tr.ok && !seen[tr.next] {
				seen[tr.next] = true
				q = append(q, tr.next)
			}
		}
	}
	return false
}

// A worker that dies during its handshake fails Start with its own exit
// status and last words: the monitor saw its pidfd while it was spawning
// and the control plane reaped it, so the spawn does not wait out its
// handshake timeout.
func TestHandshakeDeathFailsTheSpawn(t *testing.T) {
	s := scriptSupervisor(t, "echo 'I am not a worker' >&2\nexit 3", 30*time.Second)
	err := s.Start(nil)
	var se *SpawnError
	if !errors.As(err, &se) {
		t.Fatalf("Start: %v, want a SpawnError", err)
	}
	if se.ExitCode != 3 || !strings.Contains(se.Reason, "exited with status 3") || !strings.Contains(se.Output, "I am not a worker") {
		t.Errorf("spawn error %+v: want exit status 3 and the worker's words", se)
	}
	if sp, own, other := s.Counts(); sp+own+other != 0 {
		t.Errorf("after a failed Start: %d spares, %d owners, %d others", sp, own, other)
	}
}

// A worker that never says READY fails its spawn at its handshake's
// deadline, and nothing of it is left running.
func TestHandshakeDeadline(t *testing.T) {
	s := scriptSupervisor(t, "exec sleep 30", 200*time.Millisecond)
	err := s.Start(nil)
	var se *SpawnError
	if !errors.As(err, &se) || !strings.Contains(se.Reason, "not ready after") {
		t.Fatalf("Start: %v, want a SpawnError for a worker not ready", err)
	}
	pid := 0
	for i := range s.workers {
		if p := int(s.workers[i].pid.Load()); p > 0 {
			pid = p
		}
	}
	if pid == 0 {
		t.Fatal("no worker was started")
	}
	if alive(pid) {
		t.Errorf("worker %d still runs after its failed handshake", pid)
	}
}

// scriptSupervisor is a one-lane supervisor whose "worker" is a shell
// script of body: not a worker, for the handshake's failures.
func scriptSupervisor(t *testing.T, body string, handshake time.Duration) *Supervisor {
	t.Helper()
	w := filepath.Join(t.TempDir(), "not-a-worker")
	if err := os.WriteFile(w, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Worker: w, Lanes: testLanes(t, 1, 64, 48000), WorkerCPU: -1, Handshake: handshake})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
