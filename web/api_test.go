package web_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
)

func TestAuthentication(t *testing.T) {
	a := newAPI(t)
	body := map[string]string{"customer_id": "C-1", "product": "credit_card"}

	r := a.do(t, "POST", "/v1/checks", "", body)
	wantStatus(t, r, http.StatusUnauthorized, validation.ReasonUnauthorized)
	if r.header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	wantStatus(t, a.do(t, "POST", "/v1/checks", "not-a-key-at-all-0000", body), http.StatusUnauthorized, validation.ReasonUnauthorized)
	// A checker may not redeem; a redeemer-only call by a checker is 403.
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", checkerKey, map[string]string{"token": "x"}), http.StatusForbidden, validation.ReasonForbidden)
	wantStatus(t, a.do(t, "PUT", "/v1/customers/C-1/products/credit_card", cardKey, nil), http.StatusForbidden, validation.ReasonForbidden)
	wantStatus(t, a.do(t, "GET", "/v1/ping", backKey, nil), http.StatusNoContent)
	wantStatus(t, a.do(t, "GET", "/v1/ping", "", nil), http.StatusUnauthorized, validation.ReasonUnauthorized)
	// Public endpoints need no key.
	wantStatus(t, a.do(t, "GET", "/healthz", "", nil), http.StatusOK)
	wantStatus(t, a.do(t, "GET", "/.well-known/jwks.json", "", nil), http.StatusOK)
	wantStatus(t, a.do(t, "GET", "/nowhere", "", nil), http.StatusNotFound, validation.ReasonNotFound)
}

func TestInvalidRequests(t *testing.T) {
	a := newAPI(t)
	tests := []struct {
		name string
		body any
		ct   string
	}{
		{"unknown product", map[string]string{"customer_id": "C-1", "product": "yacht"}, ""},
		{"malformed customer id", map[string]string{"customer_id": "C 1", "product": "credit_card"}, ""},
		{"customer id with a hash tag", map[string]string{"customer_id": "C{1}", "product": "credit_card"}, ""},
		{"customer id too long", map[string]string{"customer_id": strings.Repeat("c", 65), "product": "credit_card"}, ""},
		{"missing customer id", map[string]string{"product": "credit_card"}, ""},
		{"unknown field", map[string]string{"customer_id": "C-1", "product": "credit_card", "colour": "red"}, ""},
		{"not JSON", `{"customer_id":`, ""},
		{"two values", `{"customer_id":"C-1","product":"credit_card"} {}`, ""},
		{"wrong type", `{"customer_id":12,"product":"credit_card"}`, ""},
		// A gateway that reads the first of two keys, or matches names
		// exactly, would see another request than arbiter.
		{"duplicate key", `{"customer_id":"C-1","product":"credit_card","product":"personal_loan"}`, ""},
		{"duplicate key, escaped", `{"customer_id":"C-1","product":"credit_card","pr\u006fduct":"personal_loan"}`, ""},
		{"case-variant name", `{"customer_id":"C-1","Product":"credit_card"}`, ""},
		{"case-variant duplicate", `{"customer_id":"C-1","product":"credit_card","PRODUCT":"personal_loan"}`, ""},
		{"invalid UTF-8", "{\"customer_id\":\"C-1\",\"product\":\"credit_card\",\"agent_id\":\"a\xffb\"}", ""},
		{"empty body", ``, ""},
		{"agent id with NUL", `{"customer_id":"C-1","product":"credit_card","agent_id":"a\u0000b"}`, ""},
		{"agent id with an escape sequence", `{"customer_id":"C-1","product":"credit_card","agent_id":"\u001b[2Jagent"}`, ""},
		{"agent id with a newline", `{"customer_id":"C-1","product":"credit_card","agent_id":"ana\nforged log line"}`, ""},
		{"agent id with a C1 control", `{"customer_id":"C-1","product":"credit_card","agent_id":"ana\u0085"}`, ""},
		{"agent id with a bidi override", `{"customer_id":"C-1","product":"credit_card","agent_id":"ana\u202e"}`, ""},
		{"agent id with a lone surrogate", `{"customer_id":"C-1","product":"credit_card","agent_id":"ana\ud800"}`, ""},
		{"agent id over 64 characters", `{"customer_id":"C-1","product":"credit_card","agent_id":"` + strings.Repeat("a", 65) + `"}`, ""},
		{"form content type", `customer_id=C-1`, "application/x-www-form-urlencoded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h []string
			if tt.ct != "" {
				h = []string{"Content-Type", tt.ct}
			}
			r := a.do(t, "POST", "/v1/checks", checkerKey, tt.body, h...)
			wantStatus(t, r, http.StatusBadRequest, validation.ReasonInvalidRequest)
		})
	}
	t.Run("over 64 KiB", func(t *testing.T) {
		body := `{"customer_id":"C-1","product":"credit_card","agent_id":"` + strings.Repeat("a", 64<<10) + `"}`
		wantStatus(t, a.do(t, "POST", "/v1/checks", checkerKey, body), http.StatusRequestEntityTooLarge, validation.Reason("payload_too_large"))
	})
	t.Run("redemption with both forms", func(t *testing.T) {
		r := a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{"token": "x", "otp": "123456", "customer_id": "C-1", "product": "credit_card"})
		wantStatus(t, r, http.StatusBadRequest, validation.ReasonInvalidRequest)
	})
	t.Run("audit limit", func(t *testing.T) {
		wantStatus(t, a.do(t, "GET", "/v1/customers/C-1/audit?limit=0", checkerKey, nil), http.StatusBadRequest, validation.ReasonInvalidRequest)
	})
	t.Run("malformed check id", func(t *testing.T) {
		wantStatus(t, a.do(t, "GET", "/v1/checks/nope", checkerKey, nil), http.StatusNotFound, validation.ReasonCheckNotFound)
	})
}

var otpPattern = regexp.MustCompile(`^[0-9]{6}$`)

func TestCheckAndRedeemFlow(t *testing.T) {
	a := newAPI(t)
	r := a.mustCheck(t, "C-1001", "credit_card")
	if !otpPattern.MatchString(r.str("otp")) || r.str("status") != "held" || r.body["fence"].(float64) <= 0 {
		t.Fatalf("check = %s", r.raw)
	}
	for _, secretish := range []string{"secret", "otp_secret", "key"} {
		if _, ok := r.body[secretish]; ok {
			t.Fatalf("check response exposes %q", secretish)
		}
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Error("a response carrying an OTP may be cached")
	}
	claims, err := a.issuer.Verify(r.str("token"), "card-service")
	if err != nil {
		t.Fatalf("token does not verify for card-service: %v", err)
	}
	if claims.CheckID != r.str("check_id") || claims.Product != "credit_card" || claims.Fence <= 0 || claims.CustomerID != "C-1001" {
		t.Fatalf("claims = %+v", claims)
	}

	got := a.do(t, "GET", "/v1/checks/"+r.str("check_id"), checkerKey, nil)
	wantStatus(t, got, http.StatusOK)
	if !otpPattern.MatchString(got.str("otp")) || got.str("otp_expires_at") == "" {
		t.Fatalf("held check shows no current otp: %s", got.raw)
	}

	refused := a.check(t, checkerKey, "C-1001", "personal_loan")
	wantStatus(t, refused, http.StatusConflict, validation.ReasonHoldExists)
	if refused.str("held_product") != "credit_card" || refused.header.Get("Retry-After") == "" {
		t.Fatalf("hold_exists lacks details: %s %v", refused.raw, refused.header)
	}
	if !strings.Contains(refused.str("detail"), "Another check for a Credit card is in progress until") {
		t.Fatalf("refusal is not explained: %q", refused.str("detail"))
	}

	red := a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{"token": r.str("token")})
	wantStatus(t, red, http.StatusCreated)
	if red.str("check_id") != r.str("check_id") || red.str("redeemed_by") != "card-service" {
		t.Fatalf("redemption = %s", red.raw)
	}
	again := a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{"token": r.str("token")})
	wantStatus(t, again, http.StatusOK)
	if string(again.raw) != string(red.raw) {
		t.Fatalf("repeat body = %s, want %s", again.raw, red.raw)
	}

	wantStatus(t, a.check(t, checkerKey, "C-1001", "personal_loan"), http.StatusConflict, validation.ReasonConflictingProduct)
	wantStatus(t, a.check(t, checkerKey, "C-1001", "credit_card"), http.StatusConflict, validation.ReasonAlreadyHoldsProduct)

	cust := a.do(t, "GET", "/v1/customers/C-1001", cardKey, nil)
	wantStatus(t, cust, http.StatusOK)
	products, _ := cust.body["products"].([]any)
	if len(products) != 1 || cust.body["hold"] != nil {
		t.Fatalf("customer = %s", cust.raw)
	}

	// Release by the product's redeemer only, then the loan is possible.
	wantStatus(t, a.do(t, "DELETE", "/v1/customers/C-1001/products/credit_card", loanKey, nil), http.StatusForbidden, validation.ReasonNotRedeemer)
	wantStatus(t, a.do(t, "DELETE", "/v1/customers/C-1001/products/credit_card?check_id=chk_aaaaaaaaaaaaaaaaaaaa_C-1001", cardKey, nil), http.StatusNotFound, validation.ReasonGrantNotFound)
	wantStatus(t, a.do(t, "DELETE", "/v1/customers/C-1001/products/credit_card?check_id="+r.str("check_id"), cardKey, nil), http.StatusNoContent)
	wantStatus(t, a.do(t, "DELETE", "/v1/customers/C-1001/products/credit_card", cardKey, nil), http.StatusNotFound, validation.ReasonGrantNotFound)
	loan := a.mustCheck(t, "C-1001", "personal_loan")
	if loan.body["fence"].(float64) <= r.body["fence"].(float64) {
		t.Fatalf("second hold fence = %v, want more than the first's %v", loan.body["fence"], r.body["fence"])
	}

	audit := a.do(t, "GET", "/v1/customers/C-1001/audit", checkerKey, nil)
	wantStatus(t, audit, http.StatusOK)
	events, _ := audit.body["events"].([]any)
	var types []string
	for _, e := range events {
		types = append(types, e.(map[string]any)["type"].(string))
	}
	if got, want := strings.Join(types, ","), "checked,released,refused,refused,redeemed,refused,checked"; got != want {
		t.Fatalf("audit = %s, want %s", got, want)
	}
}

func TestCancel(t *testing.T) {
	a := newAPI(t)
	r := a.mustCheck(t, "C-1", "credit_card")
	id := r.str("check_id")
	// A redeemer-only client may cancel only checks of the products it redeems.
	wantStatus(t, a.do(t, "DELETE", "/v1/checks/"+id, backKey, nil), http.StatusForbidden, validation.ReasonForbidden)
	wantStatus(t, a.do(t, "DELETE", "/v1/checks/"+id, checkerKey, nil), http.StatusNoContent)
	wantStatus(t, a.do(t, "DELETE", "/v1/checks/"+id, checkerKey, nil), http.StatusConflict, validation.ReasonCheckNotHeld)
	got := a.do(t, "GET", "/v1/checks/"+id, checkerKey, nil)
	if got.str("status") != "cancelled" || got.str("otp") != "" {
		t.Fatalf("cancelled check = %s", got.raw)
	}
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{"token": r.str("token")}), http.StatusGone, validation.ReasonHoldExpired)
}

func TestOTPRedemptionAndLockout(t *testing.T) {
	a := newAPI(t)
	r := a.mustCheck(t, "C-1", "personal_loan")
	wrong := "000000"
	if wrong == r.str("otp") {
		wrong = "111111"
	}
	otp := func(key, code string) reply {
		return a.do(t, "POST", "/v1/redemptions", key, map[string]string{"customer_id": "C-1", "product": "personal_loan", "otp": code})
	}
	wantStatus(t, otp(cardKey, r.str("otp")), http.StatusForbidden, validation.ReasonNotRedeemer)
	for left := 4; left >= 1; left-- {
		got := otp(loanKey, wrong)
		wantStatus(t, got, http.StatusUnprocessableEntity, validation.ReasonOTPInvalid)
		if got.body["attempts_left"] != float64(left) {
			t.Fatalf("attempts_left = %v, want %d", got.body["attempts_left"], left)
		}
	}
	wantStatus(t, otp(loanKey, wrong), http.StatusGone, validation.ReasonOTPLocked)
	wantStatus(t, otp(loanKey, r.str("otp")), http.StatusGone, validation.ReasonOTPLocked)

	// A fresh hold redeems with its code.
	r2 := a.mustCheck(t, "C-1", "personal_loan")
	code := a.do(t, "GET", "/v1/checks/"+r2.str("check_id"), checkerKey, nil).str("otp")
	got := otp(loanKey, code)
	wantStatus(t, got, http.StatusCreated)
	if got.str("check_id") != r2.str("check_id") {
		t.Fatalf("otp redeemed %s, want %s", got.str("check_id"), r2.str("check_id"))
	}
}

func TestExpiry(t *testing.T) {
	a := newAPI(t, withPolicy(`
products:
  credit_card:   { hold_ttl: 1s, redeemers: [card-service] }
  personal_loan: { hold_ttl: 1s, redeemers: [loan-service] }
exclusive: [[credit_card, personal_loan]]
`))
	r := a.mustCheck(t, "C-1", "credit_card")
	// The hold's TTL runs on Redis's clock, the subject of this test: poll it.
	deadline := time.Now().Add(10 * time.Second)
	for a.do(t, "GET", "/v1/customers/C-1", checkerKey, nil).body["hold"] != nil {
		if time.Now().After(deadline) {
			t.Fatal("hold did not expire")
		}
		time.Sleep(50 * time.Millisecond)
	}
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{"token": r.str("token")}), http.StatusGone)
	if got := a.do(t, "GET", "/v1/checks/"+r.str("check_id"), checkerKey, nil); got.str("status") != "expired" {
		t.Fatalf("check = %s, want expired", got.raw)
	}
	a.mustCheck(t, "C-1", "personal_loan")
}

func TestIdempotencyKey(t *testing.T) {
	a := newAPI(t)
	body := map[string]string{"customer_id": "C-1", "product": "credit_card"}
	first := a.do(t, "POST", "/v1/checks", checkerKey, body, "Idempotency-Key", "req-1")
	wantStatus(t, first, http.StatusCreated)
	again := a.do(t, "POST", "/v1/checks", checkerKey, body, "Idempotency-Key", "req-1")
	wantStatus(t, again, http.StatusCreated)
	if again.header.Get("Idempotent-Replayed") != "true" || again.str("check_id") != first.str("check_id") || again.str("token") != first.str("token") {
		t.Fatalf("replay = %s, want the first check %s", again.raw, first.raw)
	}
	other := map[string]string{"customer_id": "C-1", "product": "personal_loan"}
	wantStatus(t, a.do(t, "POST", "/v1/checks", checkerKey, other, "Idempotency-Key", "req-1"), http.StatusUnprocessableEntity, validation.ReasonIdempotencyKeyReused)
	// Keys are per client: the same key from another client is a new request.
	wantStatus(t, a.do(t, "POST", "/v1/checks", cardKey, body, "Idempotency-Key", "req-1"), http.StatusConflict, validation.ReasonHoldExists)
}

func TestImport(t *testing.T) {
	a := newAPI(t)
	r := a.do(t, "PUT", "/v1/customers/C-7/products/personal_loan", adminKey, map[string]string{"granted_at": "2025-01-02T03:04:05Z"})
	wantStatus(t, r, http.StatusCreated)
	if r.str("granted_at") != "2025-01-02T03:04:05Z" || r.str("redeemed_by") != "ops" {
		t.Fatalf("import = %s", r.raw)
	}
	wantStatus(t, a.do(t, "PUT", "/v1/customers/C-7/products/credit_card", adminKey, nil), http.StatusConflict, validation.ReasonConflictingProduct)
	// A grant cannot start in the future: it would sort after grants not
	// yet made and read "since" a date that has not come.
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	wantStatus(t, a.do(t, "PUT", "/v1/customers/C-8/products/credit_card", adminKey, map[string]string{"granted_at": future}),
		http.StatusBadRequest, validation.ReasonInvalidRequest)
	if r := a.do(t, "GET", "/v1/customers/C-8", adminKey, nil); len(r.body["products"].([]any)) != 0 {
		t.Fatalf("a refused import was recorded: %s", r.raw)
	}
	refused := a.check(t, checkerKey, "C-7", "credit_card")
	wantStatus(t, refused, http.StatusConflict, validation.ReasonConflictingProduct)
	if !strings.Contains(refused.str("detail"), "Personal loan since 2 Jan 2025") {
		t.Fatalf("detail = %q", refused.str("detail"))
	}
}

// goPackagePrefix matches what a wrapped Go error puts before its
// message: a first word that is a package-like name and a colon
// ("tokens: invalid token: ..."), or a package's name and a colon anywhere.
var goPackagePrefix = regexp.MustCompile(`^[a-z][a-z0-9]*(/[a-z0-9]+)*: |\b(tokens|jwt|x509|ed25519|base64|json|validation|redisstore): `)

// wantPlainDetail fails unless r's detail is plain words for a client: no
// Go package's prefix, as a wrapped error's message would carry.
func wantPlainDetail(tb testing.TB, r reply) {
	tb.Helper()
	if d := r.str("detail"); goPackagePrefix.MatchString(d) {
		tb.Fatalf("detail %q names a Go package: the client should read plain words", d)
	}
}

// TestTokenAttacks sends forged and out-of-policy tokens; each is refused
// with 403 token_invalid before any store is touched. Each case is signed
// with the server's own key and kid unless it is about the key, and
// differs from a good token in one respect only, so the refusal's reason
// proves that the check it names was reached (a token refused for an
// unknown kid never tests the issuer check).
func TestTokenAttacks(t *testing.T) {
	a := newAPI(t)
	r := a.mustCheck(t, "C-1", "credit_card")
	good := r.str("token")
	claims, err := a.issuer.Verify(good, "card-service")
	if err != nil {
		t.Fatal(err)
	}
	kid := a.issuer.KeyID()
	pub := a.key.Public().(ed25519.PublicKey)
	signedBy := func(cfg tokens.IssuerConfig, c tokens.Claims) string {
		t.Helper()
		iss, err := tokens.NewIssuer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := iss.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	sameKey := tokens.IssuerConfig{Key: a.key}
	// signRaw signs the good token's claims with any method and key under
	// the server's kid.
	signRaw := func(m jwt.SigningMethod, key any) string {
		t.Helper()
		wire := jwt.MapClaims{
			"iss": "arbiter", "sub": "C-1", "aud": []string{"card-service"}, "jti": claims.CheckID,
			"product": "credit_card", "fence": 1, "iat": claims.IssuedAt.Unix(), "nbf": claims.IssuedAt.Unix(),
			"exp": claims.ExpiresAt.Unix(),
		}
		tok := jwt.NewWithClaims(m, wire)
		tok.Header["kid"], tok.Header["typ"] = kid, "arbiter-approval+jwt"
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	otherKey, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	expired := claims
	expired.IssuedAt, expired.ExpiresAt = time.Now().Add(-time.Hour), time.Now().Add(-time.Minute)
	otherAud := claims
	otherAud.Audience = []string{"loan-service"}
	otherIssTok := signedBy(tokens.IssuerConfig{Key: a.key, Issuer: "mallory"}, claims)
	otherAudTok := signedBy(sameKey, otherAud)
	parts := strings.Split(good, ".")
	// A token's signature is verified at redemption only when it carries no
	// secret of its check (see TestTokenSecret for one that does).
	noSecret := claims
	noSecret.Secret = ""
	bare := strings.Split(signedBy(sameKey, noSecret), ".")

	tests := []struct {
		name, token string
		detail      string // the refusal's detail, which names the check that refused it
	}{
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"C-2"}`)) + "." + parts[2], "the token's signature does not verify"},
		{"tampered signature", bare[0] + "." + bare[1] + "." + strings.Repeat("A", len(bare[2])), "the token's signature does not verify"},
		{"alg none", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"arbiter-approval+jwt","kid":"`+kid+`"}`)) + "." + parts[1] + ".", "the token is signed with an algorithm other than EdDSA"},
		{"HS256 keyed with the public key", signRaw(jwt.SigningMethodHS256, []byte(pub)), "the token is signed with an algorithm other than EdDSA"},
		{"EdDSA by another key under our kid", signRaw(jwt.SigningMethodEdDSA, otherKey), "the token's signature does not verify"},
		{"signed by another key, its own kid", signedBy(tokens.IssuerConfig{Key: otherKey}, claims), "the token is signed with a key this service does not know (its kid)"},
		{"our key, another issuer", otherIssTok, "the token was issued by another issuer"},
		{"our key, another audience", otherAudTok, "the token is for another audience: it was not issued to this client"},
		{"our key, expired", signedBy(sameKey, expired), "the token expired at " + expired.ExpiresAt.UTC().Format(time.RFC3339)},
		{"garbage", "not.a.token", "the token is not a well-formed JWT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{"token": tt.token})
			wantStatus(t, got, http.StatusForbidden, validation.ReasonTokenInvalid)
			if detail := got.str("detail"); detail != tt.detail {
				t.Fatalf("detail = %q, want %q", detail, tt.detail)
			}
			wantPlainDetail(t, got)
		})
	}
	t.Run("the same key's token verifies when only the refused claim is right", func(t *testing.T) {
		// The forged tokens carry the real check's claims: verified as the
		// issuer or for the audience they name, they are good.
		mallory, err := tokens.NewIssuer(tokens.IssuerConfig{Key: a.key, Issuer: "mallory"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mallory.Verify(otherIssTok, "card-service"); err != nil {
			t.Fatalf("another issuer's token, verified as that issuer: %v", err)
		}
		if _, err := a.issuer.Verify(otherAudTok, "loan-service"); err != nil {
			t.Fatalf("another audience's token, verified for that audience: %v", err)
		}
	})
	// The genuine token still works after all that.
	wantStatus(t, a.do(t, "POST", "/v1/redemptions", cardKey, map[string]string{"token": good}), http.StatusCreated)
}

func TestReadiness(t *testing.T) {
	a := newAPI(t)
	wantStatus(t, a.do(t, "GET", "/readyz", "", nil), http.StatusOK)
	a.redis.Kill()
	start := time.Now()
	wantStatus(t, a.do(t, "GET", "/readyz", "", nil), http.StatusServiceUnavailable, validation.ReasonUnavailable)
	r := a.check(t, checkerKey, "C-1", "credit_card")
	wantStatus(t, r, http.StatusServiceUnavailable, validation.ReasonUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("503s took %v with Redis down", d)
	}
	a.redis.Restart(t)
	deadline := time.Now().Add(10 * time.Second)
	for a.do(t, "GET", "/readyz", "", nil).status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("not ready again after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.mustCheck(t, "C-1", "credit_card")
}
