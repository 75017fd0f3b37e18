package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/arbiter-bank/arbiter/products/client"
)

// A branch portal asks arbiter whether a customer may take a credit card.
// While that check is held, a loan check for the same customer is refused
// with the details a branch agent needs.
func ExampleClient_Check() {
	ctx := context.Background()
	portal, err := client.New(client.Config{BaseURL: arbiterURL(), APIKey: checkerKey})
	if err != nil {
		log.Fatal(err)
	}
	customer := newCustomer("C-1001")

	ch, err := portal.Check(ctx, client.CheckRequest{CustomerID: customer, Product: "credit_card", AgentID: "agent-7"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ch.Status, ch.Product, len(ch.OTP), "digit code")

	_, err = portal.Check(ctx, client.CheckRequest{CustomerID: customer, Product: "personal_loan"})
	var refusal *client.Error
	if errors.Is(err, client.ErrHoldExists) && errors.As(err, &refusal) {
		fmt.Println("refused:", refusal.Reason, "while", refusal.HeldProduct, "is held by", refusal.HeldBy)
	}
	// Output:
	// held credit_card 6 digit code
	// refused: hold_exists while credit_card is held by branch-portal
}

// The card service redeems the hold with the code the customer read out at
// the branch. Redeeming again (a retry after a lost answer) returns the same
// grant.
func ExampleClient_Redeem() {
	ctx := context.Background()
	portal, _ := client.New(client.Config{BaseURL: arbiterURL(), APIKey: checkerKey})
	cards, _ := client.New(client.Config{BaseURL: arbiterURL(), APIKey: cardKey, ClientID: "card-service"})
	customer := newCustomer("C-1002")

	ch, err := portal.Check(ctx, client.CheckRequest{CustomerID: customer, Product: "credit_card"})
	if err != nil {
		log.Fatal(err)
	}
	redemption := client.Redemption{CustomerID: customer, Product: "credit_card", OTP: ch.OTP}
	g, err := cards.Redeem(ctx, redemption)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("granted", g.Product, "fence", g.Fence == ch.Fence, "replayed", g.Replayed)

	again, err := cards.Redeem(ctx, redemption)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same check", again.CheckID == g.CheckID, "replayed", again.Replayed)
	// Output:
	// granted credit_card fence true replayed false
	// same check true replayed true
}

// A product service verifies an approval token offline before it spends a
// round trip on redeeming it: forged, expired and misdirected tokens stop
// here.
func ExampleClient_VerifyToken() {
	ctx := context.Background()
	cards, _ := client.New(client.Config{BaseURL: arbiterURL(), APIKey: cardKey, ClientID: "card-service"})
	loans, _ := client.New(client.Config{BaseURL: arbiterURL(), APIKey: loanKey, ClientID: "loan-service"})
	customer := newCustomer("C-1003")

	ch, err := cards.Check(ctx, client.CheckRequest{CustomerID: customer, Product: "credit_card"})
	if err != nil {
		log.Fatal(err)
	}
	claims, err := cards.VerifyToken(ctx, ch.Token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(claims.Product, claims.CheckID == ch.ID, claims.Fence == ch.Fence)

	// The loan service is not an audience of a credit card approval.
	_, err = loans.VerifyToken(ctx, ch.Token)
	fmt.Println(errors.Is(err, client.ErrTokenInvalid))
	// Output:
	// credit_card true true
	// true
}

// Once a customer holds a credit card, arbiter refuses a personal loan and
// says which product is in the way. The card service's Release (the card
// was closed) frees the customer again.
func ExampleClient_Release() {
	ctx := context.Background()
	cards, _ := client.New(client.Config{BaseURL: arbiterURL(), APIKey: cardKey, ClientID: "card-service"})
	loans, _ := client.New(client.Config{BaseURL: arbiterURL(), APIKey: loanKey, ClientID: "loan-service"})
	customer := newCustomer("C-1004")

	ch, err := cards.Check(ctx, client.CheckRequest{CustomerID: customer, Product: "credit_card"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := cards.Redeem(ctx, client.Redemption{Token: ch.Token}); err != nil {
		log.Fatal(err)
	}
	_, err = loans.Check(ctx, client.CheckRequest{CustomerID: customer, Product: "personal_loan"})
	var refusal *client.Error
	if errors.As(err, &refusal) && errors.Is(err, client.ErrConflictingProduct) {
		fmt.Println("loan refused; in the way:", refusal.HeldProducts)
	}

	if err := cards.Release(ctx, customer, "credit_card", ""); err != nil {
		log.Fatal(err)
	}
	loan, err := loans.Check(ctx, client.CheckRequest{CustomerID: customer, Product: "personal_loan"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("loan", loan.Status, "with a higher fence:", loan.Fence > ch.Fence)
	// Output:
	// loan refused; in the way: [credit_card]
	// loan held with a higher fence: true
}
