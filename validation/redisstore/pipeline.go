package redisstore

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// With Options.AutoPipeline the scripts' calls go through go-redis's
// autopipeliner (its blocking face, half duplex): a call still blocks
// until its own reply is in, but the calls that concurrent requests make
// while a batch is on the wire leave together as the next batch, one write
// and one read for all of them, on one connection per node. Each request
// still sends exactly one command; batching changes the syscalls, not
// what Redis runs.
//
// What go-redis does with a failed batch decides whether a script may run
// twice, so the batched calls are marked never to be resent by go-redis
// at all (onceCmd.batched), for two reasons found in its v9.23 code:
//
//   - a pipeline whose first command has a retryable error reply
//     (TRYAGAIN, LOADING, READONLY, ...) is resent whole, other callers'
//     scripts that did run included, unless one of the commands says
//     NoRetry; a batch of arbiter's scripts is such a pipeline;
//   - a cluster node pipeline that fails while being written is queued
//     again before its commands carry the error, so a NoRetry that looks
//     at the error answers "may retry".
//
// MOVED and ASK replies are still followed by the cluster client (it
// re-queues just the redirected command, whatever NoRetry says), and call
// waits out TRYAGAIN, CLUSTERDOWN, LOADING, READONLY and MASTERDOWN
// itself (notRun), which go-redis retries for a call sent alone: each of
// those replies proves the script had no effect.
//
// Left off the autopipeliner, on purpose:
//
//   - a durable redemption or confirmed read (wait.go): WAIT counts the
//     acknowledged writes of the connection it is sent on, and the
//     autopipeliner sends WAIT on a connection of its own;
//   - the full-duplex mode: it replays a written command after a
//     connection failure in cases its own documentation names, so a
//     client whose autopipeliner was built full duplex is not used;
//   - standalone scripts (Script.Run), reads and pipelines of other
//     adapters: they take the client they are given.
//
// The autopipeliner runs each batch on a context of its own, so a
// caller's deadline does not cut its call short: once queued, the call
// waits for the batch in flight (if any) and then its own, each bounded by
// the client's timeouts. Against a stalled Redis that is up to about three
// ReadTimeouts past the call's start (the batch in flight, a new
// connection's handshake, its own batch; TestBatchedCallDeadlineBound),
// where a call sent alone returns at its deadline; it then fails as a lost
// reply (ambiguous), and a check goes to the abandoner. A call whose
// batch ran it after its context ended reports that same lost reply, not
// its success (TestLateBatchedSuccessIsUnknown): the caller has given up,
// and a hold nobody received must be abandoned, not left until it
// expires. A call whose context has already ended is not queued. Tracing
// hooks see one pipeline span per batch, outside the request's trace.

// errNotSent marks a call that was never sent: its context had ended
// before it could join a batch.
var errNotSent = errors.New("not sent")

// sender is what a script call is sent through: the client itself, or
// its autopipeliner.
type sender interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

// autoPipeBatch is the most calls one batch carries. go-redis's default
// for the blocking face (300) would let one batch hold ~150 KiB of
// arguments; 64 calls already take most of a round trip's cost away.
const autoPipeBatch = 64

// newAutoPipeliner returns rdb's autopipeliner for the scripts' calls, or
// nil (calls go alone) when the client cannot give a half-duplex one: it
// is closed, or it already built its autopipeliner full duplex (go-redis
// keeps one per client, the first configuration wins).
func newAutoPipeliner(rdb redis.UniversalClient) *redis.AutoPipeliner {
	ap, err := rdb.AutoPipelineWithOptions(&redis.AutoPipelineOptions{MaxBatchSize: autoPipeBatch})
	if err != nil || ap.Config().FullDuplex {
		return nil
	}
	return ap
}

// sender returns what the scripts' calls are sent through.
func (s *Store) sender() sender {
	if s.ap != nil {
		return s.ap
	}
	return s.rdb
}

// AutoPipelined reports whether the scripts' calls are autopipelined
// (Options.AutoPipeline, and the client could give an autopipeliner).
func (s *Store) AutoPipelined() bool { return s.ap != nil }
