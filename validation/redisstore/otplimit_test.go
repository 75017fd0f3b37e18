package redisstore_test

import (
	"testing"

	"github.com/arbiter-bank/arbiter/validation/storetest"
)

// TestContractOTPLimitAcrossHolds: check, guess, cancel, repeat gains
// nothing: wrong codes count per customer across holds, and past the limit
// every OTP redemption of the customer is otp_rate_limited until the window
// ends, even with the right code; the token still works.
func TestContractOTPLimitAcrossHolds(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) { storetest.OTPLimitAcrossHolds(t, b.shared()) })
}
