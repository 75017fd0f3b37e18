package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation"
)

// The durable record's Redis side (validation.Outbox): a script that
// decides appends its events to the outbox of its customer's slot in the
// same step (the prelude's "outbox" section). On Redis Cluster a script
// touches one slot, so there is one outbox per slot, 16384 in all, each
// with its expiry index and its lease beside it, under a hash tag chosen
// to land in that slot:
//
//	arb:{<tag>}:outbox    stream: c <customer>, s <seq>, e <event, e2 encoding>
//	arb:{<tag>}:expiring  sorted set: customer -> its live hold's expiry, ms
//	arb:{<tag>}:lease     string: the instance exporting and sweeping the slot
//
// A tag is "s" and a number, the first such string whose slot is that
// slot (slotTags): lower case, so never a customer id (customer ids are
// canonical, upper case), and the same on every instance. Consumers find
// every non-empty outbox on every master by asking each slot's outbox and
// index for its size (Pending: one pipeline of 2×16384 O(1) reads, which
// a cluster client splits by master); SCAN would cost a walk of the whole
// keyspace instead.

// numSlots is Redis Cluster's number of hash slots.
const numSlots = 16384

// slotTags[s] is the hash tag of slot s's keys.
var slotTags = func() []string {
	tags := make([]string, numSlots)
	for n, left := 0, numSlots; left > 0; n++ {
		tag := "s" + strconv.Itoa(n)
		if s := keySlot(tag); tags[s] == "" {
			tags[s] = tag
			left--
		}
	}
	return tags
}()

// keySlot is the Redis Cluster hash slot of a key's hash tag (or of a key
// without one): CRC16-XMODEM mod 16384, as the cluster specification
// defines it.
func keySlot(tag string) int {
	var crc uint16
	for i := 0; i < len(tag); i++ {
		crc ^= uint16(tag[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % numSlots
}

// slotKey is one of slot's keys: outbox, expiring or lease.
func slotKey(slot int, name string) string { return "arb:{" + slotTags[slot] + "}:" + name }

// slotKeys are the slot keys every customer script gets after the
// customer's (slotKeyNames).
func slotKeys(customer string) []string {
	slot := keySlot(customer)
	keys := make([]string, len(slotKeyNames))
	for i, n := range slotKeyNames {
		keys[i] = slotKey(slot, n)
	}
	return keys
}

// scriptKeys are a customer script's KEYS: the customer's, its slot's,
// then extra (K_IDEM, the migration's).
func scriptKeys(customer string, extra []string) []string {
	keys := make([]string, 0, len(customerKeyNames)+len(slotKeyNames)+len(extra))
	keys = append(keys, customerKeys(customer)...)
	keys = append(keys, slotKeys(customer)...)
	return append(keys, extra...)
}

var _ validation.Outbox = (*Store)(nil)

// leaseSrc takes or renews a slot's lease (KEYS[1]) for owner (ARGV[1])
// for ARGV[2] ms: 1, or 0 while another owner has it.
const leaseSrc = `
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`

// trimSrc trims a slot's outbox (KEYS[1]) below ARGV[2] while owner
// (ARGV[1]) holds the slot's lease (KEYS[2]), and renews the lease for
// ARGV[3] ms: 1, or 0 with nothing trimmed. Both keys are in the slot, so
// the lease is checked in the same step as the trim.
const trimSrc = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1`

// The outbox's calls are pipelined, one pipeline for many slots (a
// cluster client splits it by master), so a round costs a few round trips
// whatever the number of slots; the two small scripts are sent whole
// (EVAL), which a pipeline can always do.

// pendingBatch is how many slots one pipeline of Pending asks about.
const pendingBatch = 2048

// Pending implements validation.Outbox.
func (s *Store) Pending(ctx context.Context, now time.Time) ([]validation.OutboxSlot, error) {
	var out []validation.OutboxSlot
	nowMs := strconv.FormatInt(now.UnixMilli(), 10)
	for from := 0; from < numSlots; from += pendingBatch {
		pipe := s.rdb.Pipeline()
		lens := make([]*redis.IntCmd, pendingBatch)
		dues := make([]*redis.IntCmd, pendingBatch)
		for i := range pendingBatch {
			lens[i] = pipe.XLen(ctx, slotKey(from+i, "outbox"))
			dues[i] = pipe.ZCount(ctx, slotKey(from+i, "expiring"), "-inf", nowMs)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, unavailable("outbox pending", err)
		}
		first := len(out)
		for i := range pendingBatch {
			if n, d := lens[i].Val(), dues[i].Val(); n > 0 || d > 0 {
				out = append(out, validation.OutboxSlot{Slot: from + i, Len: n, Due: d > 0})
			}
		}
		// The oldest record's time is its stream id's (Redis's clock).
		pipe = s.rdb.Pipeline()
		heads := make(map[int]*redis.XMessageSliceCmd)
		for i := first; i < len(out); i++ {
			if out[i].Len > 0 {
				heads[i] = pipe.XRangeN(ctx, slotKey(out[i].Slot, "outbox"), "-", "+", 1)
			}
		}
		if len(heads) == 0 {
			continue
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, unavailable("outbox pending", err)
		}
		for i, c := range heads {
			if msgs := c.Val(); len(msgs) > 0 {
				out[i].Oldest = streamTime(msgs[0].ID)
			}
		}
	}
	return out, nil
}

// streamTime is the time of a stream id (<ms>-<n>).
func streamTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseInt(ms, 10, 64)
	return time.UnixMilli(n).UTC()
}

// Lease implements validation.Outbox.
func (s *Store) Lease(ctx context.Context, slots []int, owner string, ttl time.Duration) ([]int, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(slots))
	for i, slot := range slots {
		cmds[i] = pipe.Eval(ctx, leaseSrc, []string{slotKey(slot, "lease")}, owner, ttl.Milliseconds())
	}
	if len(slots) == 0 {
		return nil, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, unavailable("outbox lease", err)
	}
	var held []int
	for i, c := range cmds {
		if n, _ := c.Int(); n == 1 {
			held = append(held, slots[i])
		}
	}
	return held, nil
}

// Read implements validation.Outbox.
func (s *Store) Read(ctx context.Context, slots []int, n int) ([]validation.OutboxBatch, error) {
	if len(slots) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.XMessageSliceCmd, len(slots))
	for i, slot := range slots {
		cmds[i] = pipe.XRangeN(ctx, slotKey(slot, "outbox"), "-", "+", int64(n))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, unavailable("outbox read", err)
	}
	var out []validation.OutboxBatch
	for i, c := range cmds {
		msgs := c.Val()
		if len(msgs) == 0 {
			continue
		}
		b := validation.OutboxBatch{Slot: slots[i], Records: make([]validation.Record, 0, len(msgs)), Upto: msgs[len(msgs)-1].ID}
		for _, m := range msgs {
			r, err := decodeRecord(m.Values)
			if err != nil {
				return nil, fmt.Errorf("outbox of slot %d, entry %s: %w", slots[i], m.ID, err)
			}
			b.Records = append(b.Records, r)
		}
		out = append(out, b)
	}
	return out, nil
}

// decodeRecord reads an outbox entry (c, s, e; see outbox_push).
func decodeRecord(v map[string]any) (validation.Record, error) {
	customer, _ := v["c"].(string)
	seqStr, _ := v["s"].(string)
	enc, _ := v["e"].(string)
	seq, err := strconv.ParseInt(seqStr, 10, 64)
	if err != nil || !validation.ValidCustomerID(customer) {
		return validation.Record{}, fmt.Errorf("malformed outbox entry (customer %q, seq %q)", customer, seqStr)
	}
	ev, err := decodeEvent(enc)
	if err != nil {
		return validation.Record{}, err
	}
	return validation.Record{ID: validation.RecordID(customer, seq), Customer: customer, Seq: seq, Event: ev}, nil
}

// Trim implements validation.Outbox.
func (s *Store) Trim(ctx context.Context, batches []validation.OutboxBatch, owner string, ttl time.Duration) ([]int, error) {
	if len(batches) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(batches))
	for i, b := range batches {
		next, err := nextStreamID(b.Upto)
		if err != nil {
			return nil, err
		}
		cmds[i] = pipe.Eval(ctx, trimSrc, []string{slotKey(b.Slot, "outbox"), slotKey(b.Slot, "lease")}, owner, next, ttl.Milliseconds())
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, unavailable("outbox trim", err)
	}
	var trimmed []int
	for i, c := range cmds {
		if n, _ := c.Int(); n == 1 {
			trimmed = append(trimmed, batches[i].Slot)
		}
	}
	return trimmed, nil
}

// nextStreamID is the stream id right after id: XTRIM MINID keeps it and
// everything after.
func nextStreamID(id string) (string, error) {
	ms, n, ok := strings.Cut(id, "-")
	seq, err := strconv.ParseUint(n, 10, 64)
	if !ok || err != nil {
		return "", fmt.Errorf("outbox trim: malformed stream id %q", id)
	}
	return ms + "-" + strconv.FormatUint(seq+1, 10), nil
}

// Sweep implements validation.Outbox: the sweep script, on each customer
// the slot's expiry index says is due.
func (s *Store) Sweep(ctx context.Context, slot int, now time.Time, n int) (int, error) {
	due, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: slotKey(slot, "expiring"), ByScore: true,
		Start: "-inf", Stop: strconv.FormatInt(now.UnixMilli(), 10), Count: int64(n)}).Result()
	if err != nil {
		return 0, unavailable("outbox sweep", err)
	}
	// A customer the sweep fails on (a value in a retired encoding, say)
	// does not keep the slot's other due holds from being swept: the first
	// error is returned once every one was tried.
	settled := 0
	var first error
	for _, customer := range due {
		if !validation.ValidCustomerID(customer) || keySlot(customer) != slot {
			first = cmp.Or(first, fmt.Errorf("expiry index of slot %d: %w", slot, errors.New("malformed member "+strconv.Quote(customer))))
			continue
		}
		var r checkOpReply
		if err := s.run(ctx, sweepScript, customer, now, nil, noArgs{}, &r); err != nil {
			first = cmp.Or(first, err)
			continue
		}
		if r.Detail == "expired" {
			settled++
		}
	}
	return settled, first
}
