package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/cmd/arbiter-load/internal/load"
)

const usage = `Usage: arbiter-load SCENARIO [flags]

Scenarios (open model: -rate iterations/s for -duration):
  checks      distinct customers: check, then redeem the approval token (201, 201);
              -refused F aims that share of checks at customers holding a conflicting product (409)
  contention  card and loan checks and redemptions racing over -customers customers
              (a fresh pool every 2s); then every customer is read back: two grants = violation
  soak        long mixed load: redemptions by token and OTP, cancellations, refusals, expiries
  ping        GET -path (default /healthz): the framework baseline, no Redis

Benchmark helpers (deploy/bench/run.sh):
  storebench  arbiter's store vs the redsync peer design, in process, same Redis (-redis-url)
  preload     import -customers granted customers straight into Redis (-redis-url)
  closed      -concurrency workers repeating -op (check, redeem, refusal, ping) for -duration:
              throughput; -pid: the server's CPU per request; -redis-url and -redis-pid: Redis's;
              -pprof-url and -profile take arbiter's CPU profile of the window
  cost        each operation alone, -requests times: Redis µs per script call (commandstats),
              the script MONITOR saw, arbiter's CPU per request (-pid); vs a minimal hold script
  footprint   one customer's keys after check+redeem and after check+cancel: MEMORY USAGE, TTL
  plot        draw a sweep CSV (-in: series,offered_per_s,p50_ms,p99_ms) as an SVG (-out), -png too
  bare        serve 204 No Content to any request on -addr, no middleware: the baseline
              the same clients measure arbiter against (ping, closed -op ping)

Flags:`

// scenarioFlags are the flags of every subcommand.
type scenarioFlags struct {
	base, jsonPath, redisURL, spawn, path, prefix string
	in, out, png, title, pattern, addr            string
	op, pprofURL, profile, rates                  string
	keys                                          load.Keys
	cfg                                           load.Config
	timeout, rtt                                  time.Duration
	redeem, quiet, allowFailures, autopipeline    bool
	concurrency, rounds, from, requests, pid      int
	setup, redisPID                               int
}

func parseFlags(name string, args []string, getenv func(string) string, stderr io.Writer) (*scenarioFlags, error) {
	f := &scenarioFlags{}
	fs := flag.NewFlagSet("arbiter-load "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&f.base, "base-url", env("BASE_URL", "http://127.0.0.1:8080"), "arbiter's base URL (env BASE_URL)")
	fs.Float64Var(&f.cfg.Rate, "rate", 200, "iterations started per second")
	fs.DurationVar(&f.cfg.Duration, "duration", 30*time.Second, "how long iterations keep starting")
	fs.IntVar(&f.cfg.Customers, "customers", 0, "contention pool size (default 20); checks: customers refused checks aim at (default 1000); preload: total customers")
	fs.Float64Var(&f.cfg.Refused, "refused", 0, "checks: share (0-1) of checks refused for a conflicting product")
	fs.IntVar(&f.cfg.MaxInFlight, "max-in-flight", 1000, "concurrent iterations at most; more arrivals are dropped (k6 maxVUs)")
	fs.BoolVar(&f.redeem, "redeem", true, "checks: redeem each approval token (false: checks only)")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.StringVar(&f.keys.Checker, "checker-key", env("CHECKER_KEY", load.DemoKeys.Checker), "a checker's API key (env CHECKER_KEY)")
	fs.StringVar(&f.keys.Card, "card-key", env("CARD_KEY", load.DemoKeys.Card), "card-service's key: checker and credit_card redeemer (env CARD_KEY)")
	fs.StringVar(&f.keys.Loan, "loan-key", env("LOAN_KEY", load.DemoKeys.Loan), "loan-service's key: checker and personal_loan redeemer (env LOAN_KEY)")
	fs.StringVar(&f.jsonPath, "json", "", "write the JSON report to this file (- for stdout)")
	fs.StringVar(&f.redisURL, "redis-url", getenv("ARBITER_REDIS_URL"), "arbiter's Redis: adds INFO commandstats deltas to the report; required by storebench and preload")
	fs.StringVar(&f.spawn, "spawn", "", "path of an arbiter binary to start in demo mode for the run (overrides -base-url)")
	fs.StringVar(&f.path, "path", "/healthz", "ping: the route to request")
	fs.StringVar(&f.prefix, "prefix", "", "customer id prefix (default: unique per run; preload: pre)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress line")
	fs.BoolVar(&f.allowFailures, "allow-failures", false, "exit 0 despite failed requests or dropped arrivals (violations still fail)")
	fs.IntVar(&f.concurrency, "concurrency", 50, "storebench, preload: concurrent workers")
	fs.IntVar(&f.rounds, "rounds", 2, "storebench: alternating rounds of each design")
	fs.DurationVar(&f.rtt, "rtt", 0, "storebench: network round-trip time to simulate between the designs and Redis (each write to Redis waits this long)")
	fs.BoolVar(&f.autopipeline, "autopipeline", false, "storebench: arbiter's store autopipelines its script calls (ARBITER_REDIS_AUTOPIPELINE=on)")
	fs.IntVar(&f.from, "from", 0, "preload: customers already loaded (import ids from..customers-1)")
	fs.IntVar(&f.requests, "requests", 2000, "cost: measured calls of each operation")
	fs.IntVar(&f.pid, "pid", 0, "cost, closed: the server's process id, for its CPU per request (/proc/<pid>/stat)")
	fs.IntVar(&f.redisPID, "redis-pid", 0, "closed: redis-server's process id, for its CPU per request (/proc/<pid>/stat)")
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8081", "bare: the address to serve on")
	fs.StringVar(&f.op, "op", "check", "closed: the request each worker repeats: check, redeem (of -setup holds placed first), refusal (a loan for one of -setup customers granted a card) or ping")
	fs.IntVar(&f.setup, "setup", 0, "closed -op redeem: holds placed before the measure; -op refusal: customers granted a card")
	fs.StringVar(&f.pprofURL, "pprof-url", "", "closed: arbiter's pprof listener (http://127.0.0.1:6060): profile the measured window")
	fs.StringVar(&f.profile, "profile", "", "closed: write that CPU profile to this file")
	fs.StringVar(&f.rates, "rates", "", "storebench: offered rates (\"1000 2000 4000\"): an open-model sweep of both designs' checks, -duration per step")
	fs.StringVar(&f.pattern, "pattern", "arb:{%s}*", "footprint: SCAN pattern of one customer's keys (its hash tag), %s the customer id")
	fs.StringVar(&f.in, "in", "", "plot: the sweep CSV to draw")
	fs.StringVar(&f.out, "out", "", "plot: the chart to write (.svg)")
	fs.StringVar(&f.png, "png", "", "plot: also write the chart as this PNG")
	fs.StringVar(&f.title, "title", "", "plot: the chart's title")
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if f.cfg.Rate <= 0 || f.cfg.Duration <= 0 {
		return nil, errors.New("-rate and -duration must be positive")
	}
	if f.cfg.Refused < 0 || f.cfg.Refused > 1 {
		return nil, errors.New("-refused must be between 0 and 1")
	}
	f.cfg.Prefix = f.prefix
	return f, nil
}

// run is the whole program; main only calls it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 || strings.HasPrefix(args[1], "-") {
		fmt.Fprintln(stderr, usage)
		return errors.New("name a scenario")
	}
	name := args[1]
	f, err := parseFlags(name, args[2:], getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	switch name {
	case "storebench":
		return storeBench(ctx, f, stdout, stderr)
	case "preload":
		return preload(ctx, f, stderr)
	case "plot":
		return plotSweep(f, stderr)
	case "cost":
		return costBench(ctx, f, stdout, stderr)
	case "footprint":
		return footprint(ctx, f, stdout)
	case "closed":
		return closedLoopHTTP(ctx, f, stdout, stderr)
	case "bare":
		return serveBare(ctx, f, stderr)
	case "checks", "contention", "soak", "ping":
	default:
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("unknown scenario %q", name)
	}
	if f.spawn != "" {
		p, err := load.Spawn(ctx, f.spawn, nil, []string{"ARBITER_REDIS_URL="}, nil)
		if err != nil {
			return err
		}
		defer p.Stop()
		f.base = p.Base
	}
	if !f.quiet {
		f.cfg.Progress = stderr
	}
	rep, err := scenario(ctx, name, f)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d iterations at %.0f/s offered, %.1f/s achieved, %d dropped, %d failed requests, %d violations\n%s",
		name, rep.Iterations, rep.Rate, rep.Achieved, rep.Dropped, rep.Failed, len(rep.Violations), load.Table(rep.Endpoints))
	if rep.Redis != nil {
		fmt.Fprintf(stdout, "redis: %.3f client commands/request (%.3f script calls, %d EVAL fallbacks), %.1f in-script commands/request\n",
			rep.Redis.ClientCommandsPerReq, rep.Redis.ScriptCallsPerRequest, rep.Redis.EvalFallbacks, rep.Redis.InScriptCommandsPerReq)
	}
	for _, v := range rep.Violations {
		fmt.Fprintln(stdout, "VIOLATION:", v)
	}
	if err := writeJSON(f.jsonPath, stdout, rep); err != nil {
		return err
	}
	switch {
	case len(rep.Violations) > 0:
		return fmt.Errorf("%d invariant violations", len(rep.Violations))
	case !f.allowFailures && rep.Failed > 0:
		return fmt.Errorf("%d requests failed or got an unexpected status", rep.Failed)
	case !f.allowFailures && rep.Dropped > 0:
		return fmt.Errorf("%d arrivals dropped: the load tool or the service could not keep up", rep.Dropped)
	}
	return nil
}

// scenario runs one HTTP scenario, with Redis commandstats around it when
// -redis-url is set.
func scenario(ctx context.Context, name string, f *scenarioFlags) (load.Report, error) {
	conns := f.cfg.MaxInFlight
	if conns <= 0 {
		conns = 1000
	}
	c := load.NewClient(f.base, f.keys, conns, f.timeout, load.NewRecorder())
	defer c.CloseIdle()
	if err := load.WaitReady(ctx, c.Base, 10*time.Second); err != nil {
		return load.Report{}, err
	}
	var rdb *redis.Client
	var before map[string]int64
	if f.redisURL != "" {
		opts, err := redis.ParseURL(f.redisURL)
		if err != nil {
			return load.Report{}, fmt.Errorf("-redis-url: %w", err)
		}
		rdb = redis.NewClient(opts)
		defer rdb.Close()
	}
	snapshot := func() {
		if rdb == nil {
			return
		}
		var err error
		if before, err = load.CommandStats(ctx, rdb); err != nil {
			before = nil // the report then has no redis section
		}
	}
	f.cfg.Ready, f.cfg.NoRedeem = snapshot, !f.redeem
	var (
		rep load.Report
		err error
	)
	switch name {
	case "checks":
		rep, err = load.Checks(ctx, c, f.cfg)
	case "contention":
		rep, err = load.Contention(ctx, c, f.cfg)
	case "soak":
		rep, err = load.Soak(ctx, c, f.cfg)
	case "ping":
		rep = load.Ping(ctx, c, f.cfg, f.path)
	}
	if err != nil {
		return rep, err
	}
	if rdb != nil && before != nil {
		after, err := load.CommandStats(ctx, rdb)
		if err == nil {
			d := load.Delta(before, after, c.Rec.Served())
			d.Footprint(ctx, rdb)
			rep.Redis = &d
		}
	}
	return rep, nil
}

func writeJSON(path string, stdout io.Writer, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
