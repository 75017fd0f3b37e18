// Command arbiter-load runs arbiter's load scenarios where k6 is not
// installed: the same three scenarios as deploy/k6 (checks, contention,
// soak), with an open-model arrival rate, HdrHistogram latencies per
// endpoint, a progress line every second and a JSON report. It also holds
// the benchmark helpers deploy/bench/run.sh uses (ping, storebench,
// preload). `arbiter-load -h` lists them.
//
// It exits 1 when a run breaks an invariant (a customer holding two
// products), and, unless -allow-failures, when a request failed or an
// arrival was dropped.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "arbiter-load:", err)
		os.Exit(1)
	}
}
