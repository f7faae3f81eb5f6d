// Package plots holds what the demo's and the benchmarks' pictures share:
// writing a grid of gonum plots to one file, and log-spaced histograms of
// latencies. Nothing here runs on a real-time thread.
package plots

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	_ "gonum.org/v1/plot/vg/vgimg" // png
	_ "gonum.org/v1/plot/vg/vgsvg" // svg
)

// Save draws rows of plots, each row rowHeight high and shared evenly by its
// plots, into path; the format (svg or png) follows its extension.
func Save(path string, width, rowHeight vg.Length, rows [][]*plot.Plot) error {
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	if format != "svg" && format != "png" {
		return fmt.Errorf("%s: give a .svg or .png file", path)
	}
	c, err := draw.NewFormattedCanvas(width, rowHeight*vg.Length(len(rows)), format)
	if err != nil {
		return err
	}
	dc := draw.New(c)
	// Each row is its own grid, so a row of one plot takes the full width.
	for i, row := range rows {
		sub := dc
		sub.Max.Y = dc.Max.Y - rowHeight*vg.Length(i)
		sub.Min.Y = sub.Max.Y - rowHeight
		tiles := draw.Tiles{Rows: 1, Cols: len(row), PadX: vg.Millimeter * 6,
			PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
		canvases := plot.Align([][]*plot.Plot{row}, tiles, sub)
		for j, p := range row {
			p.Draw(canvases[0][j])
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LogEdges are bin edges from lo to hi (both > 0), perDecade per factor of
// ten, widened to whole decades so that runs compare bin for bin.
func LogEdges(lo, hi float64, perDecade int) []float64 {
	d0, d1 := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if d1 <= d0 {
		d1 = d0 + 1
	}
	var e []float64
	for i := 0; i <= int(d1-d0)*perDecade; i++ {
		e = append(e, math.Pow(10, d0+float64(i)/float64(perDecade)))
	}
	return e
}

// Counts bins xs by edges (values outside go to the end bins).
func Counts(xs, edges []float64) []float64 {
	n := make([]float64, len(edges)-1)
	for _, x := range xs {
		i := 0
		for i < len(n)-1 && x >= edges[i+1] {
			i++
		}
		n[i]++
	}
	return n
}

// Step is a histogram's outline, for overlaying several on a log axis where
// bars would hide each other: from each bin's left edge, flat to its right.
func Step(edges, counts []float64, c color.Color) (*plotter.Line, error) {
	pts := make(plotter.XYs, 0, len(counts)+1)
	for i, n := range counts {
		pts = append(pts, plotter.XY{X: edges[i], Y: n})
	}
	pts = append(pts, plotter.XY{X: edges[len(edges)-1], Y: counts[len(counts)-1]})
	l, err := plotter.NewLine(pts)
	if err != nil {
		return nil, err
	}
	l.StepStyle = plotter.PostStep
	l.Color = c
	l.Width = vg.Points(1.5)
	return l, nil
}

// Palette is the colours series take, in order (colour-blind safe).
var Palette = []color.Color{
	color.RGBA{0, 114, 178, 255},   // blue
	color.RGBA{230, 159, 0, 255},   // orange
	color.RGBA{0, 158, 115, 255},   // green
	color.RGBA{204, 121, 167, 255}, // purple
	color.RGBA{213, 94, 0, 255},    // vermillion
	color.RGBA{86, 180, 233, 255},  // sky
	color.RGBA{240, 228, 66, 255},  // yellow
	color.RGBA{0, 0, 0, 255},
}

// Colour is the i-th palette colour, cycling.
func Colour(i int) color.Color { return Palette[i%len(Palette)] }
