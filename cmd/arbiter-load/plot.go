package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/arbiter-bank/arbiter/cmd/arbiter-load/internal/chart"
)

// plotSweep draws the sweep CSV -in (chart.Header columns) into -out, and
// into -png too when set (a picture to look at where no SVG viewer is).
func plotSweep(f *scenarioFlags, stderr io.Writer) error {
	if f.in == "" || f.out == "" {
		return errors.New("plot needs -in sweep.csv and -out chart.svg")
	}
	r, err := os.Open(f.in)
	if err != nil {
		return err
	}
	defer r.Close()
	series, err := chart.ReadCSV(r)
	if err != nil {
		return fmt.Errorf("%s: %w", f.in, err)
	}
	p, err := chart.New(f.title, series)
	if err != nil {
		return err
	}
	for _, path := range []string{f.out, f.png} {
		if path == "" {
			continue
		}
		if err := chart.Save(p, path); err != nil {
			return err
		}
		fmt.Fprintln(stderr, "plot: wrote", path)
	}
	return nil
}
