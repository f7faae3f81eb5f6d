package stats

import (
	"testing"
	"time"
)

// The bounded histogram's percentiles are within a bucket (9%) above the
// exact ones, never above the maximum, and its size does not grow.
func TestHistAgreesWithExact(t *testing.T) {
	var h Hist
	var ds []time.Duration
	for i := 1; i <= 10000; i++ {
		d := time.Duration(i*i%7919+17) * time.Microsecond
		ds = append(ds, d)
		h.Add(d)
	}
	exact, got := Summarize(ds), h.Summary()
	for _, c := range []struct {
		name       string
		exact, got float64
	}{{"p50", exact.P50, got.P50}, {"p99", exact.P99, got.P99}, {"max", exact.Max, got.Max}} {
		if c.got < c.exact || c.got > c.exact*1.1+0.1 {
			t.Errorf("%s: %v from the histogram, %v exact", c.name, c.got, c.exact)
		}
	}
	if got.P99 > got.Max || got.N != len(ds) {
		t.Errorf("summary %+v", got)
	}
	if new(Hist).Summary() != (Summary{}) {
		t.Error("an empty histogram is not empty")
	}
}
