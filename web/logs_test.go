package web_test

import (
	"context"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/arbiter-bank/arbiter/validation"
)

// TestLogsKeepSecrets runs a full flow (check, read, redeem by OTP and by
// token, wrong codes, a Redis outage) and greps the JSON logs for every
// credential the flow handled: none may appear.
func TestLogsKeepSecrets(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()

	var secrets []string
	held := func(customer, product string) reply {
		r := a.mustCheck(t, customer, product)
		// The hold is one stored check (redisstore's codec.go): the
		// secret is its ninth field.
		v, err := a.redis.Client(t).Get(ctx, "arb:{"+validation.CanonicalCustomerID(customer)+"}:hold").Result()
		if err != nil {
			t.Fatalf("read the hold's secret: %v", err)
		}
		hexSecret := strings.Split(v, "\x1f")[9]
		raw, err := hex.DecodeString(hexSecret)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, r.str("otp"), r.str("token"), hexSecret,
			base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw))
		// The token's signature alone would be enough to replay it.
		secrets = append(secrets, r.str("token")[strings.LastIndex(r.str("token"), ".")+1:])
		return r
	}

	card := held("C-log-1", "credit_card")
	wantStatus(t, a.do(t, "GET", "/v1/checks/"+card.str("check_id"), checkerKey, nil), http.StatusOK)
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", loanKey, map[string]string{"token": card.str("token")}), http.StatusForbidden)
	r := a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{"token": card.str("token")}, "X-Request-ID", "trace-abc-123")
	wantStatus(t, r, http.StatusCreated)
	if got, want := r.header.Get("X-Request-ID"), "trace-abc-123"; got != want {
		t.Errorf("X-Request-ID echoed = %q, want %q", got, want)
	}

	loan := held("C-log-2", "personal_loan")
	otp := func(code string) map[string]string {
		return map[string]string{"customer_id": "C-log-2", "product": "personal_loan", "otp": code}
	}
	wrong := otherCode(loan.str("otp"))
	secrets = append(secrets, wrong)
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", loanKey, otp(wrong)), http.StatusUnprocessableEntity, validation.ReasonOTPInvalid)
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", loanKey, otp(loan.str("otp"))), http.StatusCreated)

	// An outage makes the 5xx path log its error: still no credentials.
	late := held("C-log-3", "credit_card")
	a.redis.Kill()
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{"token": late.str("token")}), http.StatusServiceUnavailable)
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{
		"customer_id": "C-log-3", "product": "credit_card", "otp": late.str("otp")}), http.StatusServiceUnavailable)

	secrets = append(secrets, checkerKey, cardKey, loanKey, adminKey, backKey)
	logs := a.logs.String()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if len(lines) < 10 {
		t.Fatalf("only %d log lines:\n%s", len(lines), logs)
	}
	var sawTrace bool
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["request_id"] == "trace-abc-123" && rec["msg"] == "request" {
			sawTrace = true
			for k, want := range map[string]any{"client": "card-service", "route": "/v1/redemptions", "status": float64(201), "method": "POST"} {
				if rec[k] != want {
					t.Errorf("access log %s = %v, want %v", k, rec[k], want)
				}
			}
			if _, ok := rec["duration_ms"].(float64); !ok {
				t.Errorf("access log has no duration_ms: %s", line)
			}
		}
		// Timestamps and durations are digits that could spell a six-digit
		// code by chance; nothing secret lives there.
		delete(rec, "time")
		delete(rec, "duration_ms")
		clean, _ := json.Marshal(rec)
		for _, s := range secrets {
			if s != "" && strings.Contains(string(clean), s) {
				t.Errorf("log line holds a credential %q: %s", s, line)
			}
		}
	}
	if !sawTrace {
		t.Errorf("no access log line with the caller's request id:\n%s", logs)
	}
}
