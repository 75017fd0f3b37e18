package client_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"

	"github.com/arbiter-bank/arbiter/products/internal/proctest"
)

// arbiterURL is the base URL of a real arbiter process (embedded mode, demo
// keys) that the tests and examples of this package share.
var arbiterURL string

// The demo API keys of arbiter's embedded mode.
const (
	checkerKey = "demo-checker-key" // branch-portal: checker
	cardKey    = "demo-card-key"    // card-service: checker, redeemer of credit_card
	loanKey    = "demo-loan-key"    // loan-service: checker, redeemer of personal_loan
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "client-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin, err := proctest.Build(dir, "github.com/arbiter-bank/arbiter/cmd/arbiter")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	p, err := proctest.StartNoCleanup(bin, []string{"-addr", "127.0.0.1:0", "-log-level", "warn"}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer p.Stop()
	arbiterURL = p.URL
	return m.Run()
}

// newCustomer returns a customer id no earlier test or example has used,
// so tests stay independent when run again with -count.
func newCustomer(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}
