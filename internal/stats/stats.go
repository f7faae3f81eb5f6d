// Package stats summarises latency samples for reports: percentiles by the
// nearest-rank method, in microseconds.
package stats

import (
	"math"
	"sort"
	"time"
)

// Summary is a latency distribution in microseconds.
type Summary struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// Summarize reports the distribution of ds; negative durations (unknown) are
// skipped. Every figure is rounded alike, to 0.1 µs, so that no percentile
// prints above the maximum.
func Summarize(ds []time.Duration) Summary {
	us := make([]float64, 0, len(ds))
	for _, d := range ds {
		if d >= 0 {
			us = append(us, float64(d)/1e3)
		}
	}
	sort.Float64s(us)
	if len(us) == 0 {
		return Summary{}
	}
	return Summary{N: len(us), P50: Rank(us, 0.50), P99: Rank(us, 0.99), P999: Rank(us, 0.999), Max: math.Round(us[len(us)-1]*10) / 10}
}

// Rank is the nearest-rank percentile p (0..1] of sorted xs.
func Rank(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return math.Round(sorted[i]*10) / 10
}
