package sqlitestore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/products/issuing"
)

// TestRetiredChecks: a closed or compensated check is refused by Begin and
// by Issue, so no retry can issue a product from a released grant.
func TestRetiredChecks(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 11, 29, 11, 0, 0, 0, time.UTC)

	t.Run("a closed check", func(t *testing.T) {
		s := open(t)
		p, err := s.Begin(ctx, issuing.Pending{Action: issuing.ActionIssue, CustomerID: "C1", CheckID: "chk_1", Fence: 3})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Issue(ctx, product("C1", "chk_1", 3), p.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.CloseProduct(ctx, "C1", at); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Begin(ctx, issuing.Pending{Action: issuing.ActionIssue, CustomerID: "C1", CheckID: "chk_1", Fence: 3}); !errors.Is(err, issuing.ErrClosed) {
			t.Fatalf("Begin(closed check) = %v, want ErrClosed", err)
		}
		// The OTP channel learns the check id only from arbiter's answer:
		// Issue refuses it too, in the transaction that would insert.
		q, err := s.Begin(ctx, issuing.Pending{Action: issuing.ActionIssue, CustomerID: "C1"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Issue(ctx, product("C1", "chk_1", 3), q.ID); !errors.Is(err, issuing.ErrClosed) {
			t.Fatalf("Issue(closed check) = %v, want ErrClosed", err)
		}
		if _, err := s.Product(ctx, "C1"); !errors.Is(err, issuing.ErrNotFound) {
			t.Fatalf("Product = %v, want none", err)
		}
	})

	t.Run("a compensated check", func(t *testing.T) {
		s := open(t)
		p, err := s.Begin(ctx, issuing.Pending{Action: issuing.ActionIssue, CustomerID: "C2", CheckID: "chk_2", Fence: 4})
		if err != nil {
			t.Fatal(err)
		}
		rel, err := s.Compensate(ctx, issuing.Compensation{CheckID: "chk_2", CustomerID: "C2", Product: "credit_card",
			Fence: 4, Reason: issuing.ReasonIssueFailed, At: at}, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		// The issue row became a release row, in the same transaction.
		ps, err := s.Pendings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 1 || ps[0].ID != rel.ID || ps[0].Action != issuing.ActionRelease || ps[0].CheckID != "chk_2" {
			t.Fatalf("pending = %+v, want only the release of chk_2", ps)
		}
		if _, err := s.Begin(ctx, issuing.Pending{Action: issuing.ActionIssue, CustomerID: "C2", CheckID: "chk_2", Fence: 4}); !errors.Is(err, issuing.ErrCompensated) {
			t.Fatalf("Begin(compensated check) = %v, want ErrCompensated", err)
		}
		q, err := s.Begin(ctx, issuing.Pending{Action: issuing.ActionIssue, CustomerID: "C2"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Issue(ctx, product("C2", "chk_2", 4), q.ID); !errors.Is(err, issuing.ErrCompensated) {
			t.Fatalf("Issue(compensated check) = %v, want ErrCompensated", err)
		}
		// Another check of the same customer is not affected.
		if _, _, err := s.Issue(ctx, product("C2", "chk_3", 5), q.ID); err != nil {
			t.Fatalf("Issue(new check) = %v", err)
		}
	})
}
