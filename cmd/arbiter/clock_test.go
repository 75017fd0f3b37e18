package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/tokens"
)

// send makes one API call with a JSON body (empty: none) and decodes the
// JSON answer, if any.
func send(tb testing.TB, method, url, key, body string) (int, map[string]any) {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out) // 204s have no body
	return resp.StatusCode, out
}

// skewEnv is a production configuration with 2-minute holds (shorter than
// the skew under test) and an admin, on a fresh real redis-server.
func skewEnv(tb testing.TB) map[string]string {
	tb.Helper()
	env := productionEnv(tb)
	env["ARBITER_CLIENTS"] = writeFile(tb, "clients.yaml", `clients:
  - { id: branch-portal, key: prod-checker-key-123, roles: [checker] }
  - { id: card-service, key: prod-card-key-123456, roles: [checker, redeemer] }
  - { id: ops, key: prod-admin-key-1234567, roles: [admin] }
`)
	env["ARBITER_POLICY"] = writeFile(tb, "policy.yaml", `
products:
  credit_card:   { hold_ttl: 2m, redeemers: [card-service] }
  personal_loan: { hold_ttl: 2m, redeemers: [loan-service] }
exclusive: [[credit_card, personal_loan]]
`)
	return env
}

// TestInstancesWithSkewedClocksAgree runs two instances on one Redis, the
// host clock of one five minutes ahead of the other's (and of the product
// service's): whatever instance places, shows or redeems, every decision
// that depends on time is the same, because both read Redis's clock.
func TestInstancesWithSkewedClocksAgree(t *testing.T) {
	const skew = 5 * time.Minute
	env := skewEnv(t)
	right := startRunOn(t, env, http.DefaultClient, true, time.Now)
	ahead := startRunOn(t, env, http.DefaultClient, true, func() time.Time { return time.Now().Add(skew) })
	const checker, card, admin = "prod-checker-key-123", "prod-card-key-123456", "prod-admin-key-1234567"

	t.Run("a code shown by one instance redeems at the other", func(t *testing.T) {
		status, chk := send(t, "POST", ahead.base+"/v1/checks", checker, `{"customer_id":"C-SKEW-1","product":"credit_card"}`)
		if status != http.StatusCreated {
			t.Fatalf("check at the instance ahead = %d %v", status, chk)
		}
		status, red := send(t, "POST", right.base+"/v1/redemptions", card,
			`{"customer_id":"C-SKEW-1","product":"credit_card","otp":"`+chk["otp"].(string)+`"}`)
		if status != http.StatusCreated {
			t.Fatalf("OTP redemption at the other instance = %d %v, want 201", status, red)
		}
	})

	t.Run("a token of the instance ahead verifies at a product service", func(t *testing.T) {
		status, chk := send(t, "POST", ahead.base+"/v1/checks", checker, `{"customer_id":"C-SKEW-2","product":"credit_card"}`)
		if status != http.StatusCreated {
			t.Fatalf("check = %d %v", status, chk)
		}
		resp, err := http.Get(right.base + "/.well-known/jwks.json")
		if err != nil {
			t.Fatal(err)
		}
		jwks, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		v, err := tokens.NewVerifierFromJWKS(jwks, "arbiter", time.Now) // the product service's true clock
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(chk["token"].(string), "card-service"); err != nil {
			t.Fatalf("the product service refuses the token: %v", err)
		}
	})

	t.Run("a token expiry is decided the same", func(t *testing.T) {
		// A 2-minute hold placed by the true clock is live for both.
		status, chk := send(t, "POST", right.base+"/v1/checks", checker, `{"customer_id":"C-SKEW-3","product":"credit_card"}`)
		if status != http.StatusCreated {
			t.Fatalf("check = %d %v", status, chk)
		}
		status, red := send(t, "POST", ahead.base+"/v1/redemptions", card, `{"token":"`+chk["token"].(string)+`"}`)
		if status != http.StatusCreated {
			t.Fatalf("token redemption at the instance ahead = %d %v, want 201", status, red)
		}
	})

	t.Run("a block's end is decided the same", func(t *testing.T) {
		until := time.Now().Add(2 * time.Minute).UTC().Format(time.RFC3339)
		if status, body := send(t, "PUT", right.base+"/v1/customers/C-SKEW-4/block", admin, `{"reason":"fraud review","until":"`+until+`"}`); status != http.StatusOK {
			t.Fatalf("block = %d %v", status, body)
		}
		for _, inst := range []*started{right, ahead} {
			status, body := send(t, "POST", inst.base+"/v1/checks", checker, `{"customer_id":"C-SKEW-4","product":"credit_card"}`)
			if status != http.StatusConflict || body["reason"] != "customer_blocked" {
				t.Fatalf("check of a blocked customer at %s = %d %v, want 409 customer_blocked", inst.base, status, body)
			}
		}
	})
}
