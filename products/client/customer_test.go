package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/validation"
)

// TestCanonicalCustomerIDIsArbiters: the client folds ids as arbiter does.
func TestCanonicalCustomerIDIsArbiters(t *testing.T) {
	for _, id := range []string{"C-1", "c-1", "aBc.d_e:f-9", "\u017f-1", "C-\u0131", " c-1", ""} {
		if got, want := client.CanonicalCustomerID(id), validation.CanonicalCustomerID(id); got != want {
			t.Errorf("client.CanonicalCustomerID(%q) = %q, arbiter's is %q", id, got, want)
		}
	}
}

// TestClientSendsCanonicalCustomerIDs: whatever case a product service
// uses, arbiter is asked about the canonical id.
func TestClientSendsCanonicalCustomerIDs(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			CustomerID string `json:"customer_id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		seen = append(seen, r.URL.Path+" "+body.CustomerID)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.Method {
		case http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		case http.MethodPost:
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{}`))
		default:
			_, _ = w.Write([]byte(`{"customer_id":"C-1","products":[],"events":[]}`))
		}
	}))
	defer srv.Close()
	c, err := client.New(client.Config{BaseURL: srv.URL, APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Check(ctx, client.CheckRequest{CustomerID: "c-1", Product: "credit_card"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Redeem(ctx, client.Redemption{CustomerID: "c-1", Product: "credit_card", OTP: "123456"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Customer(ctx, "c-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Release(ctx, "c-1", "credit_card", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Audit(ctx, "c-1", 5); err != nil {
		t.Fatal(err)
	}
	want := []string{"/v1/checks C-1", "/v1/redemptions C-1", "/v1/customers/C-1 ", "/v1/customers/C-1/products/credit_card ", "/v1/customers/C-1/audit "}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(want) {
		t.Fatalf("requests = %q, want %q", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Errorf("request %d = %q, want %q", i, seen[i], want[i])
		}
	}
}
