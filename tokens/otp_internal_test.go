package tokens

import (
	"crypto/rand"
	"math/big"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// TestHOTPCodeAsLibrary pins OTPCode to pquerna/otp's code for random
// secrets (16 to 64 bytes) and times, so codes already read out stay
// valid across the change and OTPValid (the library's) accepts them.
func TestHOTPCodeAsLibrary(t *testing.T) {
	for i := range 2000 {
		n, _ := rand.Int(rand.Reader, big.NewInt(49))
		secret := make([]byte, 16+n.Int64())
		_, _ = rand.Read(secret)
		sec, _ := rand.Int(rand.Reader, big.NewInt(1<<40))
		at := time.Unix(sec.Int64(), int64(i))
		if i == 0 {
			at = time.Unix(0, 0)
		}
		got, _, err := OTPCode(secret, at)
		if err != nil {
			t.Fatal(err)
		}
		want, err := totp.GenerateCodeCustom(otpEncoding.EncodeToString(secret), at, otpOpts)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("OTPCode(%x, %v) = %s, want the library's %s", secret, at.Unix(), got, want)
		}
		if !OTPValid(secret, got, at) {
			t.Fatalf("OTPValid refuses OTPCode's %s", got)
		}
	}
}
