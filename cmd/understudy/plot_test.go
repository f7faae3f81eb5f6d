package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The report carries one timeline entry per injected fault, per detection,
// per failover and per fallback block the clock sent, and one detection
// sample per fault detected with a time; --plot draws them into a
// well-formed SVG whose legend names every detection path with its count.
func TestDemoPlot(t *testing.T) {
	dir := t.TempDir()
	svg, rep := filepath.Join(dir, "demo.svg"), filepath.Join(dir, "r.json")
	code, stdout, stderr := runCLI("demo", "--duration", "1500ms", "--fault-every", "100ms", "--latency", "10", "--hang-timeout", "5ms",
		"--out", filepath.Join(dir, "o.wav"), "--report", rep, "--plot", svg, "--worker", worker(t))
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "drew "+svg) {
		t.Errorf("stdout does not say it drew %s:\n%s", svg, stdout)
	}
	var r report
	b, err := os.ReadFile(rep)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	last := -1.0
	for _, e := range r.Timeline {
		kinds[e.Kind]++
		if e.AtMS < last {
			t.Errorf("timeline out of order: %.3f ms after %.3f ms", e.AtMS, last)
		}
		last = e.AtMS
	}
	var bypassed uint64
	for _, l := range r.Lanes {
		bypassed += l.Bypassed
	}
	if r.Faults.Injected == 0 {
		t.Fatal("no fault was injected: nothing to draw")
	}
	for _, c := range []struct {
		kind string
		got  int
		want int
	}{
		{"fault", kinds["fault"], r.Faults.Injected},
		{"unplanned", kinds["unplanned"], len(r.Unplanned)},
		{"xrun", kinds["xrun"], int(r.Xruns + bypassed)},
		{"failover", kinds["failover"], r.Failovers},
	} {
		if c.got != c.want {
			t.Errorf("timeline has %d %q events; the report counts %d", c.got, c.kind, c.want)
		}
	}
	if kinds["detected"] < r.Faults.Detected {
		t.Errorf("timeline has %d detections; the report counts %d detected faults", kinds["detected"], r.Faults.Detected)
	}
	perPath := map[string]int{}
	for _, d := range r.Detections {
		perPath[d.Path]++
		if d.US <= 0 {
			t.Errorf("detection sample %+v: want a positive latency", d)
		}
	}
	if len(r.Detections) != r.Faults.Detected-r.Faults.NoSpare {
		t.Errorf("%d detection samples; want one per fault detected with a spare ready (%d)", len(r.Detections), r.Faults.Detected-r.Faults.NoSpare)
	}

	img, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(img))
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed SVG: %v", svg, err)
		}
		if cd, ok := tok.(xml.CharData); ok {
			text.Write(cd)
		}
	}
	words := text.String()
	want := []string{"Detection latency by path", "The run:", "Clock wake-up lateness", fmt.Sprintf("%d faults injected", r.Faults.Injected)}
	for p, n := range perPath {
		want = append(want, fmt.Sprintf("%s (%d, p50", p, n))
	}
	for _, w := range want {
		if !strings.Contains(words, w) {
			t.Errorf("the SVG's text lacks %q", w)
		}
	}
}
