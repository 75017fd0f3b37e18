package redisstore

// ErrorOf is the domain's error for a failed Redis call named op:
// validation.ErrStoreFull when Redis is out of memory, ErrUnavailable when
// it could not be reached or answered late, else the error itself (a bug).
// Packages that keep their own keys on the same Redis use it, so a failure
// reads the same whichever package made the call.
func ErrorOf(op string, err error) error { return unavailable(op, err) }
