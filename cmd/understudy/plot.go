package main

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/understudy-rt/understudy/internal/plots"
	"github.com/understudy-rt/understudy/runtime/shm"
	"github.com/understudy-rt/understudy/supervisor"
)

// timelineEvent is one thing that happened during the run, at AtMS after
// the clock started.
type timelineEvent struct {
	Kind string  `json:"kind"` // fault, detected, failover, no_spare, unplanned, xrun
	Lane int     `json:"lane"`
	AtMS float64 `json:"at_ms"`
	What string  `json:"what,omitempty"` // the fault's kind, or the detection path
}

// detectionSample is one injected fault's detection.
type detectionSample struct {
	Fault string  `json:"fault"`
	Path  string  `json:"path"`
	US    float64 `json:"us"`
}

// Timeline kinds, top row of the picture first.
var timelineRows = []string{"fault", "detected", "failover", "no_spare", "unplanned", "xrun"}

func timelineOf(c *demoConfig, r *rtResult) []timelineEvent {
	if r.startNS == 0 {
		return nil
	}
	at := func(ns uint64) float64 { return (float64(ns) - float64(r.startNS)) / 1e6 }
	var out []timelineEvent
	for _, in := range r.injections {
		faultNS := in.inj.InjectNS
		if e := in.event; e != nil && e.FaultNS != 0 {
			faultNS = e.FaultNS // when the worker performed it
		}
		out = append(out, timelineEvent{Kind: "fault", Lane: in.inj.Lane, AtMS: at(faultNS), What: in.inj.Fault.String()})
	}
	planned := map[int]bool{}
	for _, in := range r.injections {
		planned[in.inj.PID] = true
	}
	for _, e := range r.events {
		if e.Kind != supervisor.EvFailover && e.Kind != supervisor.EvNoSpare {
			continue
		}
		if e.DetectNS != 0 {
			out = append(out, timelineEvent{Kind: "detected", Lane: e.Lane, AtMS: at(e.DetectNS), What: e.Path.String()})
		}
		switch {
		case e.Kind == supervisor.EvNoSpare:
			out = append(out, timelineEvent{Kind: "no_spare", Lane: e.Lane, AtMS: at(e.DetectNS), What: e.Path.String()})
		case !planned[e.PID]:
			out = append(out, timelineEvent{Kind: "unplanned", Lane: e.Lane, AtMS: at(e.DetectNS), What: e.Path.String()})
		}
		if e.Kind == supervisor.EvFailover && e.FirstCommitNS != 0 {
			out = append(out, timelineEvent{Kind: "failover", Lane: e.Lane, AtMS: at(e.FirstCommitNS)})
		}
	}
	// An output block the clock marked as the fallback's (an xrun, or a
	// block bypassed as poison) went out Latency periods after its input.
	periodMS := float64(c.Block) * 1e3 / float64(c.Rate)
	for l, flags := range r.blockFlags {
		for n, f := range flags {
			if f&shm.BlockBypassed != 0 {
				out = append(out, timelineEvent{Kind: "xrun", Lane: l, AtMS: float64(n+c.Latency) * periodMS})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].AtMS < out[j].AtMS })
	return out
}

func detectionsOf(r *rtResult) []detectionSample {
	var out []detectionSample
	for _, in := range r.injections {
		if e := in.event; e != nil && e.Detection() >= 0 {
			out = append(out, detectionSample{Fault: in.inj.Fault.String(), Path: e.Path.String(), US: float64(e.Detection()) / 1e3})
		}
	}
	return out
}

// drawDemo draws the run into path (.svg or .png): detection latency by
// path, the timeline, and how late the clock woke.
func drawDemo(path string, c *demoConfig, rep *report) error {
	det, err := detectionPlot(rep)
	if err != nil {
		return err
	}
	tl, err := timelinePlot(c, rep)
	if err != nil {
		return err
	}
	late, err := latenessPlot(c, rep)
	if err != nil {
		return err
	}
	return plots.Save(path, 24*vg.Centimeter, 9*vg.Centimeter, [][]*plot.Plot{{tl}, {det, late}})
}

func detectionPlot(rep *report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Detection latency by path (fault → monitor's decision)"
	p.X.Label.Text = "µs (log)"
	p.Y.Label.Text = "faults"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	byPath := map[string][]float64{}
	lo, hi := math.Inf(1), 0.0
	for _, d := range rep.Detections {
		us := max(d.US, 1) // a log axis has no zero
		byPath[d.Path] = append(byPath[d.Path], us)
		lo, hi = min(lo, us), max(hi, us)
	}
	if len(byPath) == 0 {
		p.Title.Text += ": no faults detected"
		p.X.Min, p.X.Max = 10, 10000
		return p, nil
	}
	edges := plots.LogEdges(lo, hi, 10)
	top := 0.0
	var paths []string
	for k := range byPath {
		paths = append(paths, k)
	}
	sort.Strings(paths)
	for i, k := range paths {
		xs := byPath[k]
		counts := plots.Counts(xs, edges)
		for _, n := range counts {
			top = max(top, n)
		}
		l, err := plots.Step(edges, counts, plots.Colour(i))
		if err != nil {
			return nil, err
		}
		p.Add(l)
		sort.Float64s(xs)
		p.Legend.Add(fmt.Sprintf("%s (%d, p50 %.0f µs)", k, len(xs), xs[len(xs)/2]), l)
	}
	p.Y.Min, p.Y.Max = 0, top*1.2+float64(len(paths)) // room for the legend
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p, nil
}

func timelinePlot(c *demoConfig, rep *report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("The run: %d faults injected, %d failovers, %d xruns (colour: lane)", rep.Faults.Injected, rep.Failovers, rep.Xruns)
	p.X.Label.Text = "s since the clock started"
	row := map[string]int{}
	var ticks []plot.Tick
	for i, k := range timelineRows {
		y := len(timelineRows) - i
		row[k] = y
		ticks = append(ticks, plot.Tick{Value: float64(y), Label: strings.ReplaceAll(k, "_", " ")})
	}
	p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Min, p.Y.Max = 0.4, float64(len(timelineRows))+1.4 // room for the legend
	p.X.Min, p.X.Max = 0, c.Duration.Seconds()+float64(c.Latency*c.Block)/float64(c.Rate)
	byLane := map[int]plotter.XYs{}
	var lanes []int
	for _, e := range rep.Timeline {
		if _, ok := byLane[e.Lane]; !ok {
			lanes = append(lanes, e.Lane)
		}
		// A little vertical jitter by lane keeps coincident marks apart.
		y := float64(row[e.Kind]) + 0.12*float64(e.Lane%3-1)
		byLane[e.Lane] = append(byLane[e.Lane], plotter.XY{X: e.AtMS / 1e3, Y: y})
	}
	sort.Ints(lanes)
	for _, l := range lanes {
		s, err := plotter.NewScatter(byLane[l])
		if err != nil {
			return nil, err
		}
		s.GlyphStyle.Color = plots.Colour(l)
		s.GlyphStyle.Radius = vg.Points(2.5)
		s.GlyphStyle.Shape = draw.CircleGlyph{}
		p.Add(s)
		p.Legend.Add("lane "+strconv.Itoa(l), s)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	return p, nil
}

// latenessPlot is the clock's wake-up lateness histogram (power-of-two
// bins, as the clock keeps it) against the headroom --latency leaves and the
// hang timeout.
func latenessPlot(c *demoConfig, rep *report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Clock wake-up lateness (worst %.0f µs)", rep.ClockLateMaxUS)
	p.X.Label.Text = "µs late (log)"
	p.Y.Label.Text = "periods (log)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	type bin struct{ lo, n float64 }
	var bins []bin
	for k, n := range rep.ClockLateHist {
		lo, err := strconv.ParseFloat(strings.TrimSuffix(k, "us+"), 64)
		if err != nil {
			continue
		}
		bins = append(bins, bin{lo, float64(n)})
	}
	sort.Slice(bins, func(i, j int) bool { return bins[i].lo < bins[j].lo })
	top := 10.0
	var pts plotter.XYs
	for _, b := range bins {
		top = max(top, 30*b.n) // room for the legend
		lo := max(b.lo, 0.5)   // the first bin starts at 0: half a µs on a log axis
		hi := max(2*b.lo, 1)
		pts = append(pts, plotter.XY{X: lo, Y: b.n}, plotter.XY{X: hi, Y: b.n})
	}
	if len(pts) > 0 {
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		l.Color = plots.Colour(0)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add("periods", l)
	}
	periodUS := float64(c.Block) * 1e6 / float64(c.Rate)
	for i, m := range []struct {
		us   float64
		name string
	}{
		{float64(c.Latency-1) * periodUS, fmt.Sprintf("headroom (--latency %d)", c.Latency)},
		{float64(c.HangTimeout) / float64(time.Microsecond), "hang timeout"},
	} {
		if m.us <= 0 {
			continue
		}
		l, err := plotter.NewLine(plotter.XYs{{X: m.us, Y: 0.7}, {X: m.us, Y: top}})
		if err != nil {
			return nil, err
		}
		l.Color = plots.Colour(i + 4)
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s %.0f µs", m.name, m.us), l)
	}
	p.Y.Min, p.Y.Max = 0.7, top
	p.Legend.Top = true
	p.Legend.Left = true // the dashed lines run up the right
	p.Add(plotter.NewGrid())
	return p, nil
}
