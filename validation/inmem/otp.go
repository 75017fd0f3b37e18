package inmem

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"time"
)

// totpOK reports whether code is the RFC 6238 code (HMAC-SHA1, 6 digits)
// of secret for any period within skew of now's, as redisstore's totp_ok
// does in Lua and package tokens does with pquerna/otp.
func totpOK(secret []byte, code string, now time.Time, period time.Duration, skew int) bool {
	counter := now.Unix() / int64(period/time.Second)
	for d := 0; d <= skew; d++ {
		for _, c := range []int64{counter - int64(d), counter + int64(d)} {
			if c >= 0 && hmac.Equal([]byte(hotp(secret, c)), []byte(code)) {
				return true
			}
		}
	}
	return false
}

// hotp is RFC 4226's HOTP with 6 digits.
func hotp(secret []byte, counter int64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(counter))
	m := hmac.New(sha1.New, secret)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0xf
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1000000)
}

// otpDigest is what a grant keeps of the code that redeemed it (redeem.lua's
// otp_digest): enough to recognise the same client's retry.
func otpDigest(checkID, code string) string {
	sum := sha1.Sum([]byte(checkID + ":" + code))
	return fmt.Sprintf("%x", sum)
}
