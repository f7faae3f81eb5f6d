package chain

import (
	"fmt"
	"strings"
	"testing"
)

// A live change is checked as a chain's own value is, and refused, in one
// line, where the kernel cannot take it while it runs.
func TestLive(t *testing.T) {
	cat := testCatalog(t)
	st, err := Parse("lowpass f=1000 | gain db=-6 | fir taps=63 | peaking f=500 db=3", cat)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		stage int
		name  string
		v     float64
		rate  int
		param int
		want  string
	}{
		{0, "f", 2000, 48000, 0, ""},
		{0, "q", 2, 48000, 1, ""},
		{1, "db", -20, 48000, 0, ""},
		{3, "db", -6, 48000, 2, ""},
		{0, "sections", 2, 48000, -1, "lowpass: sections cannot change while the lane runs"},
		{2, "taps", 127, 48000, -1, "fir: taps cannot change while the lane runs"},
		{1, "db", 25, 48000, -1, "gain: db=25 is out of range -120..24 dB"},
		{0, "f", 20000, 32000, -1, "lowpass: f=20000: "}, // above Nyquist at 32 kHz
		{0, "z", 1, 48000, -1, `lowpass has no parameter "z"`},
	} {
		before := fmt.Sprint(st[c.stage].Params)
		p, v, err := Live(st[c.stage], c.name, c.v, 1, c.rate)
		if c.want == "" {
			if err != nil || p != c.param || v != float32(c.v) {
				t.Errorf("Live(%s %s=%g) = %d, %g, %v; want %d, %g", st[c.stage].Kernel.Name, c.name, c.v, p, v, err, c.param, c.v)
			}
		} else if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Live(%s %s=%g at %d Hz): %v; want one line with %q", st[c.stage].Kernel.Name, c.name, c.v, c.rate, err, c.want)
		}
		if after := fmt.Sprint(st[c.stage].Params); after != before {
			t.Errorf("Live changed the stage's values from %s to %s", before, after)
		}
	}
}
