package cdsp

import (
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The C side (us_variant_supported, what a worker asks) and golang.org/x/sys/cpu
// must agree on what this CPU runs: if they did not, the host could pick a
// variant the worker refuses, or offer less than the machine can do.
func TestGoAndCAgreeOnSupport(t *testing.T) {
	for _, k := range builtins {
		if k.cSupported != k.goSupported {
			t.Errorf("%s/%s: C says supported=%v, x/sys/cpu says %v", k.name, k.variant, k.cSupported, k.goSupported)
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
