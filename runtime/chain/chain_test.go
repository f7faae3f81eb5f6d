package chain

import (
	"errors"
	"strings"
	"testing"

	"github.com/understudy-rt/understudy/internal/workerbin"
	"github.com/understudy-rt/understudy/runtime/catalog"
)

func testCatalog(t *testing.T) *catalog.Catalog {
	w, err := workerbin.Path()
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Load(w)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseValidChain(t *testing.T) {
	cat := testCatalog(t)
	st, err := Parse("lowpass f=1000 q=0.7071 | gain db=-6", cat)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Kernel.Name != "lowpass" || st[1].Kernel.Name != "gain" {
		t.Fatalf("stages %v", String(st))
	}
	// Unnamed parameters take their defaults; named ones land in schema order.
	for i, sp := range st[0].Kernel.Params {
		want := sp.Default
		switch sp.Name {
		case "f":
			want = 1000
		case "q":
			want = 0.7071
		}
		if st[0].Params[i] != want {
			t.Errorf("lowpass %s = %g, want %g", sp.Name, st[0].Params[i], want)
		}
	}
	// String writes it back; parsing that gives the same stages.
	again, err := Parse(String(st), cat)
	if err != nil || String(again) != String(st) {
		t.Errorf("round trip: %q -> %q (%v)", String(st), String(again), err)
	}
	cfg, err := LaneConfig(st, 2, 64, 48000, "auto")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Chain) != 2 || cfg.Chain[0].StateBytes <= 0 || cfg.Chain[0].Variant == "" {
		t.Errorf("lane config %+v", cfg)
	}
}

// Every mistake names the offending word and what would be accepted.
func TestParseErrorsPointAtTheWord(t *testing.T) {
	cases := []struct{ chain, word, says string }{
		{"lowpas f=1000", "lowpas", "no such kernel"},
		{"lowpass f=1000 | gian db=1", "gian", "no such kernel"},
		{"lowpass freq=1000", "freq=1000", "has no parameter \"freq\""},
		{"lowpass f=abc", "f=abc", "wants a number"},
		{"lowpass f=99999", "f=99999", "out of range"},
		{"lowpass sections=1.5", "sections=1.5", "whole number"},
		{"lowpass f", "f", "want name=value"},
		{"lowpass f=100 f=200", "f=200", "given twice"},
		{"lowpass f=100 || gain", "|", "empty stage"},
		{"", "", "empty chain"},
	}
	cat := testCatalog(t)
	for _, c := range cases {
		_, err := Parse(c.chain, cat)
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%q: error %v, want a *chain.Error", c.chain, err)
			continue
		}
		if ce.Word != c.word || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%q: %v (word %q), want word %q saying %q", c.chain, err, ce.Word, c.word, c.says)
		}
		if ce.Offset >= 0 && !strings.HasPrefix(c.chain[ce.Offset:], ce.Word) {
			t.Errorf("%q: offset %d does not point at %q", c.chain, ce.Offset, ce.Word)
		}
	}
}

// A parameter can be in range and still not realisable at this rate: the
// kernel's own init refuses it before any worker starts.
func TestLaneConfigRefusesWhatInitRefuses(t *testing.T) {
	st, err := Parse("lowpass f=20000", testCatalog(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LaneConfig(st, 1, 64, 32000, "auto"); err == nil {
		t.Error("a 20 kHz lowpass at 32 kHz was accepted")
	}
	if _, err := LaneConfig(st, 1, 64, 48000, "avx9000"); err == nil || !strings.Contains(err.Error(), "no avx9000 variant") {
		t.Errorf("unknown variant: %v", err)
	}
}
