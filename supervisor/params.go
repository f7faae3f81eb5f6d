package supervisor

import (
	"fmt"
	"slices"
	"sync"

	"github.com/understudy-rt/understudy/runtime/chain"
	"github.com/understudy-rt/understudy/runtime/shm"
)

// ParamClock is what live parameter changes need of the audio clock
// (*audioclock.Clock): it schedules a checked change at an input block and
// says which.
type ParamClock interface {
	SetParam(lane, kernel, param int, value float32) (atBlock uint64, err error)
}

// Params changes kernels' parameters on this supervisor's running lanes
// (docs/design.md, "Live parameters"). A change is checked as the chain's
// own values are (chain.Live: range, whole number, a parameter the kernel
// lets change live, realisable), scheduled by the clock at an input block,
// and carried in that block's header into the lane: the owner applies it
// before processing the block, and a spare that takes the lane over from
// an earlier commit re-reads the block and applies it at the same place,
// so a failover under automation stays bit-exact. Log gives what was
// scheduled where, which render.LaneAutomated replays offline.
type Params struct {
	clock ParamClock
	mu    sync.Mutex
	lanes []paramLane
}

type paramLane struct {
	stages   []chain.Stage // the values in force after the last change
	channels int
	rate     int
	log      []shm.ParamChange
}

// Params ties live changes of lane l's kernels to clock, which must drive
// this supervisor's lanes in order. stages[l] is the chain lane l was
// configured from (chain.Parse, chain.LaneConfig); it must match the lane's
// configuration kernel for kernel and value for value. Params keeps its own
// copies.
func (s *Supervisor) Params(clock ParamClock, stages [][]chain.Stage) (*Params, error) {
	if clock == nil {
		return nil, fmt.Errorf("supervisor: live parameters need the clock that drives the lanes")
	}
	if len(stages) != s.region.Lanes() {
		return nil, fmt.Errorf("supervisor: chains for %d lanes, the supervisor runs %d", len(stages), s.region.Lanes())
	}
	p := &Params{clock: clock, lanes: make([]paramLane, len(stages))}
	for l, st := range stages {
		cfg := s.region.Lane(l).Config()
		if len(st) != len(cfg.Chain) {
			return nil, fmt.Errorf("supervisor: lane %d runs %d kernels, its chain has %d", l, len(cfg.Chain), len(st))
		}
		own := make([]chain.Stage, len(st))
		for i, sg := range st {
			if sg.Kernel == nil || sg.Kernel.Name != cfg.Chain[i].Name || !slices.Equal(sg.Params, cfg.Chain[i].Params) {
				return nil, fmt.Errorf("supervisor: lane %d kernel %d is %s as configured, not the chain's", l, i, cfg.Chain[i].Name)
			}
			own[i] = chain.Stage{Kernel: sg.Kernel, Params: slices.Clone(sg.Params)}
		}
		p.lanes[l] = paramLane{stages: own, channels: cfg.Channels, rate: cfg.Rate}
	}
	return p, nil
}

// Set changes parameter name of kernel (its index in the lane's chain,
// from 0) on lane to value, and returns the input block from which it
// applies. A value the schema refuses, or a parameter that cannot change
// while the lane runs (one that sizes the kernel's state, such as an FIR's
// taps), is an error of one line and changes nothing.
func (p *Params) Set(lane, kernel int, name string, value float64) (atBlock uint64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if lane < 0 || lane >= len(p.lanes) {
		return 0, fmt.Errorf("lane %d: there are lanes 0..%d", lane, len(p.lanes)-1)
	}
	pl := &p.lanes[lane]
	if kernel < 0 || kernel >= len(pl.stages) {
		return 0, fmt.Errorf("lane %d: kernel %d: its chain has kernels 0..%d", lane, kernel, len(pl.stages)-1)
	}
	st := pl.stages[kernel]
	idx, v, err := chain.Live(st, name, value, pl.channels, pl.rate)
	if err != nil {
		return 0, fmt.Errorf("lane %d kernel %d: %w", lane, kernel, err)
	}
	at, err := p.clock.SetParam(lane, kernel, idx, v)
	if err != nil {
		return 0, fmt.Errorf("lane %d kernel %d: %s: %w", lane, kernel, name, err)
	}
	st.Params[idx] = v
	pl.log = append(pl.log, shm.ParamChange{Block: at, Kernel: kernel, Param: idx, Value: v})
	return at, nil
}

// Log is every change made to lane, in the order the clock applies them
// (block order), for render.LaneAutomated to replay.
func (p *Params) Log(lane int) []shm.ParamChange {
	p.mu.Lock()
	defer p.mu.Unlock()
	if lane < 0 || lane >= len(p.lanes) {
		return nil
	}
	return slices.Clone(p.lanes[lane].log)
}

// Values is the parameter vector of lane's kernel as the last change left
// it (nil if there is none such).
func (p *Params) Values(lane, kernel int) []float32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if lane < 0 || lane >= len(p.lanes) || kernel < 0 || kernel >= len(p.lanes[lane].stages) {
		return nil
	}
	return slices.Clone(p.lanes[lane].stages[kernel].Params)
}
