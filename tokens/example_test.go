package tokens_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/arbiter-bank/arbiter/tokens"
)

func ExampleIssuer_Sign() {
	// The Ed25519 key of RFC 8037 Appendix A.1; use GenerateKey or
	// ParsePrivateKeyPEM for real keys.
	seed, _ := base64.RawURLEncoding.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	issued := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	iss, err := tokens.NewIssuer(tokens.IssuerConfig{
		Key: ed25519.NewKeyFromSeed(seed),
		Now: func() time.Time { return issued.Add(time.Minute) },
	})
	if err != nil {
		panic(err)
	}
	claims := tokens.Claims{
		CheckID:    "chk_1",
		CustomerID: "cust_42",
		Product:    "credit-card",
		Fence:      7,
		Audience:   []string{"card-redeemer"},
		IssuedAt:   issued,
		ExpiresAt:  issued.Add(10 * time.Minute),
	}
	token, err := iss.Sign(claims)
	if err != nil {
		panic(err)
	}
	again, _ := iss.Sign(claims)
	fmt.Println("kid:", iss.KeyID())
	fmt.Println("deterministic:", token == again)
	// The token is a golden value: any change to it breaks the replay of
	// idempotent responses signed before the change.
	fmt.Println(token)

	got, err := iss.Verify(token, "card-redeemer")
	fmt.Println(got.CustomerID, got.Product, got.Fence, got.ExpiresAt, err)

	_, err = iss.Verify(token, "loan-redeemer")
	fmt.Println(errors.Is(err, tokens.ErrWrongAudience), errors.Is(err, tokens.ErrTokenInvalid))
	// Output:
	// kid: kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k
	// deterministic: true
	// eyJhbGciOiJFZERTQSIsImtpZCI6ImtQcktfcW14VldhWVZBOXd3QkY2SXVvM3ZWeno3VHhIQ1R3WEJ5Z3JTNGsiLCJ0eXAiOiJhcmJpdGVyLWFwcHJvdmFsK2p3dCJ9.eyJpc3MiOiJhcmJpdGVyIiwic3ViIjoiY3VzdF80MiIsImF1ZCI6WyJjYXJkLXJlZGVlbWVyIl0sImV4cCI6MTc3MzUwMTU2NiwibmJmIjoxNzczNTAwOTY2LCJpYXQiOjE3NzM1MDA5NjYsImp0aSI6ImNoa18xIiwicHJvZHVjdCI6ImNyZWRpdC1jYXJkIiwiZmVuY2UiOjd9.yaSNaThGkqMjKWOFjCtDxhi2cQXGu-Pn-sZtfzMFIed9LGXXVnz1bTVhpauI8D5cMEelpKwMQN_KKHdoMzzPAA
	// cust_42 credit-card 7 2026-03-14 15:19:26 +0000 UTC <nil>
	// true true
}
