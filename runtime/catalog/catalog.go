// Package catalog is what a worker executable can run: its kernels, their
// parameter schemas, state sizes and the variants this CPU supports, as the
// worker itself reports them (`understudy-worker --list-kernels`). Chains are
// validated against it, so a worker built with a user's own kernels is
// checked by the same rules as the built-in ones.
package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/understudy-rt/understudy/internal/cpufeat"
	"github.com/understudy-rt/understudy/runtime/shm"
)

// Param is one parameter of a kernel's schema.
type Param struct {
	Name    string  `json:"name"`
	Unit    string  `json:"unit"`
	Min     float32 `json:"min"`
	Max     float32 `json:"max"`
	Default float32 `json:"default"`
	Integer bool    `json:"integer"`
	// Live: the value may change while a lane runs (the kernel says so;
	// never for one that sizes its state, nor for an ABI-1 kernel).
	Live bool `json:"live"`
}

// Variant is one compiled implementation of a kernel.
type Variant struct {
	Name      string
	Supported bool // this CPU can run it
}

// Kernel is everything the worker says about one kernel name.
type Kernel struct {
	Name       string
	Summary    string
	Params     []Param
	Variants   []Variant
	stateBytes []int // by channel count - 1
}

// StateBytes is the kernel's state for this many channels (0 if out of range).
func (k *Kernel) StateBytes(channels int) int {
	if channels < 1 || channels > len(k.stateBytes) {
		return 0
	}
	return k.stateBytes[channels-1]
}

// variantRank orders variants fastest first; unknown names rank last.
var variantRank = map[string]int{"avx512": 0, "avx2": 1, "neon": 1, "sse2": 2, "scalar": 3}

// Best is the fastest variant this CPU supports.
func (k *Kernel) Best() string {
	best, rank := "", 1<<30
	for _, v := range k.Variants {
		r, ok := variantRank[v.Name]
		if !ok {
			r = 100
		}
		if v.Supported && r < rank {
			best, rank = v.Name, r
		}
	}
	return best
}

// Choose resolves a variant request: "auto" (or "") picks Best, any other
// name must be compiled into the worker and supported by this CPU, except
// that a scalar-only kernel runs scalar whatever is asked.
func (k *Kernel) Choose(want string) (string, error) {
	if want == "" || want == "auto" {
		if b := k.Best(); b != "" {
			return b, nil
		}
		return "", fmt.Errorf("kernel %s has no variant this CPU can run", k.Name)
	}
	var have []string
	for _, v := range k.Variants {
		if v.Name == want {
			if !v.Supported {
				return "", fmt.Errorf("kernel %s variant %s needs instructions this CPU lacks; use --variant auto (here: %s)", k.Name, want, k.Best())
			}
			return want, nil
		}
		have = append(have, v.Name)
	}
	// A kernel with no SIMD variant at all (a generator, a pan) runs its
	// scalar code under any request: there is nothing else it could run, and
	// refusing would forbid forcing a variant on any chain that holds one.
	if len(have) == 1 && have[0] == "scalar" {
		return "scalar", nil
	}
	return "", fmt.Errorf("kernel %s has no %s variant in this worker (it has %s); use --variant auto", k.Name, want, strings.Join(have, ", "))
}

// Catalog is one worker's kernels.
type Catalog struct {
	Worker  string
	kernels map[string]*Kernel
	names   []string
}

type listing struct {
	ABI     uint32 `json:"abi"`
	Layout  uint32 `json:"layout"`
	Kernels []struct {
		Name       string  `json:"name"`
		Variant    string  `json:"variant"`
		Supported  bool    `json:"supported"`
		ABI        uint32  `json:"abi"`
		Summary    string  `json:"summary"`
		Params     []Param `json:"params"`
		StateBytes []int   `json:"state_bytes"`
	} `json:"kernels"`
}

// ListTimeout bounds `--list-kernels`: it runs every kernel's state_bytes,
// and a user kernel that hangs there must not hang the host with it.
var ListTimeout = 5 * time.Second

// maxListing caps what the host keeps of a worker's answer: a real listing
// is a few KiB, and a worker that prints without end must not fill memory.
const maxListing = 4 << 20

// Load asks the worker for its kernels, within ListTimeout. Listing runs
// the kernels' own code (state_bytes), so the worker confines itself for it
// as it does to run them (docs/design.md §3): as root, as uid and gid 65534.
func Load(worker string) (*Catalog, error) { return LoadContext(context.Background(), worker, false) }

// LoadUnsandboxed is Load with the worker's sandbox off (--unsandboxed).
func LoadUnsandboxed(worker string) (*Catalog, error) {
	return LoadContext(context.Background(), worker, true)
}

// LoadContext is Load (or LoadUnsandboxed) that also gives up when ctx is
// done. The worker runs in a process group of its own, and the whole group
// is killed when the query ends, however it ends, so nothing it started
// outlives it.
func LoadContext(ctx context.Context, worker string, unsandboxed bool) (*Catalog, error) {
	ctx, cancel := context.WithTimeout(ctx, ListTimeout)
	defer cancel()
	var stdout, stderr capped
	stdout.max, stderr.max = maxListing, 64<<10
	args := []string{"--list-kernels"}
	switch {
	case unsandboxed:
		args = append(args, "--unsandboxed")
	case os.Geteuid() == 0:
		args = append(args, "--uid", "65534", "--gid", "65534")
	}
	cmd := exec.CommandContext(ctx, worker, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Pipes of our own, read by goroutines of our own: with exec's, Wait
	// would also wait for every process holding the pipe (a child the
	// worker left behind) before we could kill the group.
	outR, errR, err := captured(cmd, &stdout, &stderr)
	if err == nil {
		err = cmd.Start()
		cmd.Stdout.(*os.File).Close()
		cmd.Stderr.(*os.File).Close()
	}
	if err == nil {
		err = cmd.Wait()
		// Whatever the worker started goes with it, however it ended.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		// A process that left our group may still hold the pipes.
		outR.f.SetReadDeadline(time.Now().Add(time.Second))
		errR.f.SetReadDeadline(time.Now().Add(time.Second))
	}
	if outR != nil {
		<-outR.done
		<-errR.done
		outR.f.Close()
		errR.f.Close()
	}
	msg := strings.TrimSpace(stderr.String())
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		msg = msg[i+1:] // the last line is the one that says why
	}
	switch {
	case stdout.over:
		return nil, fmt.Errorf("worker %s printed more than %d bytes for its kernel list, which no real listing needs; pass a working worker with --worker", worker, maxListing)
	case ctx.Err() == context.DeadlineExceeded:
		return nil, fmt.Errorf("worker %s did not list its kernels within %v (a kernel's state_bytes, or the worker's start-up, hung) and was killed; fix the kernel, or pass a working worker with --worker", worker, ListTimeout)
	case ctx.Err() != nil:
		return nil, fmt.Errorf("worker %s: listing its kernels was cancelled: %w", worker, ctx.Err())
	case err != nil:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return nil, fmt.Errorf("worker %s died of %v while listing its kernels (in a kernel's state_bytes?)%s; fix the kernel, or pass a working worker with --worker", worker, ws.Signal(), suffix(msg))
			}
			if ee.ExitCode() == exitKernelDefinition && msg != "" {
				// The worker refused a kernel's definition and said why and
				// what to do; anything added here would only repeat it.
				return nil, fmt.Errorf("worker %s: %s", worker, strings.TrimPrefix(msg, "understudy-worker: "))
			}
		}
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("worker %s cannot list its kernels (%s); pass a working understudy-worker with --worker", worker, msg)
	}
	return Parse(worker, stdout.Bytes())
}

// exitKernelDefinition is the worker's exit status for a user kernel whose
// definition it refuses (a built-in's name, a bad name): csrc/us_registry.c.
const exitKernelDefinition = 2

func suffix(msg string) string {
	if msg == "" {
		return ""
	}
	return ": " + msg
}

// drain reads a pipe into a capped buffer until EOF, the cap, or a deadline.
type drain struct {
	f    *os.File
	done chan struct{}
}

func captured(cmd *exec.Cmd, stdout, stderr *capped) (*drain, *drain, error) {
	var ds [2]*drain
	for i, c := range []*capped{stdout, stderr} {
		r, w, err := os.Pipe()
		if err != nil {
			if ds[0] != nil {
				ds[0].f.Close()
				cmd.Stdout.(*os.File).Close()
			}
			return nil, nil, err
		}
		if i == 0 {
			cmd.Stdout = w
		} else {
			cmd.Stderr = w
		}
		d := &drain{f: r, done: make(chan struct{})}
		go func() {
			defer close(d.done)
			io.Copy(c, r)
		}()
		ds[i] = d
	}
	return ds[0], ds[1], nil
}

// capped keeps at most max bytes and notes whether more came.
type capped struct {
	bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if c.Len()+len(p) > c.max {
		c.over = true
		return 0, errors.New("output too long")
	}
	return c.Buffer.Write(p)
}

// Parse reads a worker's `--list-kernels` answer and checks everything in
// it the host relies on: versions, that every kernel name and variant is
// unique (a user kernel named like a built-in would otherwise run the
// built-in's faster variants with the user's schema), names a chain can
// spell, sane parameter schemas and state sizes within a lane's state.
// Every refusal except a version mismatch is about a kernel's definition,
// so only that one says to rebuild.
func Parse(worker string, data []byte) (*Catalog, error) {
	var l listing
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("worker %s listed its kernels in a form this host does not read (%v); rebuild it with `make` from this host's sources", worker, err)
	}
	if l.ABI != shm.KernelABI || l.Layout != shm.LayoutVersion {
		return nil, fmt.Errorf("worker %s speaks kernel ABI %d / layout %d, this host %d / %d; rebuild the worker with this host (`make`)",
			worker, l.ABI, l.Layout, shm.KernelABI, shm.LayoutVersion)
	}
	c := &Catalog{Worker: worker, kernels: map[string]*Kernel{}}
	seen := map[[2]string]bool{}
	last := ""
	for _, e := range l.Kernels {
		if e.ABI < shm.KernelABIMin || e.ABI > shm.KernelABI {
			return nil, fmt.Errorf("worker %s: kernel %s was built for ABI %d, this host speaks %d..%d; rebuild it with `make`", worker, e.Name, e.ABI, shm.KernelABIMin, shm.KernelABI)
		}
		if err := checkKernel(e.Name, e.Variant, e.Params, e.StateBytes); err != nil {
			return nil, fmt.Errorf("worker %s: %v", worker, err)
		}
		key := [2]string{e.Name, e.Variant}
		k := c.kernels[e.Name]
		// A name's variants come together; the same name again after
		// another, or the same variant twice, is a second kernel taking a
		// name already used (a user kernel shadowing a built-in).
		if seen[key] || (k != nil && last != e.Name) {
			return nil, fmt.Errorf("worker %s carries two kernels named %q: kernel names must be unique, and a user kernel may not take a built-in's name; rename yours", worker, e.Name)
		}
		seen[key] = true
		last = e.Name
		if k == nil {
			k = &Kernel{Name: e.Name, Summary: e.Summary, Params: e.Params, stateBytes: e.StateBytes}
			c.kernels[e.Name] = k
			c.names = append(c.names, e.Name)
		} else if !sameSchema(k, e.Params, e.StateBytes) {
			return nil, fmt.Errorf("worker %s: the variants of kernel %s disagree on its parameters or state size; every variant of a kernel must share them", worker, e.Name)
		}
		// The host's choice follows its own reading of the CPU (cpufeat, the
		// one source of truth); the worker's "supported" can only narrow
		// it, and stays the last word for variants the host does not know.
		supported := e.Supported
		if runs, known := cpufeat.Runs(e.Variant); known {
			supported = supported && runs
		}
		k.Variants = append(k.Variants, Variant{Name: e.Variant, Supported: supported})
	}
	sort.Strings(c.names)
	return c, nil
}

// ValidName is what a kernel or parameter name may be: what a chain can
// spell (no space, '|' or '='), starting with a letter.
func ValidName(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return true
}

func checkKernel(name, variant string, params []Param, state []int) error {
	switch {
	case !ValidName(name, shm.KernelNameMax-1):
		return fmt.Errorf("kernel name %q is not usable: 1..%d letters, digits, '_', '-' or '.', starting with a letter; rename it", name, shm.KernelNameMax-1)
	case !ValidName(variant, shm.VariantMax-1):
		return fmt.Errorf("kernel %s: variant name %q is not usable (1..%d letters, digits, '_', '-' or '.'); use scalar, sse2, avx2, neon, ...", name, variant, shm.VariantMax-1)
	case len(params) > shm.MaxParams:
		return fmt.Errorf("kernel %s declares %d parameters, at most %d; merge some", name, len(params), shm.MaxParams)
	case len(state) != shm.MaxChannels:
		return fmt.Errorf("kernel %s: its state sizes cover %d channel counts, want %d; rebuild the worker with this host (`make`)", name, len(state), shm.MaxChannels)
	}
	pn := map[string]bool{}
	for _, p := range params {
		switch {
		case !ValidName(p.Name, 32):
			return fmt.Errorf("kernel %s: parameter name %q is not usable (1..32 letters, digits, '_', '-' or '.', starting with a letter); rename it", name, p.Name)
		case pn[p.Name]:
			return fmt.Errorf("kernel %s declares parameter %s twice; rename one", name, p.Name)
		case !finite(p.Min) || !finite(p.Max) || !finite(p.Default) || p.Min > p.Max || p.Default < p.Min || p.Default > p.Max:
			return fmt.Errorf("kernel %s: parameter %s has range %g..%g and default %g; the range must be finite and hold the default", name, p.Name, p.Min, p.Max, p.Default)
		}
		pn[p.Name] = true
	}
	for ch, b := range state {
		if b < 0 || b > shm.StateBytes {
			return fmt.Errorf("kernel %s asks for %d bytes of state at %d channels, and a lane holds at most %d; make its state smaller (or return 0 for channel counts it cannot run)", name, b, ch+1, shm.StateBytes)
		}
	}
	return nil
}

func finite(f float32) bool { return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) }

func sameSchema(k *Kernel, params []Param, state []int) bool {
	return slices.Equal(k.Params, params) && slices.Equal(k.stateBytes, state)
}

// Lookup finds a kernel by name.
func (c *Catalog) Lookup(name string) (*Kernel, bool) {
	k, ok := c.kernels[name]
	return k, ok
}

// Kernels lists every kernel, by name.
func (c *Catalog) Kernels() []*Kernel {
	out := make([]*Kernel, 0, len(c.names))
	for _, n := range c.names {
		out = append(out, c.kernels[n])
	}
	return out
}

// Names lists the kernel names.
func (c *Catalog) Names() []string { return append([]string(nil), c.names...) }
