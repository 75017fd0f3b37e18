package redisstore_test

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/storetest"
)

// TestScanStandings: the impact report's scan visits each customer with
// grants or a recent hold once, with its grants, its ends and its checked
// events since the time asked: from the audit once a hold ended, from
// meta's shadow while it is live.
func TestScanStandings(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx, s := context.Background(), b.store
		// G: a check cancelled two hours ago, then two imported grants.
		c := hold(t, s, "IMP-G", "credit_card", t0.Add(-2*time.Hour))
		if _, err := s.Cancel(ctx, validation.CancelRequest{CustomerID: "IMP-G", CheckID: c.ID, Actor: "branch-portal", Now: t0.Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
		for i, p := range []string{"personal_loan", "credit_card"} {
			_, err := s.Import(ctx, validation.ImportRequest{Rule: storetest.LooseRule(t, p), CustomerID: "IMP-G", CheckID: "imp_g" + p,
				Actor: "ops", GrantedAt: t0.AddDate(-1, 0, i), Now: t0.Add(-time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
		}
		// H: a card imported and released an hour ago, a loan held now.
		if _, err := s.Import(ctx, validation.ImportRequest{Rule: rule(t, "credit_card"), CustomerID: "IMP-H", CheckID: "imp_h",
			Actor: "ops", GrantedAt: t0.AddDate(0, 0, -10), Now: t0.Add(-2 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Release(ctx, validation.ReleaseRequest{CustomerID: "IMP-H", Product: "credit_card", Actor: "card-service",
			Now: t0.Add(-time.Hour), KeepEnded: validation.MinKeepEnded}); err != nil {
			t.Fatal(err)
		}
		loan := hold(t, s, "IMP-H", "personal_loan", t0)

		scan := func(since time.Time) map[string]validation.CustomerStanding {
			t.Helper()
			got := map[string]validation.CustomerStanding{}
			err := s.ScanStandings(ctx, validation.ScanRequest{Since: since, Now: t0}, func(batch []validation.CustomerStanding) error {
				for _, c := range batch {
					if _, twice := got[c.CustomerID]; twice {
						t.Errorf("customer %s visited twice", c.CustomerID)
					}
					got[c.CustomerID] = c
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 {
				t.Fatalf("visited %v, want IMP-G and IMP-H", slices.Collect(maps.Keys(got)))
			}
			return got
		}
		got := scan(t0.AddDate(0, 0, -1))
		g, h := got["IMP-G"], got["IMP-H"]
		if len(g.Standing.Grants) != 2 || g.Standing.Grants[0].Product != "personal_loan" || g.Standing.Grants[1].Product != "credit_card" || len(g.Standing.Ended) != 0 {
			t.Errorf("G = %+v, want its two grants, oldest first, and no end", g.Standing)
		}
		if len(g.Checked) != 1 || g.Checked[0].CheckID != c.ID || !g.Checked[0].At.Equal(c.CreatedAt) {
			t.Errorf("G checked = %+v, want the cancelled check's", g.Checked)
		}
		if len(h.Standing.Grants) != 0 || !h.Standing.Ended["credit_card"].Equal(t0.Add(-time.Hour)) {
			t.Errorf("H = %+v, want no grant and the card's end an hour ago", h.Standing)
		}
		if len(h.Checked) != 1 || h.Checked[0].CheckID != loan.ID || h.Checked[0].Product != "personal_loan" || !h.Checked[0].At.Equal(t0) {
			t.Errorf("H checked = %+v, want the live loan hold's", h.Checked)
		}

		got = scan(t0.Add(time.Minute))
		if n := len(got["IMP-G"].Checked) + len(got["IMP-H"].Checked); n != 0 {
			t.Errorf("%d checked events since a minute from now, want none", n)
		}
	})
}
