package cdsp

import (
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/cpuid/v2"
)

// The C side (us_variant_supported, what a worker asks) and the host's cpufeat
// must agree on what this CPU runs: if they did not, the host could pick a
// variant the worker refuses, or offer less than the machine can do.
func TestGoAndCAgreeOnSupport(t *testing.T) {
	for _, k := range builtins {
		if k.cSupported != k.goSupported {
			t.Errorf("%s/%s: C says supported=%v, cpufeat (cpuid) says %v", k.name, k.variant, k.cSupported, k.goSupported)
		}
	}
}

// A CPU without a variant's instructions is simulated by switching fir's
// best variant off: LookupVariant and New must refuse it, say why and offer
// the next best, and BestVariant must pass it over.
func TestUnsupportedVariantIsRefused(t *testing.T) {
	best := BestVariant("fir")
	if best == "scalar" {
		t.Skip("no SIMD variant of fir runs here to switch off")
	}
	var k *Kernel
	for _, b := range builtins {
		if b.name == "fir" && b.variant == best {
			k = b
		}
	}
	k.goSupported = false
	defer func() { k.goSupported = true }()

	next := map[string]string{"avx2": "sse2", "sse2": "scalar", "neon": "scalar"}[best]
	if got := BestVariant("fir"); got != next {
		t.Errorf("BestVariant(fir) = %q with %s off, want %s", got, best, next)
	}
	if slices.Contains(Variants("fir"), best) {
		t.Error("Variants lists an unsupported variant")
	}
	_, err := LookupVariant("fir", best)
	if err == nil {
		t.Fatal("LookupVariant returned a variant this CPU cannot run")
	}
	for _, want := range []string{`"` + best + `"`, needs(best), cpuName(), `"` + next + `"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	t.Log(err)
	if inst, err := k.New(nil, 1, 48000); err == nil {
		inst.Free()
		t.Error("New ran a variant this CPU cannot run")
	}
	if !strings.Contains(cpuName(), runtime.GOARCH) {
		t.Errorf("cpuName() = %q, want the architecture in it", cpuName())
	}
}

// The host's choice is what cpuid reports: for every kernel, the variant
// BestVariant picks is the fastest compiled one whose instructions
// cpuid.CPU has (AVX2 with FMA, SSE2, NEON), whatever the C side thinks.
func TestBestVariantFollowsCPUID(t *testing.T) {
	has := map[string]bool{
		"scalar": true,
		"avx2":   cpuid.CPU.Supports(cpuid.AVX2, cpuid.FMA3),
		"sse2":   cpuid.CPU.Supports(cpuid.SSE2),
		"neon":   runtime.GOARCH == "arm64" && cpuid.CPU.Supports(cpuid.ASIMD),
	}
	compiled := map[string][]string{}
	for _, k := range builtins {
		compiled[k.name] = append(compiled[k.name], k.variant)
	}
	simd := 0
	for name, vs := range compiled {
		want := "scalar"
		for _, v := range []string{"avx2", "neon", "sse2"} {
			if slices.Contains(vs, v) && has[v] {
				want = v
				break
			}
		}
		if want != "scalar" {
			simd++
		}
		if got := BestVariant(name); got != want {
			t.Errorf("BestVariant(%s) = %q; compiled %v, cpuid says AVX2+FMA %v, SSE2 %v, NEON %v: want %q",
				name, got, vs, has["avx2"], has["sse2"], has["neon"], want)
		}
	}
	t.Logf("%d kernels have a SIMD variant this CPU runs (cpuid: AVX2+FMA %v, SSE2 %v, NEON %v)", simd, has["avx2"], has["sse2"], has["neon"])
}
