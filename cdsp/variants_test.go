package cdsp_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/understudy-rt/understudy/cdsp"
)

// Every SIMD variant must give the scalar kernel's output and state bit for
// bit: a lane may run one variant on its primary and another on a spare (a
// different CPU, a worker built elsewhere), and "auto" picks whatever is
// fastest. These tests compare each variant this CPU runs with the scalar
// kernel across channel counts that exercise full vectors, partial vectors
// and several groups, on block sizes that leave tails.

var variantChannels = []int{1, 2, 3, 4, 5, 8, 16}

// simdVariants lists the variants of name this CPU runs, scalar aside.
func simdVariants(name string) []string {
	return slices.DeleteFunc(cdsp.Variants(name), func(v string) bool { return v == "scalar" })
}

func newV(t testing.TB, name, variant string, params []float32, channels int, rate float64) *cdsp.Instance {
	t.Helper()
	k, err := cdsp.LookupVariant(name, variant)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := k.New(params, channels, rate)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inst.Free)
	return inst
}

type variantCase struct {
	name   string
	params []float32
}

func variantCases() []variantCase {
	cs := []variantCase{{"gain", []float32{-6}}, {"gain", []float32{24}}}
	for i, name := range biquads {
		for j, sec := range []float32{1, 2, 3, 8} {
			f := []float32{40, 1000, 7000, 15000}[(i+j)%4]
			q := []float32{0.7071, 5, 0.3, 20}[(i+2*j)%4]
			p := []float32{f, q, sec}
			if len(paramsOf(name)) == 4 {
				p = []float32{f, q, []float32{-12, 6, 48, -48}[(i+j)%4], sec}
			}
			cs = append(cs, variantCase{name, p})
		}
	}
	for _, taps := range []float32{1, 2, 3, 7, 16, 63, 64, 255, 4095, 4096} {
		cs = append(cs, variantCase{"fir", []float32{2000, taps}})
	}
	return cs
}

func paramsOf(name string) []cdsp.ParamSpec {
	k, err := cdsp.Lookup(name)
	if err != nil {
		panic(err)
	}
	return k.Params()
}

// gainChanges are db values a host sends at these frames, so that ramps
// start mid-stream, overlap and cross block boundaries.
var gainChanges = map[int][]float32{100: {0}, 130: {-40}, 700: {12}, 1400: {-120}}

// cuts returns block boundaries: random block lengths up to maxBlock, plus
// every frame where a param changes (a host changes params between blocks).
func cuts(frames, maxBlock int, seed uint64, changes map[int][]float32) []int {
	r := rand.New(rand.NewPCG(seed, 99))
	var out []int
	for n := 0; n < frames; {
		n += 1 + r.IntN(maxBlock)
		out = append(out, min(n, frames))
	}
	for at := range changes {
		if at < frames {
			out = append(out, at)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// runCuts processes buf in the blocks cuts gives, applying changes first.
func runCuts(t testing.TB, p proc, buf []float32, ch int, cs []int, changes map[int][]float32) {
	t.Helper()
	prev := 0
	for _, c := range cs {
		if v, ok := changes[prev]; ok {
			if err := p.SetParams(v); err != nil {
				t.Fatal(err)
			}
		}
		p.Process(buf[prev*ch : c*ch])
		prev = c
	}
}

var variantSignals = []signal{
	{"impulse", impulse},
	{"sweep", sweep},
	{"noise", func(f, c int) []float32 { return noise(f, c, 42) }},
	{"dc", func(f, c int) []float32 { return dc(f, c, -0.75) }},
	{"silence", func(f, c int) []float32 { return make([]float32, f*c) }},
	{"denormal", func(f, c int) []float32 { return denormalRange(f, c, 7) }},
}

// framesFor is an odd frame count (so every block split leaves tails) long
// enough for a FIR's window to fill: before it does, the folded sum adds
// zeros from the initial history and cannot tell one order of operations
// from another.
func framesFor(vc variantCase, frames int) int {
	if vc.name == "fir" {
		frames += 2 * int(vc.params[1])
	}
	return frames | 1
}

func TestVariantsMatchScalar(t *testing.T) {
	for _, vc := range variantCases() {
		frames := framesFor(vc, 1531)
		vs := simdVariants(vc.name)
		if len(vs) == 0 {
			t.Logf("no SIMD variant of %s runs on this %s CPU", vc.name, runtime.GOARCH)
			continue
		}
		var changes map[int][]float32
		if vc.name == "gain" {
			changes = gainChanges
		}
		for _, ch := range variantChannels {
			t.Run(fmt.Sprintf("%s%v/ch%d", vc.name, vc.params, ch), func(t *testing.T) {
				sk, _ := cdsp.Lookup(vc.name)
				if sk.StateBytes(ch) == 0 {
					for _, v := range vs {
						k, _ := cdsp.LookupVariant(vc.name, v)
						if inst, err := k.New(vc.params, ch, 48000); err == nil {
							inst.Free()
							t.Errorf("%s accepted %d channels, which the scalar kernel cannot run", v, ch)
						}
					}
					return
				}
				for si, sig := range variantSignals {
					in := sig.make(frames, ch)
					refCuts := cuts(frames, 300, uint64(si), changes)
					ref := clone(in)
					s := newV(t, vc.name, "scalar", vc.params, ch, 48000)
					runCuts(t, s, ref, ch, refCuts, changes)
					for _, v := range vs {
						// Once in the scalar run's blocks, once in others
						// down to single frames.
						for pass, cs := range [][]int{refCuts, cuts(frames, 40, uint64(si)+100, changes)} {
							out := clone(in)
							p := newV(t, vc.name, v, vc.params, ch, 48000)
							runCuts(t, p, out, ch, cs, changes)
							sameBits(t, fmt.Sprintf("%s %s vs scalar, %s, pass %d", vc.name, v, sig.name, pass), out, ref)
							if !bytes.Equal(p.State(), s.State()) {
								t.Fatalf("%s %s, %s, pass %d: final state differs from scalar", vc.name, v, sig.name, pass)
							}
						}
					}
				}
			})
		}
	}
}

// Under FTZ/DAZ, as every worker runs, the variants still agree: the mode
// governs scalar and vector arithmetic alike.
func TestVariantsMatchScalarFlushed(t *testing.T) {
	onFreshThread(func() {
		cdsp.FlushDenormals()
		for _, vc := range variantCases() {
			frames := framesFor(vc, 3001)
			for _, ch := range []int{2, 5, 16} {
				if k, _ := cdsp.Lookup(vc.name); k.StateBytes(ch) == 0 {
					continue
				}
				for _, sig := range []signal{
					{"denormal", func(f, c int) []float32 { return denormalRange(f, c, 3) }},
					{"decay", func(f, c int) []float32 { // a tail falling through the subnormals
						b := impulse(f, c)
						for i := range b {
							b[i] *= 1e-36
						}
						return b
					}},
				} {
					in := sig.make(frames, ch)
					ref := clone(in)
					run(newV(t, vc.name, "scalar", vc.params, ch, 48000), ref, ch, 256)
					for _, v := range simdVariants(vc.name) {
						out := clone(in)
						run(newV(t, vc.name, v, vc.params, ch, 48000), out, ch, 97)
						if i := firstBitDiff(out, ref); i >= 0 {
							t.Errorf("flushed: %s%v %s ch%d %s: first difference at sample %d", vc.name, vc.params, v, ch, sig.name, i)
						}
					}
				}
			}
		}
	})
}

// State committed by one variant is adopted by another, which goes on as if
// nothing happened: the layout is shared and every variant reads all of it.
// The spare is made with default params, so what it does must come from the
// state (gain's live db aside, which a host passes to every block).
func TestVariantStateResume(t *testing.T) {
	for _, vc := range variantCases() {
		frames := framesFor(vc, 2500)
		all := cdsp.Variants(vc.name)
		for _, ch := range []int{1, 3, 8} {
			if k, _ := cdsp.Lookup(vc.name); k.StateBytes(ch) == 0 {
				continue
			}
			in := noise(frames, ch, 17)
			ref := clone(in)
			r := newV(t, vc.name, "scalar", vc.params, ch, 48000)
			var live map[int][]float32
			if vc.name == "gain" {
				live = map[int][]float32{0: {-30}}
			}
			runCuts(t, r, ref, ch, []int{frames}, live)
			for _, from := range all {
				for _, to := range all {
					for _, cut := range []int{0, 1, 33, frames - 1001} {
						out := clone(in)
						a := newV(t, vc.name, from, vc.params, ch, 48000)
						runCuts(t, a, out, ch, []int{cut}, live)
						var spareParams []float32
						if vc.name == "gain" {
							spareParams = vc.params
						}
						b := newV(t, vc.name, to, spareParams, ch, 48000)
						if live != nil {
							_ = b.SetParams(live[0])
						}
						if err := b.SetState(a.State()); err != nil {
							t.Fatal(err)
						}
						run(b, out[cut*ch:], ch, 77)
						sameBits(t, fmt.Sprintf("%s%v ch%d: %s until frame %d, then %s", vc.name, vc.params, ch, from, cut, to), out, ref)
						if !bytes.Equal(b.State(), r.State()) {
							t.Fatalf("%s%v ch%d %s->%s at %d: final state differs", vc.name, vc.params, ch, from, to, cut)
						}
					}
				}
			}
		}
	}
}

func TestLookupVariant(t *testing.T) {
	if k, err := cdsp.Lookup("fir"); err != nil || k.Variant() != "scalar" {
		t.Fatalf("Lookup(fir) = %v, %v; want scalar", k, err)
	}
	for _, v := range []string{"", "scalar"} {
		if k, err := cdsp.LookupVariant("fir", v); err != nil || k.Variant() != "scalar" {
			t.Errorf("LookupVariant(fir, %q) = %v, %v; want scalar", v, k, err)
		}
	}
	best := cdsp.BestVariant("fir")
	if k, err := cdsp.LookupVariant("fir", "auto"); err != nil || k.Variant() != best {
		t.Errorf("LookupVariant(fir, auto) = %v, %v; want %s", k, err, best)
	}
	for _, v := range cdsp.Variants("fir") {
		k, err := cdsp.LookupVariant("fir", v)
		if err != nil || k.Variant() != v || k.Name() != "fir" || !k.Supported() {
			t.Errorf("LookupVariant(fir, %s) = %v, %v", v, k, err)
		}
	}

	// Not compiled in: the message names the variant, the build and what
	// to use instead.
	missing := "neon"
	if runtime.GOARCH == "arm64" {
		missing = "avx2"
	}
	_, err := cdsp.LookupVariant("fir", missing)
	if err == nil {
		t.Fatalf("LookupVariant(fir, %s) succeeded on %s", missing, runtime.GOARCH)
	}
	for _, want := range []string{`"` + missing + `"`, runtime.GOARCH, `"` + best + `"`, "scalar"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := cdsp.LookupVariant("pan", "sse2"); err == nil || !strings.Contains(err.Error(), "it has scalar") {
		t.Errorf("LookupVariant(pan, sse2) error %v: want it to list the scalar variant", err)
	}
	if _, err := cdsp.LookupVariant("reverb", "avx2"); err == nil || !strings.Contains(err.Error(), `"reverb"`) {
		t.Errorf("LookupVariant(reverb) error %v", err)
	}
	if cdsp.Variants("reverb") != nil || cdsp.BestVariant("reverb") != "" {
		t.Error("an unknown kernel has variants")
	}
}

func TestVariantsAndBest(t *testing.T) {
	for _, name := range allKernels {
		vs := cdsp.Variants(name)
		if len(vs) == 0 || vs[0] != "scalar" {
			t.Errorf("Variants(%s) = %v: scalar runs everywhere and comes first", name, vs)
		}
		for _, v := range vs {
			if !slices.Contains(compiledVariants(name), v) {
				t.Errorf("Variants(%s) has %s, which is not compiled for %s", name, v, runtime.GOARCH)
			}
		}
		want := "scalar"
		switch {
		case !slices.Contains(simdKernels, name):
		case slices.Contains(vs, "avx2"):
			want = "avx2"
		case slices.Contains(vs, "neon"):
			want = "neon"
		case slices.Contains(vs, "sse2"):
			want = "sse2"
		}
		if got := cdsp.BestVariant(name); got != want {
			t.Errorf("BestVariant(%s) = %q, want %q (variants %v)", name, got, want, vs)
		}
	}
	// On x86-64, SSE2 is part of the architecture: the sse2 variants always run.
	if runtime.GOARCH == "amd64" && !slices.Contains(cdsp.Variants("gain"), "sse2") {
		t.Error("sse2 is not offered on amd64")
	}
	if runtime.GOARCH == "arm64" && cdsp.BestVariant("lowpass") != "neon" {
		t.Error("neon is not the best variant on arm64")
	}
}
