package chart

import (
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestReadCSV(t *testing.T) {
	f, err := os.Open("testdata/sweep.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	series, err := ReadCSV(f)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(series), 2; got != want {
		t.Fatalf("series = %d, want %d", got, want)
	}
	if got, want := series[0].Name, "arbiter"; got != want {
		t.Fatalf("first series = %q, want %q (file order)", got, want)
	}
	if got, want := len(series[0].Points), 4; got != want {
		t.Fatalf("arbiter points = %d, want %d", got, want)
	}
	if got, want := series[1].Points[2], (Point{Offered: 2000, P50: 14.2, P99: 61.5, Fell: true}); got != want {
		t.Fatalf("redsync third point = %+v, want %+v", got, want)
	}
}

func TestReadCSVWithoutKeptUp(t *testing.T) {
	series, err := ReadCSV(strings.NewReader(strings.Join(Header[:4], ",") + "\na,1,2,3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := series[0].Points[0], (Point{Offered: 1, P50: 2, P99: 3}); got != want {
		t.Fatalf("point = %+v, want %+v", got, want)
	}
}

func TestReadCSVRejects(t *testing.T) {
	for name, in := range map[string]string{
		"no header":    "arbiter,1,2,3\n",
		"empty":        "",
		"only header":  strings.Join(Header, ",") + "\n",
		"not a number": strings.Join(Header, ",") + "\narbiter,x,2,3\n",
		"negative":     strings.Join(Header, ",") + "\narbiter,1,-2,3\n",
		"short row":    strings.Join(Header, ",") + "\narbiter,1,2\n",
		"kept_up 2":    strings.Join(Header, ",") + "\narbiter,1,2,3,2\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ReadCSV(strings.NewReader(in)); err == nil {
				t.Fatalf("ReadCSV(%q) = nil error, want one", in)
			}
		})
	}
}

// TestSaveSVG draws the fixture and checks the file is well-formed SVG
// that names every line in its legend.
func TestSaveSVG(t *testing.T) {
	f, err := os.Open("testdata/sweep.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	series, err := ReadCSV(f)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New("checks: arbiter vs redsync", series)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sweep.svg")
	if err := Save(p, path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(strings.NewReader(string(data)))
	var root string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if got, want := root, "svg"; got != want {
		t.Fatalf("root element = %q, want %q", got, want)
	}
	for _, label := range []string{"arbiter p99", "arbiter p50", "redsync p99", "redsync p50", "offered rate", "did not keep up"} {
		if !strings.Contains(string(data), label) {
			t.Errorf("the SVG has no text %q", label)
		}
	}
}

func TestSaveNeedsExtension(t *testing.T) {
	p, err := New("x", []Series{{Name: "a", Points: []Point{{Offered: 1, P50: 1, P99: 2}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := Save(p, filepath.Join(t.TempDir(), "noext")); err == nil {
		t.Fatal("Save without an extension = nil error, want one")
	}
}

// TestLegendBelowTheAxes checks the legend is off the data: every entry's
// text lies below the x axis's label (vgsvg writes texts in y-up
// coordinates, as y="-height" with scale(1, -1)).
func TestLegendBelowTheAxes(t *testing.T) {
	series := []Series{
		{Name: "a", Points: []Point{{Offered: 1, P50: 1, P99: 2}, {Offered: 2, P50: 50, P99: 900, Fell: true}}},
		{Name: "b", Points: []Point{{Offered: 1, P50: 1, P99: 3}}},
	}
	ch, err := New("legend", series)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "legend.svg")
	if err := Save(ch, path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	heights := svgTextHeights(t, data)
	axis, ok := heights["offered rate (per second)"]
	if !ok {
		t.Fatal("no x axis label in the SVG")
	}
	for _, label := range []string{"a p99", "a p50", "b p99", "b p50", "step did not keep up"} {
		h, ok := heights[label]
		if !ok {
			t.Errorf("the legend has no entry %q", label)
			continue
		}
		if h >= axis {
			t.Errorf("legend entry %q at height %.1f, want below the x axis label (%.1f)", label, h, axis)
		}
	}
}

// svgTextHeights maps each <text>'s content to its height from the bottom.
func svgTextHeights(t *testing.T, data []byte) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	dec := xml.NewDecoder(strings.NewReader(string(data)))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "text" {
			continue
		}
		var y float64
		for _, a := range se.Attr {
			if a.Name.Local == "y" {
				if y, err = strconv.ParseFloat(a.Value, 64); err != nil {
					t.Fatalf("text y %q: %v", a.Value, err)
				}
			}
		}
		var content string
		if err := dec.DecodeElement(&content, &se); err != nil {
			t.Fatal(err)
		}
		out[content] = -y
	}
}
