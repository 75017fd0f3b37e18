// Command productsvc is a reference product service of arbiter: run once as
// the card service and once as the loan service, each with its own SQLite
// database,
//
//	productsvc -product credit_card   -id card-service -db card.db  -addr 127.0.0.1:8081
//	productsvc -product personal_loan -id loan-service -db loan.db  -addr 127.0.0.1:8082
//
// It takes applications (an approval token or the customer's one-time code,
// or the online channel where it asks arbiter itself), redeems them with
// arbiter and issues the product, compensating and reconciling so that its
// database and arbiter's ledger agree. `productsvc -h` lists every setting.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "productsvc:", err)
		os.Exit(1)
	}
}
