// Package cpufeat is the host's one answer to "does this CPU run that kernel
// variant?", from github.com/klauspost/cpuid/v2. cdsp (in-process kernels)
// and catalog (the worker's kernels) both choose variants with it; the worker
// keeps its own CPUID check in C before it runs one, so a disagreement makes
// the worker refuse a lane instead of executing an illegal instruction.
package cpufeat

import (
	"runtime"

	"github.com/klauspost/cpuid/v2"
)

// Runs reports whether this CPU has the instructions variant uses. known is
// false for a variant name this package does not know (a user's kernel may
// name its own): then only the worker can say.
//
// cpuid reports AVX2, FMA3 and AVX-512F only when the OS also saves their
// registers (XGETBV), which is what running them needs.
func Runs(variant string) (runs, known bool) {
	switch variant {
	case "scalar":
		return true, true
	case "sse2":
		return cpuid.CPU.Supports(cpuid.SSE2), true
	case "avx2":
		// The avx2 kernels use FMA as well (us_variant_supported asks both).
		return cpuid.CPU.Supports(cpuid.AVX2, cpuid.FMA3), true
	case "avx512":
		return cpuid.CPU.Supports(cpuid.AVX512F), true
	case "neon":
		return runtime.GOARCH == "arm64" && cpuid.CPU.Supports(cpuid.ASIMD), true
	}
	return false, false
}

// Needs names the instructions a variant uses, for error messages.
func Needs(variant string) string {
	switch variant {
	case "sse2":
		return "SSE2"
	case "avx2":
		return "AVX2 and FMA"
	case "avx512":
		return "AVX-512F"
	case "neon":
		return "AArch64 Advanced SIMD (NEON)"
	}
	return "instructions this package does not know"
}
