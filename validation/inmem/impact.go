package inmem

import (
	"cmp"
	"context"
	"slices"

	"github.com/arbiter-bank/arbiter/validation"
)

var _ validation.StandingScanner = (*Store)(nil)

// scanBatch is how many customers ScanStandings reads under one lock.
const scanBatch = 100

// ScanStandings implements validation.StandingScanner, as redisstore's
// does: the customers with grants or a checked event (a live hold's
// included), in id order, a batch at a time, the store unlocked while fn
// runs. Like Redis's scan it settles no expiry.
func (s *Store) ScanStandings(ctx context.Context, req validation.ScanRequest, fn func([]validation.CustomerStanding) error) error {
	s.mu.Lock()
	ids := make([]string, 0, len(s.customers))
	for id := range s.customers {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	slices.Sort(ids)
	for chunk := range slices.Chunk(ids, scanBatch) {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch := s.standings(chunk, req)
		if len(batch) == 0 {
			continue
		}
		if err := fn(batch); err != nil {
			return err
		}
	}
	return nil
}

// standings reads the customers of ids that have something to report.
func (s *Store) standings(ids []string, req validation.ScanRequest) []validation.CustomerStanding {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []validation.CustomerStanding
	for _, id := range ids {
		c := s.customers[id]
		if c == nil {
			continue
		}
		st := c.standing(ms(req.Now))
		st.Block, st.Case, st.Hold = nil, nil, nil
		slices.SortFunc(st.Grants, func(a, b validation.Grant) int {
			return cmp.Or(a.GrantedAt.Compare(b.GrantedAt), cmp.Compare(a.CheckID, b.CheckID))
		})
		var evs []validation.Event
		for _, e := range c.events {
			if e.Type == validation.EventChecked && !e.At.Before(req.Since) {
				evs = append(evs, e)
			}
		}
		if c.hold != nil && !c.hold.c.CreatedAt.Before(req.Since) {
			evs = append(evs, checked(c.hold.c))
		}
		if len(st.Grants) == 0 && len(evs) == 0 && c.hold == nil {
			continue
		}
		slices.SortStableFunc(evs, func(a, b validation.Event) int { return b.At.Compare(a.At) })
		out = append(out, validation.CustomerStanding{CustomerID: id, Standing: st, Checked: evs})
	}
	return out
}
