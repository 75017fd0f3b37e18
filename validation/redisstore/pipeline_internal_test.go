package redisstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// TestBatchedCallsAreNotResent: go-redis resends a whole pipeline when its
// first command answers with a retryable error reply (LOADING here;
// TRYAGAIN during a reshard on a cluster), though the other commands of
// the pipeline ran. An autopipelined batch of scripts is such a pipeline,
// its other commands other requests' scripts; resent, a check would run
// twice and refuse its own hold. A batched call (onceCmd.batched) forbids
// the resend; the unmarked run shows the resend it prevents. The client
// keeps go-redis's default MaxRetries (3), under which it resends.
func TestBatchedCallsAreNotResent(t *testing.T) {
	const incr = "return redis.call('INCR', KEYS[1])"
	for _, tc := range []struct {
		name    string
		batched bool
		want    int64 // times the second script ran
	}{
		{"batched: run once", true, 1},
		{"unmarked: go-redis resends the pipeline", false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _, rdb := proxiedRedis(t)
			ctx := context.Background()
			first := onceCmd{redis.NewCmd(ctx, "eval", incr, 1, "{A}:n"), tc.batched}
			second := onceCmd{redis.NewCmd(ctx, "eval", incr, 1, "{B}:n"), tc.batched}
			pipe := rdb.Pipeline()
			_ = pipe.Process(ctx, first)
			_ = pipe.Process(ctx, second)
			_, _ = pipe.Exec(ctx)

			direct := srv.Client(t)
			if got, err := direct.Get(ctx, "{B}:n").Int64(); err != nil || got != tc.want {
				t.Fatalf("the second script ran %d times (%v), want %d", got, err, tc.want)
			}
			if !tc.batched {
				return
			}
			if err := first.Err(); err == nil || !strings.HasPrefix(err.Error(), "LOADING") {
				t.Errorf("first call: %v, want the LOADING reply", err)
			}
			if err := second.Err(); err != nil {
				t.Errorf("second call: %v", err)
			}
			if n, err := direct.Exists(ctx, "{A}:n").Result(); err != nil || n != 0 {
				t.Errorf("the refused script ran (%d, %v)", n, err)
			}
		})
	}
}

// faultProxy stands between a client and Redis and speaks RESP: it
// answers the first script call it gets with a LOADING error reply
// instead of forwarding it (so that call did not run), and forwards
// everything else.
type faultProxy struct {
	addr    string
	faulted atomic.Bool
}

func startFaultProxy(tb testing.TB, target string) *faultProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &faultProxy{addr: ln.Addr().String()}
	var conns sync.WaitGroup
	tb.Cleanup(func() { ln.Close(); conns.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			conns.Add(1)
			go func() { defer conns.Done(); p.serve(c, s) }()
		}
	}()
	return p
}

// serve relays one connection: commands in order to Redis, and for each
// command, in the same order, Redis's reply or the faked one.
func (p *faultProxy) serve(c, s net.Conn) {
	defer c.Close()
	defer s.Close()
	faked := make(chan bool, 1024) // per command: true when its reply is faked
	go func() {
		defer close(faked)
		in := bufio.NewReader(c)
		for {
			args, err := readCommand(in)
			if err != nil {
				return
			}
			script := args[0] == "fcall" || args[0] == "evalsha" || args[0] == "eval"
			if script && p.faulted.CompareAndSwap(false, true) {
				faked <- true
				continue
			}
			if _, err := s.Write(encodeCommand(args)); err != nil {
				return
			}
			faked <- false
		}
	}()
	out := bufio.NewReader(s)
	for fake := range faked {
		reply := []byte("-LOADING Redis is loading the dataset in memory\r\n")
		if !fake {
			var err error
			if reply, err = readReply(out, nil); err != nil {
				return
			}
		}
		if _, err := c.Write(reply); err != nil {
			return
		}
	}
}

// readCommand reads one RESP command (an array of bulk strings).
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := readLine(r)
	if err != nil {
		return nil, err
	}
	if len(line) == 0 || line[0] != '*' {
		return nil, fmt.Errorf("command %q", line)
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 1 {
		return nil, fmt.Errorf("command %q", line)
	}
	args := make([]string, n)
	for i := range args {
		line, err := readLine(r)
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(line[1:])
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	args[0] = strings.ToLower(args[0])
	return args, nil
}

func encodeCommand(args []string) []byte {
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, "$"+strconv.Itoa(len(a))+"\r\n"+a+"\r\n"...)
	}
	return b
}

// readReply reads one RESP2 or RESP3 reply and returns it raw, appended to
// b.
func readReply(r *bufio.Reader, b []byte) ([]byte, error) {
	line, err := readLine(r)
	if err != nil || line == "" {
		return nil, errors.Join(err, io.ErrUnexpectedEOF)
	}
	b = append(b, line+"\r\n"...)
	n, _ := strconv.Atoi(line[1:])
	switch line[0] {
	case '$', '!', '=', '?':
		if n < 0 {
			return b, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return append(b, buf...), nil
	case '*', '~', '>':
	case '%', '|':
		n *= 2
	default:
		return b, nil
	}
	for range max(n, 0) {
		if b, err = readReply(r, b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	return strings.TrimSuffix(line, "\r\n"), err
}

// TestEndedCallIsNotQueued: a call whose context ended before it joined a
// batch is not sent (a batch runs on a context of its own and would run
// it), and its failure says the script did not run, so no abandon follows.
func TestEndedCallIsNotQueued(t *testing.T) {
	srv := redistest.MustStartRedis(t)
	rdb := srv.Client(t)
	ap := newAutoPipeliner(rdb)
	if ap == nil {
		t.Fatal("no autopipeliner")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before := srv.CommandStats(t)["eval"]
	cmd := call(ctx, ap, "eval", "return redis.call('INCR', KEYS[1])", []string{"{A}:n"}, nil)
	if err := cmd.Err(); !errors.Is(err, context.Canceled) || ambiguous(err) {
		t.Fatalf("call with an ended context: %v (ambiguous %v), want context.Canceled, not ambiguous", err, ambiguous(err))
	}
	if got := srv.CommandStats(t)["eval"] - before; got != 0 {
		t.Fatalf("the server ran %d EVAL", got)
	}
}

// TestBatchedCallRetriesLoading: go-redis never resends a batched call
// (onceCmd.batched), so a reply proving the script did not run (LOADING
// here, as a restarted node answers; READONLY and MASTERDOWN alike) must
// be retried by call itself, as go-redis retries it for a call sent
// alone. The proxy answers the first call LOADING; the call must succeed,
// and the script run exactly once.
func TestBatchedCallRetriesLoading(t *testing.T) {
	srv, p, rdb := proxiedRedis(t)
	ap := newAutoPipeliner(rdb)
	if ap == nil {
		t.Fatal("no autopipeliner")
	}
	ctx := context.Background()
	cmd := call(ctx, ap, "eval", "return redis.call('INCR', KEYS[1])", []string{"{A}:n"}, nil)
	if err := cmd.Err(); err != nil {
		t.Fatalf("batched call after LOADING: %v, want it retried", err)
	}
	if !p.faulted.Load() {
		t.Fatal("the proxy answered no LOADING")
	}
	if got, err := srv.Client(t).Get(ctx, "{A}:n").Int64(); err != nil || got != 1 {
		t.Fatalf("the script ran %d times (%v), want 1", got, err)
	}
}

// TestAutoPipelinerDoesNotResend is TestBatchedCallsAreNotResent through
// the autopipeliner itself: two concurrent calls ride one batch (a batch
// of at most 2, waiting until it holds 2), the first is answered LOADING.
// Marked (call), go-redis resends nothing and call retries just the
// refused one: each script runs once. Unmarked, the autopipeliner's
// pipeline is resent whole and the other script runs twice.
func TestAutoPipelinerDoesNotResend(t *testing.T) {
	const incr = "return redis.call('INCR', KEYS[1])"
	for _, tc := range []struct {
		name    string
		batched bool
		want    int64 // most runs of one script
	}{
		{"batched: each script runs once", true, 1},
		{"unmarked: go-redis resends the batch", false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _, rdb := proxiedRedis(t)
			sizes := &batchSizes{}
			rdb.AddHook(sizes)
			// The first configuration of a client's autopipeliner wins
			// (newAutoPipeliner then returns this one).
			ap, err := rdb.AutoPipelineWithOptions(&redis.AutoPipelineOptions{MaxBatchSize: 2, MaxFlushDelay: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if newAutoPipeliner(rdb) != ap {
				t.Fatal("newAutoPipeliner does not return the client's autopipeliner")
			}
			ctx := context.Background()
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, key := range []string{"{A}:n", "{B}:n"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if tc.batched {
						errs[i] = call(ctx, ap, "eval", incr, []string{key}, nil).Err()
						return
					}
					cmd := redis.NewCmd(ctx, "eval", incr, 1, key)
					_ = ap.Process(ctx, onceCmd{cmd, false})
					errs[i] = cmd.Err()
				}()
			}
			wg.Wait()
			if !sizes.saw(2) {
				t.Fatalf("the two calls did not share a batch (batches %v)", sizes.all())
			}
			direct := srv.Client(t)
			var most int64
			for _, key := range []string{"{A}:n", "{B}:n"} {
				n, err := direct.Get(ctx, key).Int64()
				if err != nil && err != redis.Nil {
					t.Fatal(err)
				}
				most = max(most, n)
			}
			if most != tc.want {
				t.Fatalf("a script ran %d times, want %d", most, tc.want)
			}
			if tc.batched {
				for i, err := range errs {
					if err != nil {
						t.Errorf("call %d: %v", i, err)
					}
				}
			}
		})
	}
}

// batchSizes records the size of every pipeline a client sends.
type batchSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (b *batchSizes) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (b *batchSizes) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (b *batchSizes) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		b.mu.Lock()
		b.sizes = append(b.sizes, len(cmds))
		b.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (b *batchSizes) all() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.sizes...)
}

func (b *batchSizes) saw(n int) bool { return slices.Contains(b.all(), n) }

// TestBatchedCallDeadlineBound pins how long a batched call may outlive
// its request's deadline when Redis stalls (SIGSTOP): go-redis runs a
// batch on a context of its own, so a queued call waits for its batch, and
// a call queued behind a batch in flight for that one first; each batch
// gives up after the client's ReadTimeout. The bound asserted is a
// generous multiple of the configured timeouts (a guard that the call
// returns, not a timing benchmark), and every failure must say the script
// may have run (ambiguous: the abandoner settles it) unless the call was
// never sent.
func TestBatchedCallDeadlineBound(t *testing.T) {
	const readTimeout, deadline = 200 * time.Millisecond, 300 * time.Millisecond
	srv := redistest.MustStartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ReadTimeout: readTimeout, WriteTimeout: readTimeout})
	t.Cleanup(func() { rdb.Close() })
	ap := newAutoPipeliner(rdb)
	if ap == nil {
		t.Fatal("no autopipeliner")
	}
	incr := "return redis.call('INCR', KEYS[1])"
	if err := call(context.Background(), ap, "eval", incr, []string{"{A}:n"}, nil).Err(); err != nil {
		t.Fatal(err)
	}
	srv.Pause(t)
	const calls = 100
	bound := deadline + 10*(readTimeout+readTimeout)
	var wg sync.WaitGroup
	var worst atomic.Int64
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			err := call(ctx, ap, "eval", incr, []string{fmt.Sprintf("{C%d}:n", i)}, nil).Err()
			took := time.Since(start)
			for old := worst.Load(); int64(took) > old && !worst.CompareAndSwap(old, int64(took)); old = worst.Load() {
			}
			switch {
			case err == nil:
				t.Errorf("call %d succeeded against a stopped server", i)
			case !ambiguous(err) && !errors.Is(err, errNotSent):
				t.Errorf("call %d: %v: neither ambiguous nor not sent", i, err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(bound):
		t.Fatalf("batched calls still waiting %v after they began (deadline %v, ReadTimeout %v)", bound, deadline, readTimeout)
	}
	t.Logf("worst call returned after %v (deadline %v, ReadTimeout %v)", time.Duration(worst.Load()), deadline, readTimeout)
}

// TestLateBatchedSuccessIsUnknown: a batched call waits for its batch
// past its own deadline, so the script may run after the caller gave up.
// Reported as success, a check's hold would stay with nobody to redeem it
// (a retry gets hold_exists until it expires); the call must report what a
// call sent alone reports, a reply lost to the deadline (ambiguous), so
// that the abandoner cancels it. Redis is stopped until the call's context
// has ended, then resumed within the client's ReadTimeout.
func TestLateBatchedSuccessIsUnknown(t *testing.T) {
	srv := redistest.MustStartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ReadTimeout: time.Minute})
	t.Cleanup(func() { rdb.Close() })
	ap := newAutoPipeliner(rdb)
	if ap == nil {
		t.Fatal("no autopipeliner")
	}
	incr := "return redis.call('INCR', KEYS[1])"
	if err := call(context.Background(), ap, "eval", incr, []string{"{W}:n"}, nil).Err(); err != nil {
		t.Fatal(err)
	}
	srv.Pause(t)
	ctx, cancel := context.WithCancel(context.Background())
	sent := make(chan struct{})
	rdb.AddHook(pipelineSeen{sent: sent, once: new(sync.Once)})
	result := make(chan error, 1)
	go func() { result <- call(ctx, ap, "eval", incr, []string{"{A}:n"}, nil).Err() }()
	<-sent // the call is in a batch on its way to the stopped server
	cancel()
	srv.Resume(t)
	err := <-result
	if n, gerr := srv.Client(t).Get(context.Background(), "{A}:n").Int64(); gerr != nil || n != 1 {
		t.Fatalf("the script ran %d times (%v), want 1", n, gerr)
	}
	if err == nil || !ambiguous(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("call that ran after its context ended: %v, want context.Canceled, ambiguous", err)
	}
}

// pipelineSeen closes sent when the first batch reaches the client's
// hooks (the autopipeliner's batches, of one command included, pass
// through ProcessHook or ProcessPipelineHook just before being written).
type pipelineSeen struct {
	sent chan struct{}
	once *sync.Once
}

func (p pipelineSeen) DialHook(next redis.DialHook) redis.DialHook { return next }
func (p pipelineSeen) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { p.seen(); return next(ctx, cmd) }
}
func (p pipelineSeen) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { p.seen(); return next(ctx, cmds) }
}

func (p pipelineSeen) seen() { p.once.Do(func() { close(p.sent) }) }

// proxiedRedis is a redis-server, a faultProxy in front of it, and a
// client (go-redis's defaults: MaxRetries 3) through the proxy.
func proxiedRedis(t *testing.T) (*redistest.Server, *faultProxy, *redis.Client) {
	t.Helper()
	srv := redistest.MustStartRedis(t)
	p := startFaultProxy(t, srv.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: p.addr})
	t.Cleanup(func() { rdb.Close() })
	return srv, p, rdb
}
