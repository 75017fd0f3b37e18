package inmem_test

import (
	"testing"

	"github.com/arbiter-bank/arbiter/validation/inmem"
	"github.com/arbiter-bank/arbiter/validation/storetest"
)

// TestContract runs the Store contract suite on the in-memory store. Expiry
// is decided by the request's Now, so the suite's later Now is all a hold
// needs to run out.
func TestContract(t *testing.T) {
	storetest.Run(t, func(testing.TB) storetest.Backend {
		return storetest.Backend{Store: inmem.New(inmem.Options{})}
	})
}
