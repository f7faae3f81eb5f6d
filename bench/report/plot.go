package main

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/understudy-rt/understudy/internal/plots"
)

// Pictures drawn by -plots DIR, in -plot-format.
var (
	kernelsPlot   = "bench-kernels.svg"
	detectionPlot = "bench-detection.svg"
)

// drawAll draws both pictures into dir.
func drawAll(dir string, recs []Record, frames int, title string) error {
	k, err := kernelSpeed(recs, frames, title)
	if err != nil {
		return err
	}
	if err := plots.Save(filepath.Join(dir, kernelsPlot), 24*vg.Centimeter, 10*vg.Centimeter, [][]*plot.Plot{{k}}); err != nil {
		return err
	}
	d, err := wakePercentiles(recs, title)
	if err != nil {
		return err
	}
	return plots.Save(filepath.Join(dir, detectionPlot), 24*vg.Centimeter, 9*vg.Centimeter, [][]*plot.Plot{{d}})
}

// kernelSpeed is each kernel's speed-up per variant over its pure Go twin at
// one block size: bars grouped by kernel, one colour per variant, the twin
// the line at 1×.
func kernelSpeed(recs []Record, frames int, title string) (*plot.Plot, error) {
	type key struct{ name, extra string }
	goNs := map[key]float64{}
	byVariant := map[string]map[key]float64{}
	var kernels []key
	for _, r := range recs {
		if r.Group != "Kernels" || r.Frames != frames || r.NsPerSample <= 0 {
			continue
		}
		k := key{r.Name, r.Extra}
		if r.Variant == "go" {
			goNs[k] = r.NsPerSample
			kernels = append(kernels, k)
			continue
		}
		if byVariant[r.Variant] == nil {
			byVariant[r.Variant] = map[key]float64{}
		}
		byVariant[r.Variant][k] = r.NsPerSample
	}
	if len(kernels) == 0 {
		return nil, fmt.Errorf("no kernel benchmarks with a pure Go twin at %d frames", frames)
	}
	variants := make([]string, 0, len(byVariant))
	for v := range byVariant {
		variants = append(variants, v)
	}
	rank := map[string]int{"scalar": 0, "sse2": 1, "neon": 2, "avx2": 3, "avx512": 4}
	sort.Slice(variants, func(i, j int) bool { return rank[variants[i]] < rank[variants[j]] })

	p := plot.New()
	p.Title.Text = fmt.Sprintf("Kernel speed against the pure Go twin, %d-frame blocks%s", frames, title)
	p.Y.Label.Text = "× as fast as Go"
	names := make([]string, len(kernels))
	for i, k := range kernels {
		names[i] = strings.TrimSpace(k.name + " " + strings.ReplaceAll(k.extra, "/", " "))
	}
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = math.Pi / 8
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	width := vg.Points(12)
	speedup := make([]plotter.Values, len(variants))
	hi := 1.0
	for i, v := range variants {
		speedup[i] = make(plotter.Values, len(kernels))
		for j, k := range kernels {
			if ns, ok := byVariant[v][k]; ok {
				speedup[i][j] = goNs[k] / ns
				hi = max(hi, speedup[i][j])
			}
		}
	}
	for i, v := range variants {
		bars, err := plotter.NewBarChart(speedup[i], width)
		if err != nil {
			return nil, err
		}
		bars.Color = plots.Colour(i)
		bars.LineStyle.Width = 0
		bars.Offset = width * vg.Length(float64(i)-float64(len(variants)-1)/2)
		p.Add(bars)
		p.Legend.Add(v, bars)
	}
	one, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: 1}, {X: float64(len(kernels)) - 0.5, Y: 1}})
	if err != nil {
		return nil, err
	}
	one.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(one)
	p.Legend.Add("pure Go twin (1×)", one)
	p.Y.Min, p.Y.Max = 0, hi*1.3 // room for the legend
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	return p, nil
}

// wakePercentiles draws the detection and wake-up benchmarks' percentiles:
// they report p50, p99 and max, not their samples.
func wakePercentiles(recs []Record, title string) (*plot.Plot, error) {
	type row struct {
		label         string
		p50, p99, max float64 // ns; 0 = not reported
	}
	var rows []row
	for _, r := range recs {
		switch r.Group {
		case "KillToDetection":
			rows = append(rows,
				row{"kill → detection", r.NsP50, r.NsP99, r.Metrics["ns-max"]},
				row{"detection → failover", r.Metrics["failover-ns-p50"], r.Metrics["failover-ns-p99"], 0})
		case "FutexPingPong":
			rows = append(rows, row{"futex ping-pong (wake floor)", r.NsP50, r.NsP99, r.Metrics["ns-max"]})
		case "RingRoundTrip":
			rows = append(rows, row{"ring round trip, " + r.Name, r.NsP50, r.NsP99, r.Metrics["ns-max"]})
		}
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no detection or wake-up benchmarks in the results")
	}
	p := plot.New()
	p.Title.Text = "Detection and wake-up latency percentiles" + title
	p.X.Label.Text = "µs (log)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	labels := make([]string, len(rows))
	for i, r := range rows {
		labels[len(rows)-1-i] = r.label
	}
	p.NominalY(labels...)
	shapes := []draw.GlyphDrawer{draw.CircleGlyph{}, draw.TriangleGlyph{}, draw.CrossGlyph{}}
	lo, hi := math.Inf(1), 0.0
	for i, pct := range []string{"p50", "p99", "max"} {
		var pts plotter.XYs
		for j, r := range rows {
			ns := [...]float64{r.p50, r.p99, r.max}[i]
			if ns > 0 {
				pts = append(pts, plotter.XY{X: ns / 1e3, Y: float64(len(rows) - 1 - j)})
				lo, hi = min(lo, ns/1e3), max(hi, ns/1e3)
			}
		}
		if len(pts) == 0 {
			continue
		}
		s, err := plotter.NewScatter(pts)
		if err != nil {
			return nil, err
		}
		s.GlyphStyle.Color = plots.Colour(i)
		s.GlyphStyle.Radius = vg.Points(4)
		s.GlyphStyle.Shape = shapes[i]
		p.Add(s)
		p.Legend.Add(pct, s)
	}
	p.Y.Min, p.Y.Max = -0.5, float64(len(rows))+0.3
	p.X.Min, p.X.Max = lo/1.5, hi*1.5 // no mark on the frame
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p, nil
}
