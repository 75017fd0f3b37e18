package redisstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
)

// DefaultWaitTimeout bounds how long a redemption waits for its replicas
// when Options.WaitReplicas is set and Options.WaitTimeout is not.
const DefaultWaitTimeout = 100 * time.Millisecond

// maxRedirects bounds how often one script call (evalOnce, and evalWait for
// a durable redemption) follows a MOVED or ASK reply, or waits out a
// TRYAGAIN or CLUSTERDOWN, before it gives up with ErrUnavailable. Each of
// these replies means the script did not run. With backoff's steps the
// waits of one command add up to about 1.3 s, which outlasts the migration
// of one slot; a script sent as EVALSHA and then EVAL (NOSCRIPT) may wait
// that long twice. The caller's context bounds it all.
const maxRedirects = 8

// Redis WAIT counts the replicas that acknowledged every write the calling
// *connection* made, so it must follow the script on the same connection:
// a WAIT sent on another pooled connection would count that connection's
// (older) writes and could answer "replicated" for a grant that is not.
// runDurable therefore sends EVALSHA and WAIT as one pipeline on one
// connection to the customer's master:
//
//   - single node and Sentinel: a pipeline of the client itself, which
//     always runs on one connection to the master;
//   - Cluster: a pipeline of the node client that ClusterClient.MasterForKey
//     returns for the customer's hash tag. That node client does not follow
//     redirects, so runDurable does: MOVED reloads the slot map and tries
//     again, ASK pipelines ASKING + EVALSHA + WAIT on the importing master,
//     TRYAGAIN and CLUSTERDOWN back off and try again. A redirected script
//     has not run, so trying again cannot apply it twice.
//
// The happy path stays one round trip: the WAIT travels with the script.
//
// A replayed redemption (the same client retrying) writes nothing, so its
// connection has nothing of its own to wait for; runDurable then writes
// arb:{C}:sync (a string with a short TTL, in the customer's slot) and waits
// for that write. Redis replicates a master's writes in order, so once the
// replicas have it they also have the grant the script just read.

// syncTTL is how long the arb:{C}:sync marker lives; its value is unused.
const syncTTL = 10 * time.Second

func syncKey(customer string) string { return "arb:{" + customer + "}:sync" }

func (s *Store) waitTimeout() time.Duration {
	if s.opts.WaitTimeout > 0 {
		return s.opts.WaitTimeout
	}
	return DefaultWaitTimeout
}

// runDurable is run for a redemption when Options.WaitReplicas is set: the
// same script and reply, except that a grant (new or replayed) is returned
// only once WaitReplicas replicas acknowledged it; otherwise the error is
// validation.ErrNotDurable and the grant stays applied on the master, so the
// client's retry replays it.
func (s *Store) runDurable(ctx context.Context, sc *luaScript, customer string, now time.Time, extraKeys []string, args, reply any) error {
	res, acked, err := s.runWaited(ctx, sc, customer, now, extraKeys, args, "")
	if err != nil {
		return err
	}
	if k := kindOf(res); (k == kindGranted || k == kindReplay) && acked < int64(s.opts.WaitReplicas) {
		return validation.RedemptionNotDurable(acked, int64(s.opts.WaitReplicas), s.waitTimeout())
	}
	return decodeReply(reply, res)
}

// runConfirmed runs a script whose answer a caller may act on for good:
// a read (a product service settles its pending applications on
// GET /v1/customers/{id}, and issuing a product on a grant that a failover
// can still lose would break the invariant across systems) or a release (a
// product service forgets its closed product once arbiter confirms; a
// release a failover undoes would bring the grant back). So, when
// Options.WaitReplicas is set, the answer — whatever it is, a refusal such
// as grant_not_found included — is given only once the replicas have every
// write the master had made when the script ran: the sync marker is
// written right after the script on the same connection, and WAIT waits
// for it (Redis replicates in order), all in one pipeline, one round trip.
// Fewer replicas than WaitReplicas within WaitTimeout is
// validation.ReasonNotDurable; the caller retries.
func (s *Store) runConfirmed(ctx context.Context, sc *luaScript, customer string, now time.Time, args, reply any) error {
	if s.opts.WaitReplicas <= 0 {
		return s.run(ctx, sc, customer, now, nil, args, reply)
	}
	res, acked, err := s.runWaited(ctx, sc, customer, now, nil, args, syncKey(customer))
	if err != nil {
		return err
	}
	if acked < int64(s.opts.WaitReplicas) {
		return validation.AnswerNotDurable(acked, int64(s.opts.WaitReplicas), s.waitTimeout())
	}
	return decodeReply(reply, res)
}

// runWaited is run without decoding: the script, then WAIT on the same
// connection (evalWait; marker, when given, is written between them), and
// for a replayed redemption, which wrote nothing of its own, the sync
// marker and WAIT again (syncWait). It returns the script's unwrapped reply
// and the replicas WAIT counted; a failure is already classified
// (unavailable).
func (s *Store) runWaited(ctx context.Context, sc *luaScript, customer string, now time.Time, extraKeys []string, args any, marker string) ([]any, int64, error) {
	keys := scriptKeys(customer, extraKeys)
	argv := argv(argv(nil, s.common(now)), args)
	start := time.Now()
	res, acked, err := s.evalWait(ctx, sc, keys, argv, marker)
	if err == nil {
		res, err = s.unwrap(sc.name, res)
	}
	if err == nil && marker == "" && kindOf(res) == kindReplay {
		acked, err = s.syncWait(ctx, customer)
	}
	if s.opts.Observe != nil {
		s.opts.Observe(sc.name, time.Since(start), err)
	}
	if err != nil {
		return nil, 0, scriptFailure(sc.name, err)
	}
	return res, acked, nil
}

// evalWait runs the script (as its function where fcall would) then WAIT
// on one connection to the master of keys[0]'s slot, and returns the
// script's reply and WAIT's count. A marker key, when given, is written
// between the two, so that WAIT has a write of this connection to wait for
// even when the script wrote nothing (a read).
func (s *Store) evalWait(ctx context.Context, sc *luaScript, keys []string, argv []any, marker string) ([]any, int64, error) {
	function, evalsha := s.useFunction(sc), true
	var ask string
	var lastErr error
	for attempt := 0; attempt <= maxRedirects; attempt++ {
		pipe, err := s.pinnedPipeline(ctx, keys[0], ask)
		if err != nil {
			return nil, 0, err
		}
		if ask != "" {
			pipe.Do(ctx, "asking")
		}
		var ev *redis.Cmd
		switch {
		case function:
			ev = pipe.Do(ctx, evalArgs("fcall", sc.fn, keys, argv)...)
		case evalsha:
			ev = sc.EvalSha(ctx, pipe, keys, argv...)
		default:
			ev = sc.Eval(ctx, pipe, keys, argv...)
		}
		var set *redis.StatusCmd
		if marker != "" {
			set = pipe.Set(ctx, marker, time.Now().UnixMilli(), syncTTL)
		}
		wait := pipe.Do(ctx, "wait", s.opts.WaitReplicas, s.waitTimeout().Milliseconds())
		_, _ = pipe.Exec(ctx) // every command carries its own error
		err = ev.Err()
		if err == nil {
			res, err := ev.Slice()
			if err != nil {
				return nil, 0, err
			}
			if set != nil {
				if err := set.Err(); err != nil {
					return nil, 0, fmt.Errorf("sync marker: %w", err)
				}
			}
			n, err := wait.Int64()
			return res, n, err
		}
		lastErr, ask = err, ""
		switch {
		case function && s.scriptInstead(err):
			function = false
		case !function && evalsha && strings.HasPrefix(err.Error(), "NOSCRIPT"):
			evalsha = false
		case isMoved(err):
			if cc, ok := s.rdb.(*redis.ClusterClient); ok {
				cc.ReloadState(ctx)
			}
			if err := backoff(ctx, attempt); err != nil {
				return nil, 0, err
			}
		case isAsk(err):
			ask, _ = redis.IsAskError(err)
		case redis.IsTryAgainError(err) || redis.IsClusterDownError(err):
			if err := backoff(ctx, attempt); err != nil {
				return nil, 0, err
			}
		default:
			if cc, ok := s.rdb.(*redis.ClusterClient); ok && topologyChanged(err) {
				cc.ReloadState(ctx) // node clients bypass FollowFailovers' hook
			}
			return nil, 0, err
		}
	}
	return nil, 0, fmt.Errorf("gave up after %d redirects: %w", maxRedirects, lastErr)
}

// syncWait writes the customer's sync marker and waits for it, on one
// connection to the customer's master; it returns WAIT's count.
func (s *Store) syncWait(ctx context.Context, customer string) (int64, error) {
	key := syncKey(customer)
	var lastErr error
	for attempt := 0; attempt <= maxRedirects; attempt++ {
		pipe, err := s.pinnedPipeline(ctx, key, "")
		if err != nil {
			return 0, err
		}
		set := pipe.Set(ctx, key, time.Now().UnixMilli(), syncTTL)
		wait := pipe.Do(ctx, "wait", s.opts.WaitReplicas, s.waitTimeout().Milliseconds())
		_, _ = pipe.Exec(ctx)
		err = set.Err()
		if err == nil {
			return wait.Int64()
		}
		lastErr = err
		if !isMoved(err) && !isAsk(err) && !redis.IsTryAgainError(err) && !redis.IsClusterDownError(err) {
			if cc, ok := s.rdb.(*redis.ClusterClient); ok && topologyChanged(err) {
				cc.ReloadState(ctx)
			}
			return 0, err
		}
		// An ASK for a one-key write means the slot is migrating and the
		// marker is already on the importing side or nowhere: waiting for
		// the migration to end is simpler than following it.
		if cc, ok := s.rdb.(*redis.ClusterClient); ok && isMoved(err) {
			cc.ReloadState(ctx)
		}
		if err := backoff(ctx, attempt); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("sync marker: gave up after %d redirects: %w", maxRedirects, lastErr)
}

// pinnedPipeline returns a pipeline whose commands all run on one connection
// to the master that serves key, or, when ask is set, to the master at that
// address (the target of an ASK redirect).
func (s *Store) pinnedPipeline(ctx context.Context, key, ask string) (redis.Pipeliner, error) {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return s.rdb.Pipeline(), nil
	}
	if ask == "" {
		node, err := cc.MasterForKey(ctx, key)
		if err != nil {
			return nil, err
		}
		return node.Pipeline(), nil
	}
	var mu sync.Mutex
	var found *redis.Client
	err := cc.ForEachMaster(ctx, func(_ context.Context, node *redis.Client) error {
		if node.Options().Addr == ask {
			mu.Lock()
			found = node
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fmt.Errorf("ASK to %s, which is not a known master", ask)
	}
	return found.Pipeline(), nil
}

func isMoved(err error) bool { _, ok := redis.IsMovedError(err); return ok }
func isAsk(err error) bool   { _, ok := redis.IsAskError(err); return ok }

// backoff sleeps 10 ms, 20 ms, 40 ms, ... (at most 320 ms) before another
// attempt, or returns early with the context's error.
func backoff(ctx context.Context, attempt int) error {
	d := 10 * time.Millisecond << min(attempt, 5)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
