package redisstore_test

import (
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

// rulesPolicy is TestRuleCost's policy with the rules the engine added: the
// default pair, plus a family limit and a cooling-off rule over two more
// products. deploy/bench/rules.sh replaces this file with one returning
// the default policy when it measures a release before the engine.
func rulesPolicy() *validation.Policy {
	p := &validation.Policy{Products: map[string]validation.Product{
		"credit_card": {Redeemers: []string{"card-service"}}, "personal_loan": {Redeemers: []string{"loan-service"}},
		"store_card": {Redeemers: []string{"card-service"}}, "overdraft": {Redeemers: []string{"loan-service"}}},
		Exclusive: [][]string{{"credit_card", "personal_loan"}},
		Limits:    []validation.FamilyLimit{{Name: "unsecured_credit", Max: 2, Products: []string{"credit_card", "store_card", "overdraft"}}},
		CoolingOff: []validation.CoolingOffRule{{Name: "loan_after_card", After: []string{"credit_card", "store_card"}, Products: []string{"personal_loan"},
			Period: validation.Period(90 * 24 * time.Hour)}}}
	if err := p.Validate(nil); err != nil {
		panic(err)
	}
	return p
}
