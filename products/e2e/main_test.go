// Package e2e_test runs arbiter (on a real redis-server), the card service
// and the loan service as separate processes, each service with its own
// SQLite file, and checks from all three that a customer applying for both
// products at the same moment ends up with exactly one.
package e2e_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/arbiter-bank/arbiter/products/internal/proctest"
)

// Binaries built once per test run.
var arbiterBin, productsvcBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for pkg, bin := range map[string]*string{
		"github.com/arbiter-bank/arbiter/cmd/arbiter":    &arbiterBin,
		"github.com/arbiter-bank/arbiter/cmd/productsvc": &productsvcBin,
	} {
		if *bin, err = proctest.Build(dir, pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}
