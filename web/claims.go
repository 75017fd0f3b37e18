package web

import (
	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
)

// tokensClaims are the approval token claims of a check: the audience is the
// product's redeemers, the expiry the hold's; Secret, while the check is
// held (its TOTP secret known), the check's token secret.
func tokensClaims(ch validation.Check, redeemers []string) tokens.Claims {
	return tokens.Claims{
		CheckID: ch.ID, CustomerID: ch.CustomerID, Product: ch.Product, Fence: ch.Fence,
		Audience: redeemers, IssuedAt: ch.CreatedAt, ExpiresAt: ch.ExpiresAt,
		Secret:        validation.TokenSecret(ch.Secret),
		PolicyVersion: ch.PolicyVersion,
	}
}
