package web

import "sync/atomic"

// CountBcrypt counts the bcrypt comparisons sign-ins make from now until
// the returned restore is called. Not for parallel tests.
func CountBcrypt() (n *atomic.Int64, restore func()) {
	n = new(atomic.Int64)
	orig := bcryptCompare
	bcryptCompare = func(hash, password []byte) error {
		n.Add(1)
		return orig(hash, password)
	}
	return n, func() { bcryptCompare = orig }
}
