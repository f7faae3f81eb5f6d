package catalog

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/cpuid/v2"

	"github.com/understudy-rt/understudy/internal/workerbin"
	"github.com/understudy-rt/understudy/runtime/shm"
)

func TestChooseVariant(t *testing.T) {
	simd := &Kernel{Name: "lowpass", Variants: []Variant{{"scalar", true}, {"sse2", true}, {"avx2", false}}}
	scalarOnly := &Kernel{Name: "sine", Variants: []Variant{{"scalar", true}}}
	for _, c := range []struct {
		k        *Kernel
		want     string
		got, err string
	}{
		{simd, "auto", "sse2", ""},
		{simd, "", "sse2", ""},
		{simd, "scalar", "scalar", ""},
		{simd, "sse2", "sse2", ""},
		{simd, "avx2", "", "needs instructions this CPU lacks"},
		{simd, "neon", "", "has no neon variant"},
		{scalarOnly, "avx2", "scalar", ""},
		{scalarOnly, "auto", "scalar", ""},
	} {
		got, err := c.k.Choose(c.want)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s.Choose(%q) = %q, %v; want an error saying %q", c.k.Name, c.want, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.got {
			t.Errorf("%s.Choose(%q) = %q, %v; want %q", c.k.Name, c.want, got, err, c.got)
		}
	}
}

// The stock worker's own listing: every built-in kernel, a scalar variant
// each, and at least one variant this CPU runs.
func TestLoadStockWorker(t *testing.T) {
	w, err := workerbin.Path()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(w)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gain", "lowpass", "highpass", "bandpass", "peaking", "lowshelf", "highshelf", "fir", "pan", "mix", "sine", "noise"} {
		k, ok := c.Lookup(name)
		if !ok {
			t.Errorf("worker lists no %s", name)
			continue
		}
		if v, err := k.Choose("scalar"); err != nil || v != "scalar" {
			t.Errorf("%s: scalar variant: %q, %v", name, v, err)
		}
		if k.Best() == "" {
			t.Errorf("%s: no variant this CPU runs", name)
		}
		if k.StateBytes(1) == 0 {
			t.Errorf("%s: no state size for one channel", name)
		}
	}
	if _, err := Load("/nonexistent/understudy-worker"); err == nil {
		t.Error("Load of a missing worker succeeded")
	}
}

// The host picks the worker's variants by what cpuid reports: for every
// kernel, Best is the fastest variant the worker has compiled whose
// instructions cpuid.CPU has (AVX2 with FMA, SSE2, NEON).
func TestBestFollowsCPUID(t *testing.T) {
	w, err := workerbin.Path()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(w)
	if err != nil {
		t.Fatal(err)
	}
	has := map[string]bool{
		"avx2": cpuid.CPU.Supports(cpuid.AVX2, cpuid.FMA3),
		"sse2": cpuid.CPU.Supports(cpuid.SSE2),
		"neon": runtime.GOARCH == "arm64" && cpuid.CPU.Supports(cpuid.ASIMD),
	}
	for _, k := range c.Kernels() {
		want := "scalar"
		for _, v := range []string{"avx2", "neon", "sse2"} {
			if slices.ContainsFunc(k.Variants, func(x Variant) bool { return x.Name == v }) && has[v] {
				want = v
				break
			}
		}
		if got := k.Best(); got != want {
			t.Errorf("%s: Best() = %q with variants %v; cpuid says AVX2+FMA %v, SSE2 %v, NEON %v: want %q",
				k.Name, got, k.Variants, has["avx2"], has["sse2"], has["neon"], want)
		}
	}
}

// The catalog refuses a listing in which one name stands for two kernels,
// whether the second repeats a variant or comes back after another name
// (a user kernel "gain" with a variant the built-in lacks, listed first).
func TestParseRefusesAShadowedName(t *testing.T) {
	entry := func(name, variant string) string {
		sb := strings.Repeat("8,", shm.MaxChannels-1) + "8"
		return `{"name":"` + name + `","variant":"` + variant + `","supported":true,"abi":` + fmt.Sprint(shm.KernelABI) +
			`,"summary":"s","params":[{"name":"db","unit":"dB","min":-10,"max":10,"default":0}],"state_bytes":[` + sb + `]}`
	}
	listing := func(entries ...string) []byte {
		return []byte(fmt.Sprintf(`{"abi":%d,"layout":%d,"kernels":[%s]}`, shm.KernelABI, shm.LayoutVersion, strings.Join(entries, ",")))
	}
	if _, err := Parse("w", listing(entry("gain", "scalar"), entry("gain", "avx2"), entry("pan", "scalar"))); err != nil {
		t.Fatalf("a clean listing: %v", err)
	}
	for name, l := range map[string][]byte{
		"same variant twice": listing(entry("gain", "scalar"), entry("gain", "scalar"), entry("gain", "avx2")),
		"name comes back":    listing(entry("gain", "neon"), entry("pan", "scalar"), entry("gain", "scalar")),
	} {
		if _, err := Parse("w", l); err == nil || !strings.Contains(err.Error(), `two kernels named "gain"`) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Parse("w", listing(entry("gain|x", "scalar"))); err == nil || !strings.Contains(err.Error(), "not usable") {
		t.Errorf("a name with '|': %v", err)
	}
}
