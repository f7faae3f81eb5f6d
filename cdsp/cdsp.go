// Package cdsp carries the built-in C DSP kernels that workers run, and calls
// them in process for tests and benchmarks.
//
// The C sources in this directory are the kernels themselves; the worker
// binary is built from the same files, so what the tests measure is what a
// lane runs. Package gotwin holds pure-Go twins that must agree bit for bit.
package cdsp

/*
#cgo CFLAGS: -I${SRCDIR}/../csrc -O2 -fno-fast-math
// -ffp-contract=off belongs here too, but cgo refuses it (not on its flag
// allowlist); us_dspmath.h turns contraction off with a pragma instead.
#include <stdlib.h>
#include "us_kernel.h"
#include "us_fp.h"
#include "us_region.h"

// Go cannot call through a C function pointer; these trampolines do.
static size_t us_cgo_state_bytes(const us_kernel *k, uint32_t ch) { return k->state_bytes(ch); }
static int us_cgo_init(const us_kernel *k, void *st, const float *p, uint32_t ch, float rate) {
	return k->init(st, p, ch, rate);
}
static void us_cgo_process(const us_kernel *k, void *st, const float *p, float *buf,
                           uint32_t frames, uint32_t ch) {
	k->process(st, p, buf, frames, ch);
}
static const us_kernel *us_cgo_builtin(size_t i) { return us_builtin_kernels[i]; }
static const us_param_spec *us_cgo_param(const us_kernel *k, uint32_t i) { return &k->params[i]; }
static void us_cgo_flush_denormals(void) { us_fp_flush_denormals(); }
static int us_cgo_supported(const us_kernel *k) { return us_variant_supported(k->variant); }

// The CPU's brand string, for error messages that tell a user which machine
// lacks a variant; empty where there is none to read.
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <string.h>
static void us_cgo_cpu_brand(char out[49]) {
	unsigned int r[12] = {0};
	out[0] = 0;
	if (__get_cpuid_max(0x80000000u, NULL) < 0x80000004u) return;
	for (unsigned int i = 0; i < 3; i++)
		__get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
	memcpy(out, r, 48);
	out[48] = 0;
}
#else
static void us_cgo_cpu_brand(char out[49]) { out[0] = 0; }
#endif
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"unsafe"

	"github.com/understudy-rt/understudy/internal/cpufeat"
)

// ABIVersion is the kernel ABI these kernels were built for.
const ABIVersion = C.US_KERNEL_ABI_VERSION

// MaxParams is the most params a kernel may take.
const MaxParams = C.US_KERNEL_MAX_PARAMS

// LaneStateBytes is the state a lane holds for its whole chain, and so the
// most any kernel's state may take.
const LaneStateBytes = C.US_LANE_STATE_BYTES

// MaxChannels is the most channels a lane carries.
const MaxChannels = C.US_MAX_CHANNELS

// ParamSpec describes one kernel parameter, in the order the kernel takes it.
type ParamSpec struct {
	Name, Unit        string
	Min, Max, Default float32
	Integer           bool // the value must be a whole number
}

// Kernel is one built-in kernel: one variant of one name.
type Kernel struct {
	k       *C.us_kernel
	name    string
	variant string
	summary string
	params  []ParamSpec

	// Whether this CPU runs the variant, by the C side's own test (what a
	// worker asks before it runs a lane) and by the host's cpufeat
	// (klauspost/cpuid). A
	// variant is offered only when both agree; the tests check that they do.
	cSupported, goSupported bool
}

var builtins = func() []*Kernel {
	var ks []*Kernel
	for i := 0; ; i++ {
		ck := C.us_cgo_builtin(C.size_t(i))
		if ck == nil {
			return ks
		}
		k := &Kernel{
			k:       ck,
			name:    C.GoString(ck.name),
			variant: C.GoString(ck.variant),
			summary: C.GoString(ck.summary),
		}
		k.cSupported = C.us_cgo_supported(ck) != 0
		k.goSupported = cpuRuns(k.variant)
		for j := C.uint32_t(0); j < ck.n_params; j++ {
			p := C.us_cgo_param(ck, j)
			k.params = append(k.params, ParamSpec{
				Name:    C.GoString(p.name),
				Unit:    C.GoString(p.unit),
				Min:     float32(p.min),
				Max:     float32(p.max),
				Default: float32(p.def),
				Integer: p.integer != 0,
			})
		}
		ks = append(ks, k)
	}
}()

// Kernels lists the built-in kernels in registry order, one per name and
// variant compiled for this architecture, whether this CPU runs it or not
// (see Supported).
func Kernels() []*Kernel { return append([]*Kernel(nil), builtins...) }

// Names lists the built-in kernel names in registry order, once each.
func Names() []string {
	var names []string
	for _, k := range builtins {
		if !slices.Contains(names, k.name) {
			names = append(names, k.name)
		}
	}
	return names
}

// Lookup finds a built-in kernel's scalar variant by name: the reference
// every other variant must match bit for bit.
func Lookup(name string) (*Kernel, error) { return LookupVariant(name, "scalar") }

// LookupVariant finds one variant of a built-in kernel: "scalar", "sse2",
// "avx2", "neon", or "auto" for BestVariant(name). An empty variant means
// "scalar", as in the C registry. It fails for a variant that is not compiled
// into this build or that this CPU cannot run, saying what to use instead.
func LookupVariant(name, variant string) (*Kernel, error) {
	switch variant {
	case "":
		variant = "scalar"
	case "auto":
		variant = BestVariant(name)
	}
	var have []string
	for _, k := range builtins {
		if k.name != name {
			continue
		}
		if k.variant == variant {
			if !k.Supported() {
				return nil, fmt.Errorf("cdsp: kernel %s variant %q needs %s, which this CPU (%s) lacks; %s",
					name, variant, needs(variant), cpuName(), instead(name))
			}
			return k, nil
		}
		have = append(have, k.variant)
	}
	if have == nil {
		return nil, fmt.Errorf("cdsp: no kernel named %q; known kernels: %s", name, strings.Join(Names(), ", "))
	}
	return nil, fmt.Errorf("cdsp: kernel %s has no %q variant in this build for %s/%s (it has %s); %s",
		name, variant, runtime.GOOS, runtime.GOARCH, strings.Join(have, ", "), instead(name))
}

// instead says what to use when a variant cannot be had.
func instead(name string) string {
	if best := BestVariant(name); best != "scalar" {
		return fmt.Sprintf("use %q instead (its BestVariant here) or \"scalar\"", best)
	}
	return `use "scalar" instead (its BestVariant here)`
}

// Variants lists the variants of a kernel that are compiled in and that this
// CPU runs, in registry order (scalar first); nil for an unknown name.
func Variants(name string) []string {
	var out []string
	for _, k := range builtins {
		if k.name == name && k.Supported() {
			out = append(out, k.variant)
		}
	}
	return out
}

// variantRank orders variants by speed, fastest highest. All of them give the
// same bits, so the fastest one this CPU runs is the one to use.
var variantRank = map[string]int{"scalar": 0, "sse2": 1, "neon": 2, "avx2": 2}

// BestVariant is the fastest variant of a kernel this CPU runs: avx2, then
// sse2, then scalar on x86-64; neon, then scalar on arm64. "" for an unknown
// name.
func BestVariant(name string) string {
	best, rank := "", -1
	for _, v := range Variants(name) {
		r, ok := variantRank[v]
		if !ok {
			r = -1 // a variant this package does not know is never preferred
		}
		if best == "" || r > rank {
			best, rank = v, r
		}
	}
	return best
}

// cpuRuns is the host's opinion (cpufeat, from cpuid) of whether this CPU has
// the instructions a variant uses; the variants and what they use are the C
// side's us_variant_supported.
func cpuRuns(variant string) bool {
	runs, _ := cpufeat.Runs(variant)
	return runs
}

// needs names the instructions a variant uses, for error messages.
func needs(variant string) string { return cpufeat.Needs(variant) }

// cpuName is the CPU's brand string and architecture, e.g. "AMD EPYC, amd64".
func cpuName() string {
	var b [49]C.char
	C.us_cgo_cpu_brand(&b[0])
	if brand := strings.Join(strings.Fields(C.GoString(&b[0])), " "); brand != "" {
		return brand + ", " + runtime.GOARCH
	}
	return runtime.GOARCH
}

func (k *Kernel) Name() string    { return k.name }
func (k *Kernel) Variant() string { return k.variant }
func (k *Kernel) Summary() string { return k.summary }

// Supported reports whether this CPU runs the variant. Running one it does not
// would die of SIGILL: New refuses it.
func (k *Kernel) Supported() bool { return k.cSupported && k.goSupported }

// ABIVersion is the ABI the kernel declares.
func (k *Kernel) ABIVersion() uint32 { return uint32(k.k.abi_version) }

// Params returns a copy of the kernel's parameter specs.
func (k *Kernel) Params() []ParamSpec { return append([]ParamSpec(nil), k.params...) }

// StateBytes is the kernel's state size for this many channels.
func (k *Kernel) StateBytes(channels int) int {
	if channels < 0 || channels > math.MaxUint32 {
		return -1
	}
	return int(C.us_cgo_state_bytes(k.k, C.uint32_t(channels)))
}

// Resolve checks params against the specs and fills the ones left off with
// their defaults: fewer than the kernel takes is fine, more is not.
func (k *Kernel) Resolve(params []float32) ([]float32, error) {
	if len(params) > len(k.params) {
		return nil, fmt.Errorf("cdsp: %s takes %d params, got %d", k.name, len(k.params), len(params))
	}
	out := make([]float32, len(k.params))
	for j, s := range k.params {
		v := s.Default
		if j < len(params) {
			v = params[j]
		}
		if !(v >= s.Min && v <= s.Max) { // NaN fails too
			return nil, fmt.Errorf("cdsp: %s param %s = %g is outside %g..%g", k.name, s.Name, v, s.Min, s.Max)
		}
		if s.Integer && float32(math.Trunc(float64(v))) != v {
			return nil, fmt.Errorf("cdsp: %s param %s = %g must be a whole number", k.name, s.Name, v)
		}
		out[j] = v
	}
	return out, nil
}

// Instance is one kernel with its own C-allocated state and params, for
// in-process calls. It is not safe for concurrent use.
type Instance struct {
	k        *Kernel
	mem      unsafe.Pointer // one C allocation: state, then params
	state    unsafe.Pointer
	params   *C.float
	nstate   int
	channels int
	cleanup  runtime.Cleanup
}

// New allocates state and runs the kernel's init. The ABI carries the rate as
// a float, so it is rounded to float32 here exactly as a worker does.
func (k *Kernel) New(params []float32, channels int, rate float64) (*Instance, error) {
	p, err := k.Resolve(params)
	if err != nil {
		return nil, err
	}
	if channels < 1 || channels > math.MaxUint32 {
		return nil, fmt.Errorf("cdsp: %s: %d channels, want at least 1", k.name, channels)
	}
	if !(rate > 0) || math.IsInf(rate, 0) || rate > math.MaxFloat32 {
		return nil, fmt.Errorf("cdsp: %s: sample rate %g is not a positive float", k.name, rate)
	}
	if !k.Supported() {
		return nil, fmt.Errorf("cdsp: %s variant %q needs %s, which this CPU (%s) lacks", k.name, k.variant, needs(k.variant), cpuName())
	}
	n := k.StateBytes(channels)
	if n == 0 {
		return nil, fmt.Errorf("cdsp: %s cannot run %d channels: its state would not fit a lane", k.name, channels)
	}
	off := (n + 15) &^ 15 // params stay float-aligned after any state size
	mem := C.calloc(C.size_t(off+MaxParams*4), 1)
	if mem == nil {
		return nil, errors.New("cdsp: out of memory")
	}
	i := &Instance{
		k:        k,
		mem:      mem,
		state:    mem,
		params:   (*C.float)(unsafe.Add(mem, off)),
		nstate:   n,
		channels: channels,
	}
	i.cleanup = runtime.AddCleanup(i, func(m unsafe.Pointer) { C.free(m) }, mem)
	i.setParams(p)
	if C.us_cgo_init(k.k, i.state, i.params, C.uint32_t(channels), C.float(rate)) != 0 {
		i.Free()
		return nil, fmt.Errorf("cdsp: %s refused params %v at %d channels, rate %g (a filter's f must be below rate/2)",
			k.name, p, channels, float32(rate))
	}
	return i, nil
}

func (i *Instance) setParams(p []float32) {
	dst := unsafe.Slice((*float32)(unsafe.Pointer(i.params)), MaxParams)
	copy(dst, p)
}

// SetParams replaces the params passed to every later Process call, as a host
// does between blocks. Kernels that fix their work at init (the biquads)
// ignore them.
func (i *Instance) SetParams(params []float32) error {
	p, err := i.k.Resolve(params)
	if err != nil {
		return err
	}
	i.live()
	i.setParams(p)
	return nil
}

// Process runs the kernel over an interleaved block in place. len(buf) must be
// a multiple of the channel count. It does not allocate.
func (i *Instance) Process(buf []float32) {
	i.live()
	if len(buf) == 0 {
		return
	}
	frames := len(buf) / i.channels
	if frames*i.channels != len(buf) || frames > math.MaxUint32 {
		panic("cdsp: Process: buffer length is not a whole number of frames")
	}
	// buf holds no Go pointers, so cgo lets C use it for the call's duration.
	C.us_cgo_process(i.k.k, i.state, i.params, (*C.float)(unsafe.Pointer(&buf[0])),
		C.uint32_t(frames), C.uint32_t(i.channels))
}

// State returns a copy of the kernel's state bytes: what a worker commits.
func (i *Instance) State() []byte {
	i.live()
	return C.GoBytes(i.state, C.int(i.nstate))
}

// SetState overwrites the kernel's state with bytes from State(), as a spare
// adopting a lane's committed state does. The bytes must come from the same
// kernel at the same channel count.
func (i *Instance) SetState(b []byte) error {
	i.live()
	if len(b) != i.nstate {
		return fmt.Errorf("cdsp: %s state is %d bytes, got %d", i.k.name, i.nstate, len(b))
	}
	copy(unsafe.Slice((*byte)(i.state), i.nstate), b)
	return nil
}

// Kernel returns the instance's kernel.
func (i *Instance) Kernel() *Kernel { return i.k }

// Channels returns the instance's channel count.
func (i *Instance) Channels() int { return i.channels }

// Free releases the C memory. The instance must not be used afterwards.
func (i *Instance) Free() {
	if i.mem == nil {
		return
	}
	i.cleanup.Stop()
	C.free(i.mem)
	i.mem, i.state, i.params = nil, nil, nil
}

func (i *Instance) live() {
	if i.mem == nil {
		panic("cdsp: use of a freed Instance")
	}
}

// FlushDenormals sets flush-to-zero (and denormals-are-zero on x86) for the
// calling OS thread, as every worker does at start. The mode belongs to the
// thread, so the caller must hold runtime.LockOSThread for as long as it
// relies on it; a goroutine that exits still locked takes the thread, and the
// mode, with it.
func FlushDenormals() { C.us_cgo_flush_denormals() }
