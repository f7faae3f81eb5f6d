package cdsp_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/understudy-rt/understudy/cdsp"
	"github.com/understudy-rt/understudy/cdsp/gotwin"
)

var allKernels = []string{"gain", "lowpass", "highpass", "bandpass", "peaking", "lowshelf", "highshelf"}

func TestRegistry(t *testing.T) {
	var names []string
	for _, k := range cdsp.Kernels() {
		names = append(names, k.Name())
		if k.Variant() != "scalar" || k.Summary() == "" || k.ABIVersion() != cdsp.ABIVersion {
			t.Errorf("%s: variant %q, summary %q, ABI %d", k.Name(), k.Variant(), k.Summary(), k.ABIVersion())
		}
		if len(k.Name()) >= 24 {
			t.Errorf("%s: name too long for US_KERNEL_NAME_MAX", k.Name())
		}
		got, err := cdsp.Lookup(k.Name())
		if err != nil || got != k {
			t.Errorf("Lookup(%q) = %v, %v", k.Name(), got, err)
		}
	}
	if !reflect.DeepEqual(names, allKernels) || !reflect.DeepEqual(gotwin.Names(), allKernels) {
		t.Fatalf("kernels %v, twins %v, want %v", names, gotwin.Names(), allKernels)
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
	}
	for _, name := range allKernels {
		k, _ := cdsp.Lookup(name)
		var got []string
		for _, p := range k.Params() {
			got = append(got, p.Name)
			if p.Default < p.Min || p.Default > p.Max {
				t.Errorf("%s.%s default %g outside %g..%g", name, p.Name, p.Default, p.Min, p.Max)
			}
			if (p.Name == "sections") != p.Integer {
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

func TestStateBytesScaleWithChannels(t *testing.T) {
	for _, name := range allKernels {
		k, _ := cdsp.Lookup(name)
		for _, ch := range []int{1, 2, 8, 16} {
			n := k.StateBytes(ch)
			if name == "gain" {
				if n != 20 { // one gain for every channel
					t.Errorf("gain StateBytes(%d) = %d", ch, n)
				}
			} else if want := 32 + ch*8*16; n != want {
				t.Errorf("%s StateBytes(%d) = %d, want %d (header + 8 sections x 4 floats per channel)", name, ch, n, want)
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
	for _, name := range allKernels[1:] {
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
	for _, name := range allKernels {
		var params []float32
		if name == "gain" {
			params = []float32{-6}
		}
		inst := newC(t, name, params, 2, 48000)
		buf := noise(256, 2, 1)
		if n := testing.AllocsPerRun(200, func() { inst.Process(buf) }); n != 0 {
			t.Errorf("%s: Process allocates %v times per call", name, n)
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
