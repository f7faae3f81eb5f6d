package cdsp_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// What failover relies on: the output is a function of (params, state,
// input) alone, with no history outside the state and no dependence on how
// the stream was cut into blocks.

var detCases = []twinCase{
	{"gain", []float32{-9}, 2, 48000},
	{"lowpass", []float32{800, 5, 3}, 2, 48000},
	{"highpass", []float32{60, 0.7071, 8}, 1, 44100},
	{"bandpass", []float32{2500, 12, 2}, 4, 48000},
	{"peaking", []float32{4000, 2, -15, 1}, 2, 96000},
	{"lowshelf", []float32{150, 0.7071, 9, 2}, 8, 48000},
	{"highshelf", []float32{9000, 1, -20, 4}, 3, 48000},
	{"fir", []float32{3000, 127}, 2, 48000},
	{"fir", []float32{700, 4096}, 3, 44100},
	{"pan", []float32{-0.6, 0}, 2, 48000},
	{"pan", []float32{0.3, 1}, 1, 48000},
	{"mix", []float32{-1, 1}, 2, 48000},
	{"mix", []float32{0.4, 0, 0, 0, 0, 0, 0, 0, 1, -6}, 1, 48000},
	{"mix", []float32{-0.7, 0.7, 0.2, -1, 1, 0, 0.5, -0.5, 0, 3}, 8, 44100},
	{"sine", []float32{441, -6}, 2, 48000},
	{"noise", []float32{12345, -3}, 4, 48000},
}

// startParams are the live params start sends.
var startParams = map[string][]float32{
	"gain":  {12},
	"pan":   {0.9, 0},
	"mix":   {0.9, -0.3, 0, 1, -1, 0.25, -0.8, 0.6, 0, -4.5},
	"sine":  {441, -40},
	"noise": {12345, -30},
}

// start changes the live params of the kernels that read them on every call
// (gain, pan, mix and the generators' level) so that a ramp runs from the first
// frame and crosses every block and failover boundary below; filters have
// none.
func start(t testing.TB, p proc, name string) proc {
	t.Helper()
	if sp := startParams[name]; sp != nil {
		if err := p.SetParams(sp); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func reference(t testing.TB, im int, tc twinCase, in []float32) []float32 {
	t.Helper()
	out := clone(in)
	start(t, impls[im].make(t, tc.name, tc.params, tc.channels, tc.rate), tc.name).Process(out)
	return out
}

func TestTwoInstancesAgree(t *testing.T) {
	for im := range impls {
		for _, tc := range detCases {
			in := noise(5000, tc.channels, 3)
			a, b := reference(t, im, tc, in), reference(t, im, tc, in)
			sameBits(t, impls[im].name+" "+tc.name, a, b)
		}
	}
}

func TestBlockSizeDoesNotMatter(t *testing.T) {
	for im := range impls {
		for _, tc := range detCases {
			const frames = 2000
			in := noise(frames, tc.channels, 4)
			want := reference(t, im, tc, in)
			for _, block := range []int{1, 7, 64, 1000} {
				got := clone(in)
				run(start(t, impls[im].make(t, tc.name, tc.params, tc.channels, tc.rate), tc.name), got, tc.channels, block)
				sameBits(t, fmt.Sprintf("%s %s in blocks of %d", impls[im].name, tc.name, block), got, want)
			}
			// Irregular blocks, as a host under load delivers them.
			r := rand.New(rand.NewPCG(5, 6))
			got := clone(in)
			p := start(t, impls[im].make(t, tc.name, tc.params, tc.channels, tc.rate), tc.name)
			for i := 0; i < frames; {
				n := min(1+r.IntN(150), frames-i)
				p.Process(got[i*tc.channels : (i+n)*tc.channels])
				i += n
			}
			sameBits(t, impls[im].name+" "+tc.name+" in irregular blocks", got, want)
		}
	}
}

// TestFailoverFromCommittedState plays a worker dying after a commit: its
// state bytes go to a fresh instance, which finishes the stream. The spare is
// initialised with default params on purpose: for the filters (the FIR's taps
// included) everything that shapes the output must come from the state, not
// from the spare's own init; the sine's rate too.
func TestFailoverFromCommittedState(t *testing.T) {
	for im := range impls {
		for _, tc := range detCases {
			const frames = 3000
			in := noise(frames, tc.channels, 8)
			want := reference(t, im, tc, in)
			for _, cut := range []int{0, 1, 30, 64, 65, 1999} {
				got := clone(in)
				owner := start(t, impls[im].make(t, tc.name, tc.params, tc.channels, tc.rate), tc.name)
				owner.Process(got[:cut*tc.channels])
				committed := owner.State()

				spareParams := []float32(nil)
				if startParams[tc.name] != nil {
					spareParams = tc.params // the host passes the lane's params to the spare
				}
				spare := start(t, impls[im].make(t, tc.name, spareParams, tc.channels, tc.rate), tc.name)
				if err := spare.SetState(committed); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(spare.State(), committed) {
					t.Fatalf("%s: state did not round-trip", tc.name)
				}
				run(spare, got[cut*tc.channels:], tc.channels, 64)
				sameBits(t, fmt.Sprintf("%s %s, failover after frame %d", impls[im].name, tc.name, cut), got, want)

				// The owner, had it lived, agrees with the spare's state too.
				owner.Process(clone(in)[cut*tc.channels:])
				if !bytes.Equal(owner.State(), spare.State()) {
					t.Fatalf("%s %s: spare and owner end in different states", impls[im].name, tc.name)
				}
			}
		}
	}
}

func TestStateIsRejectedAtWrongSize(t *testing.T) {
	for im := range impls {
		p := impls[im].make(t, "lowpass", nil, 2, 48000)
		other := impls[im].make(t, "lowpass", nil, 3, 48000)
		if err := p.SetState(other.State()); err == nil {
			t.Errorf("%s: a 3-channel state was adopted by a 2-channel instance", impls[im].name)
		}
	}
}
