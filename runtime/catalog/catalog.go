// Package catalog is what a worker executable can run: its kernels, their
// parameter schemas, state sizes and the variants this CPU supports, as the
// worker itself reports them (`understudy-worker --list-kernels`). Chains are
// validated against it, so a worker built with a user's own kernels is
// checked by the same rules as the built-in ones.
package catalog

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"

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

// Load asks the worker for its kernels. Listing runs the kernels' own code
// (state_bytes), so the worker confines itself for it as it does to run them
// (docs/design.md §3): as root, as uid and gid 65534.
func Load(worker string) (*Catalog, error) {
	var args []string
	if os.Geteuid() == 0 {
		args = []string{"--uid", "65534", "--gid", "65534"}
	}
	return load(worker, args)
}

// LoadUnsandboxed is Load with the worker's sandbox off (--unsandboxed).
func LoadUnsandboxed(worker string) (*Catalog, error) { return load(worker, []string{"--unsandboxed"}) }

func load(worker string, args []string) (*Catalog, error) {
	out, err := exec.Command(worker, append([]string{"--list-kernels"}, args...)...).Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
			msg = strings.TrimSpace(string(ee.Stderr))
		}
		return nil, fmt.Errorf("worker %s cannot list its kernels (%s); rebuild it with `make` or pass the right one with --worker", worker, msg)
	}
	var l listing
	if err := json.Unmarshal(out, &l); err != nil {
		return nil, fmt.Errorf("worker %s listed its kernels in a form this host does not read (%v); rebuild it with `make`", worker, err)
	}
	if l.ABI != shm.KernelABI || l.Layout != shm.LayoutVersion {
		return nil, fmt.Errorf("worker %s speaks kernel ABI %d / layout %d, this host %d / %d; rebuild the worker with this host",
			worker, l.ABI, l.Layout, shm.KernelABI, shm.LayoutVersion)
	}
	c := &Catalog{Worker: worker, kernels: map[string]*Kernel{}}
	for _, e := range l.Kernels {
		if e.ABI != shm.KernelABI {
			return nil, fmt.Errorf("worker %s: kernel %s was built for ABI %d, this host speaks %d; rebuild it", worker, e.Name, e.ABI, shm.KernelABI)
		}
		k := c.kernels[e.Name]
		if k == nil {
			k = &Kernel{Name: e.Name, Summary: e.Summary, Params: e.Params, stateBytes: e.StateBytes}
			c.kernels[e.Name] = k
			c.names = append(c.names, e.Name)
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
