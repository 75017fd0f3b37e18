package redisstore

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// FollowFailovers makes a cluster client reload its slot map in the
// background as soon as a command fails for a reason other than a normal
// error reply (a dead node, a refused connection, a timeout) or with
// CLUSTERDOWN / TRYAGAIN. Without it go-redis keeps sending a dead master's
// slots to the dead address until its next periodic reload (10 s), because
// a refused connection is not a MOVED reply; with it the promoted replica
// is found within one reload after the cluster elected it. Reloads are
// coalesced, so a burst of failures costs one CLUSTER SLOTS. It does nothing
// for other clients (single node, Sentinel).
func FollowFailovers(rdb redis.UniversalClient) {
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return
	}
	cc.AddHook(reloadHook{cc})
}

type reloadHook struct{ cc *redis.ClusterClient }

func (h reloadHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.reloadOn(err)
		return err
	}
}

func (h reloadHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.reloadOn(err)
		return err
	}
}

func (h reloadHook) reloadOn(err error) {
	if topologyChanged(err) {
		h.cc.ReloadState(context.Background())
	}
}

// topologyChanged reports whether err suggests the slot map is stale: a
// transport failure, or a cluster that is electing a new master.
func topologyChanged(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled) {
		return false
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return redis.IsClusterDownError(err) || redis.IsTryAgainError(err) || redis.IsReadOnlyError(err)
	}
	return true
}
