package chain

import (
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"testing"

	"github.com/understudy-rt/understudy/runtime/catalog"
	"github.com/understudy-rt/understudy/runtime/shm"
)

// FuzzParse feeds the chain parser anything a user could type. It must not
// panic; a chain it accepts has every parameter finite, in range and whole
// where the schema says so, and reads back to the same stages; a chain it
// refuses gets an *Error pointing inside the text. The catalog is a stored
// listing of the stock worker (testdata/catalog.json), so the seeds in
// testdata/fuzz run in every `go test` without starting a process.
func FuzzParse(f *testing.F) {
	data, err := os.ReadFile("testdata/catalog.json")
	if err != nil {
		f.Fatal(err)
	}
	// The listing's layout version is the build's, whatever it was when
	// the listing was stored: the fuzz is about chains, not layouts.
	data = regexp.MustCompile(`"layout":\s*\d+`).ReplaceAll(data, []byte(fmt.Sprintf(`"layout":%d`, shm.LayoutVersion)))
	cat, err := catalog.Parse("testdata", data)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		"lowpass f=1000 q=0.7071 | gain db=-6",
		"gain", "gain db=", "gain db=nan", "gain db=1e309", "gain db=-0x1p3",
		"lowpass sections=2.5", "| gain", "gain |", "gain db=1 db=2",
		"fir taps=4096 | fir taps=4096", "mix p1=-1 p8=1 trim=0",
		"gain\tdb=3\n|\tpan", "gain=3", "=", "gain db=+Inf", "gain db=1_0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		stages, err := Parse(s, cat)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.Msg == "" || ce.Offset < -1 || ce.Offset > len(s) {
				t.Fatalf("%q: %v (%#v): want an *Error with a message and an offset inside the chain", s, err, err)
			}
			return
		}
		if len(stages) == 0 || len(stages) > shm.MaxChain {
			t.Fatalf("%q: %d stages", s, len(stages))
		}
		for _, st := range stages {
			if len(st.Params) != len(st.Kernel.Params) {
				t.Fatalf("%q: %s has %d values for %d parameters", s, st.Kernel.Name, len(st.Params), len(st.Kernel.Params))
			}
			for i, v := range st.Params {
				sp := st.Kernel.Params[i]
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || v < sp.Min || v > sp.Max || (sp.Integer && v != float32(math.Trunc(float64(v)))) {
					t.Fatalf("%q: %s %s=%g accepted outside %g..%g (integer %v)", s, st.Kernel.Name, sp.Name, v, sp.Min, sp.Max, sp.Integer)
				}
			}
		}
		again, err := Parse(String(stages), cat)
		if err != nil {
			t.Fatalf("%q written back as %q does not parse: %v", s, String(stages), err)
		}
		for i := range stages {
			if again[i].Kernel != stages[i].Kernel {
				t.Fatalf("%q: stage %d changed kernel on a round trip", s, i)
			}
			for j := range stages[i].Params {
				if again[i].Params[j] != stages[i].Params[j] {
					t.Fatalf("%q: %s parameter %d is %g, %g after a round trip through %q", s, stages[i].Kernel.Name, j, stages[i].Params[j], again[i].Params[j], String(stages))
				}
			}
		}
	})
}
