// Package peer is a bench-only peer design of arbiter's check and redeem,
// built the usual way: a Redlock mutex per customer (go-redsync), then read,
// decide in Go, write, unlock. It exists to be benchmarked against arbiter's
// one-script-per-operation design on the same Redis; the service never
// imports it (it lives under cmd/arbiter-load/internal).
//
// It is deliberately generous to the peer: both reads go in one pipeline
// and all writes in one MULTI/EXEC pipeline, so an operation costs four
// round trips (lock, read, write, unlock) where a naive version takes six
// or more. It keeps no audit trail, checks history or OTP state, all of
// which arbiter's scripts maintain in the same round trip.
package peer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
)

// ErrRefused is returned when the policy refuses a check (a grant of the
// product or a conflicting one, or a live hold).
var ErrRefused = errors.New("refused")

// ErrNotHeld is returned when a redemption names a check that is not the live hold.
var ErrNotHeld = errors.New("check not held")

// Store is the peer design. Products in Conflicts exclude each other.
type Store struct {
	rdb       redis.UniversalClient
	rs        *redsync.Redsync
	HoldTTL   time.Duration
	Conflicts map[string][]string
}

// New returns a Store with arbiter's default policy: credit_card and
// personal_loan exclude each other, one of each at most, 5-minute holds.
func New(rdb redis.UniversalClient) *Store {
	return &Store{
		rdb: rdb, rs: redsync.New(goredis.NewPool(rdb)), HoldTTL: 5 * time.Minute,
		Conflicts: map[string][]string{"credit_card": {"personal_loan"}, "personal_loan": {"credit_card"}},
	}
}

func keys(customer string) (lock, hold, grants string) {
	p := "peer:{" + customer + "}:"
	return p + "lock", p + "hold", p + "grants"
}

// locked runs fn while holding the customer's Redlock mutex. The retry
// delay is short (redsync's default of 50-250 ms would make any contention
// look far worse than the design deserves).
func (s *Store) locked(ctx context.Context, customer string, fn func() error) error {
	lock, _, _ := keys(customer)
	m := s.rs.NewMutex(lock, redsync.WithExpiry(5*time.Second), redsync.WithTries(100), redsync.WithRetryDelay(2*time.Millisecond))
	if err := m.LockContext(ctx); err != nil {
		return fmt.Errorf("lock %s: %w", customer, err)
	}
	err := fn()
	if _, uerr := m.UnlockContext(ctx); uerr != nil && err == nil {
		err = fmt.Errorf("unlock %s: %w", customer, uerr)
	}
	return err
}

// read fetches the customer's hold and grants in one pipeline.
func (s *Store) read(ctx context.Context, customer string) (hold, grants map[string]string, err error) {
	_, hk, gk := keys(customer)
	var h, g *redis.MapStringStringCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		h = p.HGetAll(ctx, hk)
		g = p.HGetAll(ctx, gk)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return h.Val(), g.Val(), nil
}

// Check places a hold for product when the customer holds neither it nor a
// conflicting product and has no live hold; it returns the check id.
func (s *Store) Check(ctx context.Context, customer, product string) (string, error) {
	var id string
	err := s.locked(ctx, customer, func() error {
		hold, grants, err := s.read(ctx, customer)
		if err != nil {
			return err
		}
		if len(hold) > 0 || grants[product] != "" {
			return ErrRefused
		}
		for _, c := range s.Conflicts[product] {
			if grants[c] != "" {
				return ErrRefused
			}
		}
		var b [10]byte
		_, _ = rand.Read(b[:])
		id = "chk_" + hex.EncodeToString(b[:])
		_, hk, _ := keys(customer)
		_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, hk, "check_id", id, "product", product, "expires", strconv.FormatInt(time.Now().Add(s.HoldTTL).UnixMilli(), 10))
			p.PExpire(ctx, hk, s.HoldTTL)
			return nil
		})
		return err
	})
	return id, err
}

// Redeem turns the customer's live hold checkID into a grant.
func (s *Store) Redeem(ctx context.Context, customer, checkID string) error {
	return s.locked(ctx, customer, func() error {
		hold, grants, err := s.read(ctx, customer)
		if err != nil {
			return err
		}
		if hold["check_id"] != checkID {
			return ErrNotHeld
		}
		product := hold["product"]
		for _, c := range s.Conflicts[product] {
			if grants[c] != "" {
				return ErrRefused
			}
		}
		_, hk, gk := keys(customer)
		_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, gk, product, checkID+"@"+strconv.FormatInt(time.Now().UnixMilli(), 10))
			p.Del(ctx, hk)
			return nil
		})
		return err
	})
}
