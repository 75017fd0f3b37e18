package client_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/arbiter-bank/arbiter/products/internal/proctest"
)

// arbiter is a real arbiter process (embedded mode, demo keys) that the
// tests and examples of this package share. It is built and started by the
// first test that asks for arbiterURL, so the tests that need none (the
// retry tests, which the mutation run repeats) do not wait for a build.
var arbiter struct {
	once sync.Once
	dir  string
	proc *proctest.Proc
	err  error
}

// arbiterURL returns the shared arbiter's base URL, starting it on first
// use; it panics if arbiter cannot be built or started.
func arbiterURL() string {
	arbiter.once.Do(func() {
		bin, err := proctest.Build(arbiter.dir, "github.com/arbiter-bank/arbiter/cmd/arbiter")
		if err != nil {
			arbiter.err = err
			return
		}
		arbiter.proc, arbiter.err = proctest.StartNoCleanup(bin, []string{"-addr", "127.0.0.1:0", "-log-level", "warn"}, nil)
	})
	if arbiter.err != nil {
		panic(fmt.Sprintf("arbiter for the client tests: %v", arbiter.err))
	}
	return arbiter.proc.URL
}

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
	arbiter.dir = dir
	defer func() {
		if arbiter.proc != nil {
			arbiter.proc.Stop()
		}
	}()
	return m.Run()
}

// newCustomer returns a customer id no earlier test or example has used,
// so tests stay independent when run again with -count.
func newCustomer(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}
