package cdsp_test

import (
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/understudy-rt/understudy/cdsp"
	"github.com/understudy-rt/understudy/cdsp/gotwin"
)

var (
	allKernels = []string{"gain", "lowpass", "highpass", "bandpass", "peaking", "lowshelf", "highshelf",
		"fir", "pan", "mix", "sine", "noise"}
	biquads = []string{"lowpass", "highpass", "bandpass", "peaking", "lowshelf", "highshelf"}
	// Kernels whose first param is a frequency that must stay below rate/2.
	withF = append(append([]string(nil), biquads...), "fir", "sine")
	// Kernels with SIMD variants.
	simdKernels = append(append([]string{"gain"}, biquads...), "fir")
)

// compiledVariants is what the registry must hold on this architecture.
func compiledVariants(name string) []string {
	if !slices.Contains(simdKernels, name) {
		return []string{"scalar"}
	}
	switch runtime.GOARCH {
	case "amd64":
		return []string{"scalar", "sse2", "avx2"}
	case "arm64":
		return []string{"scalar", "neon"}
	}
	return []string{"scalar"}
}

func TestRegistry(t *testing.T) {
	var names []string
	byName := map[string][]string{}
	for _, k := range cdsp.Kernels() {
		if !slices.Contains(names, k.Name()) {
			names = append(names, k.Name())
		}
		byName[k.Name()] = append(byName[k.Name()], k.Variant())
		if k.Summary() == "" || k.ABIVersion() != cdsp.ABIVersion {
			t.Errorf("%s/%s: summary %q, ABI %d", k.Name(), k.Variant(), k.Summary(), k.ABIVersion())
		}
		if len(k.Name()) >= 24 || len(k.Variant()) >= 16 {
			t.Errorf("%s/%s: name or variant too long for US_KERNEL_NAME_MAX / US_KERNEL_VARIANT_MAX", k.Name(), k.Variant())
		}
		got, err := cdsp.Lookup(k.Name())
		if err != nil || got.Variant() != "scalar" || got.Name() != k.Name() {
			t.Errorf("Lookup(%q) = %v, %v; want the scalar variant", k.Name(), got, err)
		}
		// Every variant of a name shares the scalar one's schema and state size.
		if !reflect.DeepEqual(k.Params(), got.Params()) || k.Summary() != got.Summary() {
			t.Errorf("%s/%s: params or summary differ from the scalar variant's", k.Name(), k.Variant())
		}
		for _, ch := range []int{1, 2, 3, 4, 16} {
			if k.StateBytes(ch) != got.StateBytes(ch) {
				t.Errorf("%s/%s: StateBytes(%d) = %d, scalar %d", k.Name(), k.Variant(), ch, k.StateBytes(ch), got.StateBytes(ch))
			}
		}
	}
	if !reflect.DeepEqual(names, allKernels) || !reflect.DeepEqual(gotwin.Names(), allKernels) ||
		!reflect.DeepEqual(cdsp.Names(), allKernels) {
		t.Fatalf("kernels %v, Names %v, twins %v, want %v", names, cdsp.Names(), gotwin.Names(), allKernels)
	}
	for _, name := range allKernels {
		if want := compiledVariants(name); !reflect.DeepEqual(byName[name], want) {
			t.Errorf("%s: variants %v compiled in, want %v (scalar first)", name, byName[name], want)
		}
	}
	_, err := cdsp.Lookup("reverb")
	if err == nil || !strings.Contains(err.Error(), `"reverb"`) || !strings.Contains(err.Error(), "lowpass, highpass") {
		t.Fatalf("Lookup(reverb) error %v: want the name and the known kernels", err)
	}
}

func TestParamSpecs(t *testing.T) {
	want := map[string][]string{
		"gain":    {"db"},
		"lowpass": {"f", "q", "sections"}, "highpass": {"f", "q", "sections"}, "bandpass": {"f", "q", "sections"},
		"peaking": {"f", "q", "db", "sections"}, "lowshelf": {"f", "q", "db", "sections"}, "highshelf": {"f", "q", "db", "sections"},
		"fir": {"f", "taps"}, "pan": {"pos", "law"}, "sine": {"f", "db"}, "noise": {"seed", "db"},
		"mix": {"p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "law", "trim"},
	}
	integer := map[string]bool{"sections": true, "taps": true, "law": true, "seed": true}
	for _, name := range allKernels {
		k, _ := cdsp.Lookup(name)
		var got []string
		for _, p := range k.Params() {
			got = append(got, p.Name)
			if p.Default < p.Min || p.Default > p.Max {
				t.Errorf("%s.%s default %g outside %g..%g", name, p.Name, p.Default, p.Min, p.Max)
			}
			if integer[p.Name] != p.Integer {
				t.Errorf("%s.%s integer = %v", name, p.Name, p.Integer)
			}
		}
		if !reflect.DeepEqual(got, want[name]) {
			t.Errorf("%s params %v, want %v", name, got, want[name])
		}
		// The twins must take exactly the same params.
		tw, err := gotwin.Params(name)
		if err != nil {
			t.Fatal(err)
		}
		c := k.Params()
		if len(tw) != len(c) {
			t.Fatalf("%s: twin has %d params, C %d", name, len(tw), len(c))
		}
		for i := range c {
			if cdsp.ParamSpec(tw[i]) != c[i] {
				t.Errorf("%s param %d: twin %+v, C %+v", name, i, tw[i], c[i])
			}
		}
	}
}

// stateBytes is what each kernel's state_bytes must say; 0 is "cannot run".
func stateBytes(name string, ch int) int {
	switch name {
	case "gain":
		return 20 // one gain for every channel
	case "fir":
		if ch > 3 {
			return 0
		}
		return 16 + 4*2048 + ch*4*4096 // header, half of 4096 taps, 4096 floats of history per channel
	case "pan":
		if ch > 2 {
			return 0
		}
		return 40
	case "mix":
		if ch > 8 {
			return 0
		}
		return 240 // the same for every channel count: 8 inputs' positions and gains
	case "sine":
		return 40
	case "noise":
		return 24
	}
	return 32 + ch*8*16 // header + 8 sections x 4 floats per channel
}

func TestStateBytesScaleWithChannels(t *testing.T) {
	for _, name := range allKernels {
		k, _ := cdsp.Lookup(name)
		for _, ch := range []int{1, 2, 3, 4, 8, 16} {
			n := k.StateBytes(ch)
			if want := stateBytes(name, ch); n != want {
				t.Errorf("%s StateBytes(%d) = %d, want %d", name, ch, n, want)
			}
			if n > cdsp.LaneStateBytes {
				t.Errorf("%s StateBytes(%d) = %d, more than a lane's %d", name, ch, n, cdsp.LaneStateBytes)
			}
			if n == 0 {
				// Refused by the Go side and by the kernel's own init.
				if inst, err := k.New(nil, ch, 48000); err == nil || !strings.Contains(err.Error(), "channels") {
					if inst != nil {
						inst.Free()
					}
					t.Errorf("%s at %d channels: New error %v, want a refusal naming the channels", name, ch, err)
				}
				if _, err := gotwin.New(name, nil, ch, 48000); err == nil {
					t.Errorf("%s twin accepted %d channels", name, ch)
				}
				continue
			}
			inst := newC(t, name, nil, ch, 48000)
			tw := newTwin(t, name, nil, ch, 48000)
			if len(inst.State()) != n || len(tw.State()) != n {
				t.Errorf("%s at %d channels: C state %d bytes, twin %d, want %d", name, ch, len(inst.State()), len(tw.State()), n)
			}
		}
	}
}

func TestFAtOrAboveNyquistIsRefused(t *testing.T) {
	for _, name := range withF {
		for _, c := range []struct {
			f, rate float64
			ok      bool
		}{
			{19999, 40000, true},
			{20000, 40000, false},
			{20000, 48000, true},
			{15999, 32000, true},
			{16000, 32000, false}, // in the param range, but at rate/2
			{20000, 32000, false},
			{11025, 22050, false},
			{20000, 8000, false},
		} {
			p := []float32{float32(c.f)}
			k, _ := cdsp.Lookup(name)
			inst, err := k.New(p, 2, c.rate)
			_, twErr := gotwin.New(name, p, 2, c.rate)
			if !c.ok && err != nil && !strings.Contains(err.Error(), "refused") {
				t.Errorf("%s f=%g at %g Hz: %v; want the kernel's init to refuse, not the range check", name, c.f, c.rate, err)
			}
			if c.ok != (err == nil) || c.ok != (twErr == nil) {
				t.Errorf("%s f=%g at %g Hz: C err %v, twin err %v, want ok=%v", name, c.f, c.rate, err, twErr, c.ok)
			}
			if inst != nil {
				inst.Free()
			}
		}
	}
}

func TestParamsAreValidated(t *testing.T) {
	k, _ := cdsp.Lookup("peaking")
	bad := [][]float32{
		{5},                           // f below 10 Hz
		{1000, 0.05},                  // q below 0.1
		{1000, 1, 60},                 // db above 48
		{1000, 1, 0, 2.5},             // sections not whole
		{1000, 1, 0, 9},               // too many sections
		{1000, 1, 0, 1, 1},            // one param too many
		{float32FromBits(0x7fc00000)}, // NaN
	}
	for _, p := range bad {
		if inst, err := k.New(p, 1, 48000); err == nil {
			inst.Free()
			t.Errorf("New(%v) accepted", p)
		}
		if _, err := gotwin.New("peaking", p, 1, 48000); err == nil {
			t.Errorf("twin New(%v) accepted", p)
		}
	}
	if _, err := k.New(nil, 0, 48000); err == nil {
		t.Error("0 channels accepted")
	}
	if _, err := k.New(nil, 1, -1); err == nil {
		t.Error("negative rate accepted")
	}
	// Missing trailing params take their defaults.
	a := newC(t, "peaking", []float32{2000}, 1, 48000)
	b := newC(t, "peaking", []float32{2000, 0.7071, 0, 1}, 1, 48000)
	if !reflect.DeepEqual(a.State(), b.State()) {
		t.Error("defaults differ from the spelled-out params")
	}
}

func TestProcessDoesNotAllocate(t *testing.T) {
	for _, k := range cdsp.Kernels() {
		if !k.Supported() {
			continue
		}
		inst, err := k.New(nil, 2, 48000)
		if err != nil {
			t.Fatal(err)
		}
		buf := noise(256, 2, 1)
		if n := testing.AllocsPerRun(200, func() { inst.Process(buf) }); n != 0 {
			t.Errorf("%s/%s: Process allocates %v times per call", k.Name(), k.Variant(), n)
		}
		inst.Free()
	}
	// The twins too: a lane running on Go must not allocate per block either.
	for _, name := range allKernels {
		p := newTwin(t, name, nil, 2, 48000)
		buf := noise(256, 2, 1)
		p.Process(buf) // scratch is made on first use
		if n := testing.AllocsPerRun(200, func() { p.Process(buf) }); n != 0 {
			t.Errorf("twin %s: Process allocates %v times per call", name, n)
		}
	}
}

func TestFreedInstancePanics(t *testing.T) {
	k, _ := cdsp.Lookup("gain")
	inst, err := k.New(nil, 1, 48000)
	if err != nil {
		t.Fatal(err)
	}
	inst.Free()
	inst.Free() // idempotent
	defer func() {
		if recover() == nil {
			t.Error("Process after Free did not panic")
		}
	}()
	inst.Process(make([]float32, 4))
}
