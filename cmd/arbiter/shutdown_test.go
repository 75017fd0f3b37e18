package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestGracefulShutdown cancels run's context (what SIGTERM does in main)
// while a check is in flight — held up by a slow credit bureau — and
// asserts the check still completes and run returns nil.
func TestGracefulShutdown(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	bureau := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		fmt.Fprint(w, `{"score":800}`)
	}))
	defer bureau.Close()
	policy := writeFile(t, "policy.yaml", `
products:
  credit_card:   { hold_ttl: 5m, redeemers: [card-service], min_rating: 500 }
  personal_loan: { hold_ttl: 5m, redeemers: [loan-service] }
exclusive: [[credit_card, personal_loan]]
rating: { url: "`+bureau.URL+`/v1/ratings/{customer_id}", timeout: 20s }
`)
	s := startRun(t, map[string]string{"ARBITER_POLICY": policy, "ARBITER_SHUTDOWN_TIMEOUT": "15s", "ARBITER_REQUEST_TIMEOUT": "30s"})

	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", s.base+"/v1/checks", strings.NewReader(`{"customer_id":"C-1","product":"credit_card"}`))
		req.Header.Set("Authorization", "Bearer demo-checker-key")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()
	<-arrived  // the check is in flight, waiting for the bureau
	s.cancel() // SIGTERM

	// New connections are refused while the in-flight check is drained.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(s.base + "/healthz")
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting requests after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-s.exited:
		t.Fatal("run returned before the in-flight request finished")
	default:
	}
	close(release)
	if r := <-done; r.err != nil || r.status != http.StatusCreated {
		t.Fatalf("in-flight check = %d, %v; want 201", r.status, r.err)
	}
	select {
	case <-s.exited:
		if s.err != nil {
			t.Fatalf("run = %v, want nil after a graceful shutdown", s.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after draining")
	}
}
