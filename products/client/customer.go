package client

// CanonicalCustomerID returns the form under which arbiter knows a
// customer id: ASCII letters upper-cased, nothing else changed. arbiter's
// customer ids are case-insensitive (C-1 and c-1 are one customer) and
// arbiter folds every id it receives, so its answers, tokens ("sub") and
// feeds carry this form; the client folds the ids it sends too, so that a
// product service comparing or storing them sees one form on both sides.
// It is arbiter's own rule (validation.CanonicalCustomerID, which this
// package does not import: it talks to arbiter over HTTP only).
func CanonicalCustomerID(id string) string {
	b := []byte(id)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}
