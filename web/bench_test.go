package web_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
)

// BenchmarkCheckAndRedeem measures a check followed by a token redemption
// over HTTP against a real redis-server, from parallel clients (one
// customer per iteration, so nothing is refused). Compare it with
// BenchmarkCheck to see the redemption's share, and with the EVALSHA
// ceiling in BENCHMARKS.md for the ratio that matters.
//
//	go test -run '^$' -bench 'Check' -benchtime 5s ./web/
func BenchmarkCheckAndRedeem(b *testing.B) {
	benchmarkFlow(b, true)
}

// BenchmarkCheck measures checks alone (each on a fresh customer).
func BenchmarkCheck(b *testing.B) {
	benchmarkFlow(b, false)
}

func benchmarkFlow(b *testing.B, redeem bool) {
	a := newAPI(b)
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8) // 16 concurrent clients on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			customer := fmt.Sprintf("B-%d", n.Add(1))
			chk := a.check(b, cardKey, customer, "credit_card")
			if chk.status != http.StatusCreated {
				b.Fatalf("check: %d %s", chk.status, chk.raw)
			}
			if !redeem {
				continue
			}
			red := a.do(b, "POST", "/v1/redemptions", cardKey, map[string]string{"token": chk.str("token")})
			if red.status != http.StatusCreated {
				b.Fatalf("redeem: %d %s", red.status, red.raw)
			}
		}
	})
}
