// Package abandon settles checks whose outcome is unknown: a background
// worker that retries validation.Store.Abandon until the store answers.
// It is beside the domain, not in it, because it owns a goroutine, a
// retry loop and a bounded backlog, none of which is a rule about
// customers and products; the Service only hands it checks through the
// validation.Abandoner interface.
package abandon
