package tokens

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// OTP parameters (RFC 6238 with HMAC-SHA1, as authenticator apps default to).
const (
	// OTPDigits is the length of a code.
	OTPDigits = 6
	// OTPPeriod is how long one code is current.
	OTPPeriod = 30 * time.Second
	// OTPSkew is how many periods before and after the current one OTPValid
	// also accepts, for clock drift and a customer reading out a code late.
	OTPSkew = 1
)

// otpSecretSize is the size of secrets NewOTPSecret makes: 160 bits, the
// length RFC 4226 §4 recommends. otpMinSecret is RFC 4226's minimum, 128 bits.
const (
	otpSecretSize = 20
	otpMinSecret  = 16
)

var otpOpts = totp.ValidateOpts{
	Period:    uint(OTPPeriod / time.Second),
	Skew:      OTPSkew,
	Digits:    otp.DigitsSix,
	Algorithm: otp.AlgorithmSHA1,
}

// pquerna/otp takes secrets as unpadded base32 text.
var otpEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewOTPSecret returns a new 20-byte OTP secret drawn from crypto/rand. It
// returns an error only if the system's random source fails.
func NewOTPSecret() ([]byte, error) {
	s := make([]byte, otpSecretSize)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("tokens: OTP secret: %w", err)
	}
	return s, nil
}

// OTPCode returns the 6-digit code of secret for the 30-second period that
// contains t, and the end of that period (in t's location): the code stays
// current until validUntil, and OTPValid still accepts it for one period
// more. It returns an error wrapping ErrKey if secret is shorter than 16
// bytes.
func OTPCode(secret []byte, t time.Time) (code string, validUntil time.Time, err error) {
	if len(secret) < otpMinSecret {
		return "", time.Time{}, fmt.Errorf("%w: OTP secret is %d bytes, want at least %d", ErrKey, len(secret), otpMinSecret)
	}
	code, err = totp.GenerateCodeCustom(otpEncoding.EncodeToString(secret), t, otpOpts)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("tokens: OTP code: %w", err)
	}
	return code, otpPeriodEnd(t), nil
}

// OTPValid reports whether code is secret's code for t's period or for one
// of the OTPSkew periods before or after it. The comparison is constant-time.
// It is false for anything but exactly 6 ASCII digits, and for a secret
// shorter than 16 bytes.
func OTPValid(secret []byte, code string, t time.Time) bool {
	if len(secret) < otpMinSecret || !isOTPShaped(code) {
		return false
	}
	ok, err := totp.ValidateCustom(code, otpEncoding.EncodeToString(secret), t, otpOpts)
	return err == nil && ok
}

// isOTPShaped reports whether code is OTPDigits ASCII digits; the library
// alone would accept a code padded with spaces.
func isOTPShaped(code string) bool {
	if len(code) != OTPDigits {
		return false
	}
	for i := range len(code) {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

// otpPeriodEnd returns the end of the period containing t, using the floor
// division the library uses to number periods.
func otpPeriodEnd(t time.Time) time.Time {
	period := int64(OTPPeriod / time.Second)
	n := t.Unix() / period
	if t.Unix()%period < 0 {
		n--
	}
	return time.Unix((n+1)*period, 0).In(t.Location())
}
