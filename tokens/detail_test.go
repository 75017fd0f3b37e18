package tokens

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestDetailIsPlainWords: every refusal's Detail is a sentence of its own
// for the client, naming no Go package, while Error keeps the log's form.
func TestDetailIsPlainWords(t *testing.T) {
	errs := []error{refusalOf(errors.New("other")),
		expiredAt(refusalOf(jwt.ErrTokenExpired), jwt.NewNumericDate(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)))}
	for _, m := range jwtReasons {
		errs = append(errs, m.err)
	}
	seen := map[string]bool{}
	for _, err := range errs {
		d := Detail(err)
		if !errors.Is(err, ErrTokenInvalid) || !strings.HasPrefix(err.Error(), "tokens: invalid token: ") {
			t.Errorf("%v: the log's error lost its form", err)
		}
		if !strings.HasPrefix(d, "the token") || strings.Contains(d, "tokens:") || strings.Contains(d, "jwt:") {
			t.Errorf("Detail(%v) = %q, want a plain sentence about the token", err, d)
		}
		if seen[d] {
			t.Errorf("Detail(%v) = %q, shared with another refusal", err, d)
		}
		seen[d] = true
	}
	if got, want := Detail(expiredAt(refusalOf(jwt.ErrTokenExpired), jwt.NewNumericDate(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)))), "the token expired at 2026-03-01T12:00:00Z"; got != want {
		t.Errorf("expired Detail = %q, want %q", got, want)
	}
}
