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

// Hist is a bounded latency histogram for runs that last days: log-spaced
// buckets, eight to an octave (about 9% wide), from 1 µs to about 1.1 hours.
// Its memory is fixed whatever the count; quantiles are a bucket's upper
// bound. The zero value is ready to use; not safe for concurrent use.
type Hist struct {
	n      int
	max    float64
	counts [histBuckets]uint64
}

const (
	histPerOctave = 8
	histBuckets   = 32 * histPerOctave
)

// Add records one duration; negative ones (unknown) are skipped.
func (h *Hist) Add(d time.Duration) {
	if d < 0 {
		return
	}
	us := float64(d) / 1e3
	h.n++
	h.max = math.Max(h.max, us)
	h.counts[histBucket(us)]++
}

func histBucket(us float64) int {
	if us <= 1 {
		return 0
	}
	return min(int(math.Ceil(math.Log2(us)*histPerOctave)), histBuckets-1)
}

func histUpper(b int) float64 { return math.Exp2(float64(b) / histPerOctave) }

// Summary is the histogram's distribution in the Summary form: each
// percentile is its bucket's upper bound, never above the maximum seen.
func (h *Hist) Summary() Summary {
	if h.n == 0 {
		return Summary{}
	}
	q := func(p float64) float64 {
		rank := uint64(math.Ceil(p * float64(h.n)))
		var seen uint64
		for b, c := range h.counts {
			seen += c
			if seen >= rank {
				return math.Round(math.Min(histUpper(b), h.max)*10) / 10
			}
		}
		return h.max
	}
	return Summary{N: h.n, P50: q(0.5), P99: q(0.99), P999: q(0.999), Max: math.Round(h.max*10) / 10}
}
