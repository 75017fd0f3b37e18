package validation_test

import (
	"context"
	"testing"

	"github.com/arbiter-bank/arbiter/validation"
)

// TestMalformedOTPCostsNoAttempt: a code that is not six ASCII digits is
// refused before the store is asked (the Service has none here), so it
// can neither grant nor count against a hold.
func TestMalformedOTPCostsNoAttempt(t *testing.T) {
	svc := &validation.Service{Policy: validation.DefaultPolicy()}
	card := validation.Actor{ID: "card-service", Roles: []validation.Role{validation.RoleRedeemer}}
	for _, code := range []string{"", "12345", "1234567", "12a456", " 12345", "12345 ", "１２３４５６", "١٢٣٤٥٦", "12\x0056"} {
		_, _, err := svc.RedeemOTP(context.Background(), card, "C-1", "credit_card", code)
		if got, want := validation.ReasonOf(err), validation.ReasonInvalidRequest; got != want {
			t.Errorf("RedeemOTP(%q) = %v, want %s", code, err, want)
		}
	}
}
