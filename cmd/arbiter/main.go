// Command arbiter serves the arbiter API: atomic exclusivity checks, holds,
// OTP and JWT credentials, and redemptions, on Redis.
//
// With no ARBITER_REDIS_URL it runs on an embedded in-memory Redis with demo
// clients and an ephemeral signing key (data is lost at exit). With
// ARBITER_REDIS_URL it runs in production mode and requires ARBITER_CLIENTS
// and ARBITER_SIGNING_KEY, which `arbiter keygen` and `arbiter hash` make.
// `arbiter -h` lists every setting and subcommand.
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
	if err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "arbiter:", err)
		os.Exit(1)
	}
}
