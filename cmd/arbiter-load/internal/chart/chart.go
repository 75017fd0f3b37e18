// Package chart draws a load sweep as a picture: p50 and p99 latency
// against the offered rate, one colour per series (arbiter beside the peer
// design, or beside the framework baseline), with gonum/plot. The bench
// script writes each sweep as a small CSV and embeds the SVG this package
// makes in BENCHMARKS.md, because a knee is easier to see than to read.
package chart

import (
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Point is one step of a sweep: the offered rate and two latency quantiles.
type Point struct {
	Offered, P50, P99 float64 // per second; milliseconds
	// Fell says the step did not keep up (arrivals dropped, or the rate not
	// achieved): its latency is mostly queueing, and the chart marks it.
	Fell bool
}

// Series is one line pair of the chart, points in rising offered rate.
type Series struct {
	Name   string
	Points []Point
}

// Header is the CSV header ReadCSV expects, in this order; the last
// column (kept_up: 1 or 0) may be left out, and then every step kept up.
var Header = []string{"series", "offered_per_s", "p50_ms", "p99_ms", "kept_up"}

// ReadCSV reads a sweep: the Header line, then one row per step. Series
// keep the order of their first row; points are sorted by offered rate.
func ReadCSV(r io.Reader) ([]Series, error) {
	rows, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("sweep csv: %w", err)
	}
	if len(rows) == 0 || !(slices.Equal(rows[0], Header) || slices.Equal(rows[0], Header[:4])) {
		return nil, fmt.Errorf("sweep csv: the first line must be %q (kept_up optional)", strings.Join(Header, ","))
	}
	var out []Series
	for n, row := range rows[1:] {
		fell := false
		if len(row) == 5 {
			if row[4] != "0" && row[4] != "1" {
				return nil, fmt.Errorf("sweep csv line %d: kept_up %q is not 0 or 1", n+2, row[4])
			}
			fell = row[4] == "0"
		}
		var v [3]float64
		for k := range v {
			if v[k], err = strconv.ParseFloat(row[k+1], 64); err != nil || math.IsNaN(v[k]) || v[k] < 0 {
				return nil, fmt.Errorf("sweep csv line %d: %s %q is not a number >= 0", n+2, Header[k+1], row[k+1])
			}
		}
		i := slices.IndexFunc(out, func(s Series) bool { return s.Name == row[0] })
		if i < 0 {
			out = append(out, Series{Name: row[0]})
			i = len(out) - 1
		}
		out[i].Points = append(out[i].Points, Point{Offered: v[0], P50: v[1], P99: v[2], Fell: fell})
	}
	if len(out) == 0 {
		return nil, errors.New("sweep csv: no rows")
	}
	for _, s := range out {
		slices.SortFunc(s.Points, func(a, b Point) int { return cmp.Compare(a.Offered, b.Offered) })
	}
	return out, nil
}

// palette: colour-blind-safe (Okabe-Ito) blue, vermilion, green, purple.
var palette = []color.Color{
	color.RGBA{0, 114, 178, 255}, color.RGBA{213, 94, 0, 255},
	color.RGBA{0, 158, 115, 255}, color.RGBA{204, 121, 167, 255},
}

// floor keeps a log axis defined when a quantile rounds to 0 ms.
const floor = 0.01

// Chart is a sweep's plot and its legend, which Save draws below the
// axes, off the data: p99 entries in the left column, p50 entries (and the
// mark of steps that did not keep up) in the right one.
type Chart struct {
	Plot *plot.Plot
	cols [2]plot.Legend
}

// New draws the series: p99 solid, p50 dashed, one colour per series, the
// latency axis logarithmic (a knee is a jump of an order of magnitude).
func New(title string, series []Series) (*Chart, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "offered rate (per second)"
	p.Y.Label.Text = "latency (ms, log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	ch := &Chart{Plot: p}
	for k := range ch.cols {
		ch.cols[k] = plot.NewLegend()
		ch.cols[k].Top, ch.cols[k].Left = true, true
		ch.cols[k].TextStyle.Font.Size = vg.Points(10)
	}
	var fell plotter.XYs // the points of steps that did not keep up
	for k, s := range series {
		c := palette[k%len(palette)]
		for col, q := range []struct {
			name  string
			dash  []vg.Length
			value func(Point) float64
			shape draw.GlyphDrawer
		}{
			{"p99", nil, func(p Point) float64 { return p.P99 }, draw.CircleGlyph{}},
			{"p50", []vg.Length{vg.Points(4), vg.Points(3)}, func(p Point) float64 { return p.P50 }, draw.BoxGlyph{}},
		} {
			xys := make(plotter.XYs, len(s.Points))
			for i, pt := range s.Points {
				xys[i] = plotter.XY{X: pt.Offered, Y: math.Max(q.value(pt), floor)}
			}
			line, points, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, fmt.Errorf("series %s %s: %w", s.Name, q.name, err)
			}
			line.Color, line.Dashes, line.Width = c, q.dash, vg.Points(1.5)
			points.Color, points.Shape, points.Radius = c, q.shape, vg.Points(2.5)
			p.Add(line, points)
			ch.cols[col].Add(s.Name+" "+q.name, line, points)
			fell = append(fell, fallen(s.Points, xys)...)
		}
	}
	if len(fell) > 0 {
		marks, err := plotter.NewScatter(fell)
		if err != nil {
			return nil, err
		}
		marks.Shape, marks.Radius, marks.Color = draw.CrossGlyph{}, vg.Points(5), color.Black
		p.Add(marks)
		ch.cols[1].Add("step did not keep up", marks)
	}
	return ch, nil
}

// fallen returns the plotted points of the steps that did not keep up.
func fallen(pts []Point, xys plotter.XYs) plotter.XYs {
	var out plotter.XYs
	for i, pt := range pts {
		if pt.Fell {
			out = append(out, xys[i])
		}
	}
	return out
}

// Chart sizes: the plot area (axes, title) and the legend's margins.
const (
	width      = 16 * vg.Centimeter
	plotHeight = 9 * vg.Centimeter
	margin     = 0.3 * vg.Centimeter
)

// Save writes the chart to path, in the format its extension names (.svg,
// .png, ...): the plot 16 cm by 9 cm, the legend in a band below it.
func Save(ch *Chart, path string) (err error) {
	ext := strings.ToLower(filepath.Ext(path))
	if ext == "" {
		return fmt.Errorf("%s: name the format with an extension (.svg, .png)", path)
	}
	var legend vg.Length
	for k := range ch.cols {
		r := ch.cols[k].Rectangle(draw.Canvas{})
		legend = max(legend, r.Max.Y-r.Min.Y)
	}
	band := legend + 2*margin
	cw, err := draw.NewFormattedCanvas(width, plotHeight+band, ext[1:])
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	dc := draw.New(cw)
	ch.Plot.Draw(draw.Crop(dc, 0, 0, band, 0))
	strip := draw.Crop(dc, margin, -margin, margin, -(plotHeight + margin))
	left := ch.cols[0].Rectangle(strip)
	second := max(strip.Min.X+(left.Max.X-left.Min.X)+margin, strip.Min.X+(strip.Max.X-strip.Min.X)/2)
	ch.cols[0].Draw(strip)
	ch.cols[1].Draw(draw.Crop(strip, second-strip.Min.X, 0, 0, 0))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	_, err = cw.WriteTo(f)
	return err
}
