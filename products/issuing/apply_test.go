package issuing_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/products/issuing"
	"github.com/arbiter-bank/arbiter/products/sqlitestore"
)

// tokenArbiter is an Arbiter for the token path: its approval tokens are a
// table of claims (anything else fails offline verification), it grants
// every redemption of a known token unless redeemErr is set, and it
// records every redemption and release it is asked for.
type tokenArbiter struct {
	mu        sync.Mutex
	claims    map[string]client.Claims // by token
	redeemErr error
	granted   map[string]client.Grant // by customer: arbiter's ledger
	redeems   []client.Redemption
	releases  []releaseCall
}

type releaseCall struct{ customer, product, checkID string }

func newTokenArbiter() *tokenArbiter {
	return &tokenArbiter{claims: map[string]client.Claims{}, granted: map[string]client.Grant{}}
}

// token returns an approval token for a check of product, with its claims.
func (f *tokenArbiter) token(customer, product, checkID string, fence int64) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	tok := fmt.Sprintf("token-%d", len(f.claims)+1)
	f.claims[tok] = client.Claims{CheckID: checkID, CustomerID: customer, Product: product, Fence: fence,
		Audience: []string{"card-service"}, IssuedAt: t0, ExpiresAt: t0.Add(5 * time.Minute)}
	return tok
}

func (f *tokenArbiter) VerifyToken(_ context.Context, token string) (client.Claims, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.claims[token]
	if !ok {
		return client.Claims{}, &client.Error{Op: "verify", Reason: client.ReasonTokenInvalid, Detail: "bad signature"}
	}
	return c, nil
}

func (f *tokenArbiter) Redeem(_ context.Context, r client.Redemption) (*client.Grant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.redeems = append(f.redeems, r)
	if f.redeemErr != nil {
		return nil, f.redeemErr
	}
	c, ok := f.claims[r.Token]
	if !ok {
		return nil, &client.Error{Op: "redeem", Status: 403, Reason: client.ReasonTokenInvalid}
	}
	g := client.Grant{CheckID: c.CheckID, CustomerID: c.CustomerID, Product: c.Product, Fence: c.Fence, GrantedAt: t0, RedeemedBy: "card-service"}
	f.granted[c.CustomerID] = g
	return &g, nil
}

func (f *tokenArbiter) Release(_ context.Context, customer, product, checkID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.releases = append(f.releases, releaseCall{customer, product, checkID})
	if g, ok := f.granted[customer]; ok && g.Product == product && (checkID == "" || g.CheckID == checkID) {
		delete(f.granted, customer)
		return nil
	}
	return client.ErrGrantNotFound
}

func (f *tokenArbiter) Customer(_ context.Context, customer string) (*client.Customer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cu := &client.Customer{ID: customer}
	if g, ok := f.granted[customer]; ok {
		cu.Products = []client.Grant{g}
	}
	return cu, nil
}

func (f *tokenArbiter) Check(context.Context, client.CheckRequest) (*client.Check, error) {
	return nil, errors.New("tokenArbiter: Check is not part of the token path")
}

func (f *tokenArbiter) Cancel(context.Context, string) error { return nil }

// grant records g in arbiter's ledger, as a redemption whose answer was lost.
func (f *tokenArbiter) grant(g client.Grant) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.granted[g.CustomerID] = g
}

func (f *tokenArbiter) calls() (redeems []client.Redemption, releases []releaseCall) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.redeems), slices.Clone(f.releases)
}

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

// wantError fails tb unless err is an *issuing.Error of reason.
func wantError(tb testing.TB, err error, reason string) *issuing.Error {
	tb.Helper()
	var e *issuing.Error
	if !errors.As(err, &e) {
		tb.Fatalf("err = %v, want an *issuing.Error %s", err, reason)
	}
	if got, want := e.Reason, reason; got != want {
		tb.Fatalf("reason = %s (%v), want %s", got, err, want)
	}
	return e
}

// wantNothingIssued fails tb if the customer holds a product here.
func wantNothingIssued(tb testing.TB, st *sqlitestore.Store, customer string) {
	tb.Helper()
	if p, err := st.Product(context.Background(), customer); !errors.Is(err, issuing.ErrNotFound) {
		tb.Fatalf("Product(%s) = %+v, %v; want ErrNotFound", customer, p, err)
	}
}

// wantPendings fails tb unless the pending rows are of exactly these checks.
func wantPendings(tb testing.TB, st *sqlitestore.Store, checkIDs ...string) {
	tb.Helper()
	ps, err := st.Pendings(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.CheckID)
	}
	if !slices.Equal(got, checkIDs) {
		tb.Fatalf("pending rows of checks %v, want %v", got, checkIDs)
	}
}

func TestApplyToken(t *testing.T) {
	ctx := context.Background()

	t.Run("a valid token issues the product", func(t *testing.T) {
		arb := newTokenArbiter()
		svc, st := newTokenService(t, arb)
		tok := arb.token("C-1", "credit_card", "chk_a_C-1", 7)
		p, replayed, err := svc.Apply(ctx, issuing.Application{CustomerID: "C-1", Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		if replayed {
			t.Fatal("first application replayed (HTTP 200), want issued (201)")
		}
		want := issuing.Product{CustomerID: "C-1", Product: "credit_card", CheckID: "chk_a_C-1", Fence: 7, IssuedAt: t0, Channel: issuing.ChannelToken}
		if p != want {
			t.Fatalf("product = %+v, want %+v", p, want)
		}
		redeems, _ := arb.calls()
		if got, want := redeems, []client.Redemption{{Token: tok}}; !slices.Equal(got, want) {
			t.Fatalf("redemptions = %+v, want %+v", got, want)
		}
		stored, err := st.Product(ctx, "C-1")
		if err != nil || stored.CheckID != "chk_a_C-1" {
			t.Fatalf("stored product = %+v, %v", stored, err)
		}
		wantPendings(t, st)
	})

	t.Run("the same token again replays without a second redemption", func(t *testing.T) {
		arb := newTokenArbiter()
		svc, _ := newTokenService(t, arb)
		tok := arb.token("C-1", "credit_card", "chk_a_C-1", 7)
		first, _, err := svc.Apply(ctx, issuing.Application{CustomerID: "C-1", Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		again, replayed, err := svc.Apply(ctx, issuing.Application{CustomerID: "C-1", Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		if !replayed || again != first {
			t.Fatalf("repeat = %+v, replayed %v; want %+v replayed (HTTP 200)", again, replayed, first)
		}
		if redeems, _ := arb.calls(); len(redeems) != 1 {
			t.Fatalf("redemptions = %d, want 1", len(redeems))
		}
	})

	refusedOffline := []struct {
		name   string
		app    func(arb *tokenArbiter) issuing.Application
		reason string
	}{
		{"a token for another customer", func(arb *tokenArbiter) issuing.Application {
			return issuing.Application{CustomerID: "C-2", Token: arb.token("C-1", "credit_card", "chk_a_C-1", 7)}
		}, issuing.ReasonTokenInvalid},
		{"a token for another product", func(arb *tokenArbiter) issuing.Application {
			return issuing.Application{CustomerID: "C-1", Token: arb.token("C-1", "personal_loan", "chk_a_C-1", 7)}
		}, issuing.ReasonTokenInvalid},
		{"a token that does not verify", func(*tokenArbiter) issuing.Application {
			return issuing.Application{CustomerID: "C-1", Token: "forged"}
		}, issuing.ReasonTokenInvalid},
	}
	for _, tt := range refusedOffline {
		t.Run(tt.name+" is refused before arbiter", func(t *testing.T) {
			arb := newTokenArbiter()
			svc, st := newTokenService(t, arb)
			_, _, err := svc.Apply(ctx, tt.app(arb))
			wantError(t, err, tt.reason)
			if redeems, _ := arb.calls(); len(redeems) != 0 {
				t.Fatalf("redemptions = %+v, want none", redeems)
			}
			wantNothingIssued(t, st, "C-1")
			wantNothingIssued(t, st, "C-2")
			wantPendings(t, st)
		})
	}

	t.Run("a stale fence is refused before arbiter", func(t *testing.T) {
		arb := newTokenArbiter()
		svc, st := newTokenService(t, arb)
		// A newer approval (fence 9) for the customer is being applied.
		if _, err := st.Begin(ctx, issuing.Pending{Action: issuing.ActionIssue, CustomerID: "C-1", CheckID: "chk_new_C-1", Fence: 9, Channel: issuing.ChannelToken, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		_, _, err := svc.Apply(ctx, issuing.Application{CustomerID: "C-1", Token: arb.token("C-1", "credit_card", "chk_old_C-1", 3)})
		wantError(t, err, issuing.ReasonStaleFence)
		if redeems, _ := arb.calls(); len(redeems) != 0 {
			t.Fatalf("redemptions = %+v, want none", redeems)
		}
		wantPendings(t, st, "chk_new_C-1")
	})

	refusals := []*client.Error{
		{Op: "redeem", Status: 410, Reason: client.ReasonHoldExpired, Detail: "the hold is no longer live"},
		{Op: "redeem", Status: 409, Reason: client.ReasonAlreadyRedeemed, Detail: "redeemed by loan-service"},
		{Op: "redeem", Status: 409, Reason: client.ReasonConflictingProduct, Detail: "holds a Personal loan"},
		{Op: "redeem", Status: 403, Reason: client.ReasonNotRedeemer, Detail: "not a redeemer"},
	}
	for _, refusal := range refusals {
		t.Run("arbiter's refusal "+string(refusal.Reason)+" is passed through", func(t *testing.T) {
			arb := newTokenArbiter()
			arb.redeemErr = refusal
			svc, st := newTokenService(t, arb)
			_, _, err := svc.Apply(ctx, issuing.Application{CustomerID: "C-1", Token: arb.token("C-1", "credit_card", "chk_a_C-1", 7)})
			e := wantError(t, err, string(refusal.Reason))
			if e.Arbiter != refusal || e.Pending || e.Compensated {
				t.Fatalf("error = %+v, want arbiter's refusal, neither pending nor compensated", e)
			}
			wantNothingIssued(t, st, "C-1")
			wantPendings(t, st) // a definite refusal leaves nothing to reconcile
		})
	}

	t.Run("a failed local insert releases exactly that grant", func(t *testing.T) {
		arb := newTokenArbiter()
		svc, st := newTokenService(t, arb)
		svc.Fault = diskFull
		_, _, err := svc.Apply(ctx, issuing.Application{CustomerID: "C-1", Token: arb.token("C-1", "credit_card", "chk_a_C-1", 7)})
		if e := wantError(t, err, issuing.ReasonIssueFailed); !e.Compensated || e.Pending {
			t.Fatalf("error = %+v, want compensated, not pending", e)
		}
		_, releases := arb.calls()
		if got, want := releases, []releaseCall{{"C-1", "credit_card", "chk_a_C-1"}}; !slices.Equal(got, want) {
			t.Fatalf("releases = %+v, want %+v", got, want)
		}
		wantNothingIssued(t, st, "C-1")
		wantPendings(t, st)
	})

	t.Run("a product held from another check releases the new grant, not the old", func(t *testing.T) {
		arb := newTokenArbiter()
		svc, st := newTokenService(t, arb)
		if _, _, err := svc.Apply(ctx, issuing.Application{CustomerID: "C-1", Token: arb.token("C-1", "credit_card", "chk_a_C-1", 1)}); err != nil {
			t.Fatal(err)
		}
		_, _, err := svc.Apply(ctx, issuing.Application{CustomerID: "C-1", Token: arb.token("C-1", "credit_card", "chk_b_C-1", 2)})
		if e := wantError(t, err, issuing.ReasonAlreadyIssued); !e.Compensated {
			t.Fatalf("error = %+v, want compensated", e)
		}
		_, releases := arb.calls()
		if got, want := releases, []releaseCall{{"C-1", "credit_card", "chk_b_C-1"}}; !slices.Equal(got, want) {
			t.Fatalf("releases = %+v, want only the new grant's %+v", got, want)
		}
		if p, err := st.Product(ctx, "C-1"); err != nil || p.CheckID != "chk_a_C-1" {
			t.Fatalf("product = %+v, %v; want the first one kept", p, err)
		}
	})

	unknown := []struct {
		name string
		err  error
	}{
		{"a lost answer", errors.New("read tcp: connection reset by peer")},
		{"arbiter unavailable", &client.Error{Op: "redeem", Status: 503, Reason: client.ReasonUnavailable}},
	}
	for _, tt := range unknown {
		t.Run(tt.name+" leaves the application pending", func(t *testing.T) {
			arb := newTokenArbiter()
			arb.redeemErr = tt.err
			svc, st := newTokenService(t, arb)
			_, _, err := svc.Apply(ctx, issuing.Application{CustomerID: "C-1", Token: arb.token("C-1", "credit_card", "chk_a_C-1", 7)})
			if e := wantError(t, err, issuing.ReasonArbiterUnavailable); !e.Pending || e.Compensated {
				t.Fatalf("error = %+v, want pending, not compensated", e)
			}
			if _, releases := arb.calls(); len(releases) != 0 {
				t.Fatalf("releases = %+v, want none: the outcome is unknown", releases)
			}
			wantNothingIssued(t, st, "C-1")
			wantPendings(t, st, "chk_a_C-1")

			// Arbiter had granted it after all: reconciliation issues it.
			arb.grant(client.Grant{CheckID: "chk_a_C-1", CustomerID: "C-1", Product: "credit_card", Fence: 7, GrantedAt: t0, RedeemedBy: "card-service"})
			r, err := svc.Reconcile(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := r.Issued, 1; got != want {
				t.Fatalf("Reconcile = %+v, want %d issued", r, want)
			}
			if p, err := st.Product(ctx, "C-1"); err != nil || p.CheckID != "chk_a_C-1" || p.Channel != issuing.ChannelRecovered {
				t.Fatalf("product = %+v, %v; want chk_a_C-1 recovered", p, err)
			}
		})
	}
}

// newTokenService is the card service on a fresh SQLite file, its clock
// stopped at t0.
func newTokenService(tb testing.TB, arb issuing.Arbiter) (*issuing.Service, *sqlitestore.Store) {
	tb.Helper()
	svc, st := newService(tb, arb)
	svc.Now = func() time.Time { return t0 }
	return svc, st
}
