package redisstore

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/tokens"
	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// totpOpts are the parameters arbiter's OTPs use: RFC 6238 defaults.
var totpOpts = totp.ValidateOpts{Period: 30, Skew: 1, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// TestLuaTOTP proves that luaTOTP computes and accepts exactly what Go's
// TOTP implementations do, on a real redis-server (Lua 5.1) and on miniredis
// (gopher-lua, which has no bit library).
func TestLuaTOTP(t *testing.T) {
	for _, backend := range []struct {
		name  string
		start func(testing.TB) redis.Scripter
	}{
		{"redis", func(tb testing.TB) redis.Scripter { return redistest.MustStartRedis(tb).Client(tb) }},
		{"miniredis", func(tb testing.TB) redis.Scripter {
			m := redistest.MustStartMiniredis(tb)
			c := redis.NewClient(&redis.Options{Addr: m.Addr()})
			tb.Cleanup(func() { _ = c.Close() })
			return c
		}},
	} {
		t.Run(backend.name, func(t *testing.T) {
			c := backend.start(t)
			t.Run("rfc 6238 vectors", func(t *testing.T) { testTOTPVectors(t, c) })
			t.Run("agrees with pquerna", func(t *testing.T) { testTOTPAgainstPquerna(t, c) })
			t.Run("skew windows agree with pquerna", func(t *testing.T) { testTOTPSkew(t, c) })
			t.Run("refuses malformed codes", func(t *testing.T) { testTOTPMalformed(t, c) })
			t.Run("any key length and counter agrees with crypto/hmac", func(t *testing.T) { testTOTPKeyLengths(t, c) })
			t.Run("rejects bad arguments", func(t *testing.T) { testTOTPBadArgs(t, c) })
		})
	}
}

// testTOTPVectors checks RFC 6238 Appendix B's SHA-1 vectors, truncated to
// 6 digits.
func testTOTPVectors(t *testing.T, c redis.Scripter) {
	secret := hex.EncodeToString([]byte("12345678901234567890"))
	for _, tc := range []struct {
		unix int64
		want string
	}{
		{59, "287082"},
		{1111111109, "081804"},
		{1111111111, "050471"},
		{1234567890, "005924"},
		{2000000000, "279037"},
		{20000000000, "353130"},
	} {
		code, ok := runTOTP(t, c, secret, tc.unix/30, tc.want, tc.unix, 0)
		if got, want := code, tc.want; got != want {
			t.Fatalf("totp_code(T=%d) = %q, want %q", tc.unix, got, want)
		}
		if !ok {
			t.Fatalf("totp_ok(%q, T=%d, skew 0) = false, want true", tc.want, tc.unix)
		}
	}
}

// testTOTPAgainstPquerna compares luaTOTP with pquerna/otp on random secrets
// and times between 2000 and 2100, probing codes from neighbouring windows.
func testTOTPAgainstPquerna(t *testing.T, c redis.Scripter) {
	rng := rand.New(rand.NewPCG(6238, 4226))
	from := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	to := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	refusedFar := 0
	for i := range 300 {
		key := make([]byte, 20)
		for j := range key {
			key[j] = byte(rng.UintN(256))
		}
		secretHex := hex.EncodeToString(key)
		secret32 := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(key)
		now := from + rng.Int64N(to-from)

		goCode := mustGoTOTP(t, secret32, now)
		code, _ := runTOTP(t, c, secretHex, now/30, "", now, 1)
		if got, want := code, goCode; got != want {
			t.Fatalf("case %d: totp_code(%s, T=%d) = %q, want %q (pquerna)", i, secretHex, now, got, want)
		}

		for _, offset := range []int64{-60, -30, 0, 30, 60} {
			probe := mustGoTOTP(t, secret32, now+offset)
			want, err := totp.ValidateCustom(probe, secret32, time.Unix(now, 0), totpOpts)
			if err != nil {
				t.Fatalf("case %d: pquerna ValidateCustom: %v", i, err)
			}
			if offset >= -30 && offset <= 30 && !want {
				t.Fatalf("case %d: pquerna refuses the code of T%+ds with skew 1", i, offset)
			}
			if _, got := runTOTP(t, c, secretHex, 0, probe, now, 1); got != want {
				t.Fatalf("case %d: totp_ok(code of T%+ds, T=%d, skew 1) = %v, want %v (pquerna)", i, offset, now, got, want)
			}
			if !want {
				refusedFar++
			}
		}
	}
	// Codes two windows away coincide with an accepted one with probability
	// about 3e-6 each: nearly all 600 must have been refused.
	if refusedFar < 595 {
		t.Fatalf("only %d of 600 codes two windows away were refused", refusedFar)
	}
}

// testTOTPSkew checks that skew 0 to 3 accepts exactly the windows pquerna
// accepts, and that windows before the epoch are skipped, not an error.
func testTOTPSkew(t *testing.T, c redis.Scripter) {
	key := []byte("12345678901234567890")
	secretHex := hex.EncodeToString(key)
	secret32 := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(key)
	const now = 1234567890
	for skew := range 4 {
		opts := totpOpts
		opts.Skew = uint(skew)
		for window := int64(-4); window <= 4; window++ {
			probe := mustGoTOTP(t, secret32, now+30*window)
			want, err := totp.ValidateCustom(probe, secret32, time.Unix(now, 0), opts)
			if err != nil {
				t.Fatalf("pquerna ValidateCustom: %v", err)
			}
			if got := window >= -int64(skew) && window <= int64(skew); got != want {
				t.Fatalf("pquerna with skew %d accepts window %+d: %v, want %v", skew, window, want, got)
			}
			if _, got := runTOTP(t, c, secretHex, 0, probe, now, skew); got != want {
				t.Fatalf("totp_ok(code of window %+d, skew %d) = %v, want %v", window, skew, got, want)
			}
		}
	}
	first := hotpSHA1(key, 0)
	if _, ok := runTOTP(t, c, secretHex, 0, first, 10, 2); !ok {
		t.Fatalf("totp_ok(code of counter 0, T=10, skew 2) = false, want true")
	}
}

// testTOTPMalformed checks that only exactly 6 ASCII digits can match, even
// when the digits they contain are the right code.
func testTOTPMalformed(t *testing.T, c redis.Scripter) {
	secret := hex.EncodeToString([]byte("12345678901234567890"))
	const now = 1234567890 // the right code is "005924"
	if _, ok := runTOTP(t, c, secret, 0, "005924", now, 1); !ok {
		t.Fatalf("totp_ok(005924) = false, want true")
	}
	for _, code := range []string{"", "12345", "1234567", "12a456", " 12345", "05924", "0059240", " 005924", "005924 ", "005924\n", "+05924", "5924.0", "٠٠٥٩٢٤"} {
		if _, ok := runTOTP(t, c, secret, 0, code, now, 1); ok {
			t.Fatalf("totp_ok(%q) = true, want false", code)
		}
	}
}

// testTOTPKeyLengths checks keys shorter than, equal to and longer than the
// 64-byte block (which HMAC hashes first), and counters whose big-endian
// bytes exercise every position, against crypto/hmac.
func testTOTPKeyLengths(t *testing.T, c redis.Scripter) {
	rng := rand.New(rand.NewPCG(2104, 1))
	counters := []int64{0, 1, 255, 256, 65535, 1<<32 - 1, 1 << 32, 1<<40 + 12345, 1<<53 - 1, 1 << 53}
	var keys [][]byte
	for _, n := range []int{1, 20, 32, 63, 64, 65, 80, 200, 256} {
		key := make([]byte, n)
		for j := range key {
			key[j] = byte(rng.UintN(256))
		}
		keys = append(keys, key)
	}
	// Four 64-byte keys (not hashed) hold every byte value once, so every
	// entry of the XOR nibble tables is checked.
	for k := range 4 {
		key := make([]byte, 64)
		for j := range key {
			key[j] = byte(64*k + j)
		}
		keys = append(keys, key)
	}
	for _, key := range keys {
		n := len(key)
		for _, counter := range counters {
			code, _ := runTOTP(t, c, hex.EncodeToString(key), counter, "", 0, 0)
			if got, want := code, hotpSHA1(key, uint64(counter)); got != want {
				t.Fatalf("%d-byte key, counter %d: totp_code = %q, want %q (crypto/hmac)", n, counter, got, want)
			}
		}
	}
	// Uppercase hex is the same key.
	key := []byte("12345678901234567890")
	upper := fmt.Sprintf("%X", key)
	if code, _ := runTOTP(t, c, upper, 1, "", 0, 0); code != "287082" {
		t.Fatalf("totp_code(uppercase hex, 1) = %q, want %q", code, "287082")
	}
}

// testTOTPBadArgs checks that corrupt inputs abort the script instead of
// comparing against a code derived from garbage.
func testTOTPBadArgs(t *testing.T, c redis.Scripter) {
	ctx := context.Background()
	secret := hex.EncodeToString([]byte("12345678901234567890"))
	for _, tc := range []struct {
		name string
		argv []any
	}{
		{"empty secret", []any{"", 1, "123456", 59, 30, 1}},
		{"odd hex", []any{"abc", 1, "123456", 59, 30, 1}},
		{"not hex", []any{"zz", 1, "123456", 59, 30, 1}},
		{"secret over 256 bytes", []any{strings.Repeat("ab", 257), 1, "123456", 59, 30, 1}},
		{"negative counter", []any{secret, -1, "123456", 59, 30, 1}},
		{"fractional counter", []any{secret, "1.5", "123456", 59, 30, 1}},
		{"counter above 2^53", []any{secret, "18014398509481984", "123456", 59, 30, 1}},
		{"zero period", []any{secret, 1, "123456", 59, 0, 1}},
		{"negative skew", []any{secret, 1, "123456", 59, 30, -1}},
		{"fractional skew", []any{secret, 1, "123456", 59, 30, "0.5"}},
		{"skew over 100", []any{secret, 1, "123456", 59, 30, 101}},
		{"infinite skew", []any{secret, 1, "123456", 59, 30, "inf"}},
		{"time not a number", []any{secret, 1, "123456", "soon", 30, 1}},
	} {
		if err := totpCheckScript.Run(ctx, c, nil, tc.argv...).Err(); err == nil {
			t.Fatalf("%s: script error = nil, want an error", tc.name)
		}
	}
}

// runTOTP runs totpCheckScript with period 30 and returns totp_code(secret,
// counter) and totp_ok(secret, code, now, 30, skew).
func runTOTP(tb testing.TB, c redis.Scripter, secretHex string, counter int64, code string, now int64, skew int) (string, bool) {
	tb.Helper()
	res, err := totpCheckScript.Run(context.Background(), c, nil,
		secretHex, strconv.FormatInt(counter, 10), code, strconv.FormatInt(now, 10), 30, skew).Slice()
	if err != nil {
		tb.Fatalf("totp check script: %v", err)
	}
	if len(res) != 2 {
		tb.Fatalf("totp check script returned %v, want {code, ok}", res)
	}
	gotCode, ok1 := res[0].(string)
	gotOK, ok2 := res[1].(int64)
	if !ok1 || !ok2 {
		tb.Fatalf("totp check script returned %#v, want {string, integer}", res)
	}
	return gotCode, gotOK == 1
}

// mustGoTOTP returns pquerna's 6-digit SHA-1 TOTP for secret32 at unix time now.
func mustGoTOTP(tb testing.TB, secret32 string, now int64) string {
	tb.Helper()
	code, err := totp.GenerateCodeCustom(secret32, time.Unix(now, 0), totpOpts)
	if err != nil {
		tb.Fatalf("pquerna GenerateCodeCustom: %v", err)
	}
	return code
}

// hotpSHA1 is RFC 4226 HOTP with 6 digits, written straight from the RFC
// with crypto/hmac (which hashes keys longer than the block, as RFC 2104 says).
func hotpSHA1(key []byte, counter uint64) string {
	mac := hmac.New(sha1.New, key)
	_ = binary.Write(mac, binary.BigEndian, counter)
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0xf
	v := binary.BigEndian.Uint32(sum[off:]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1000000)
}

// BenchmarkLuaTOTP measures one totpCheckScript call (an EVALSHA computing
// one code and checking another with skew 1, the worst case of 3 counters
// when the code is wrong) on a real redis-server. Besides ns/op, which
// includes the round trip, it reports server-µs/op, the script's time inside
// Redis from INFO commandstats. "totp_ok only" is the cost a redemption
// pays; "baseline" is a trivial script for contrast.
func BenchmarkLuaTOTP(b *testing.B) {
	c := redistest.MustStartRedis(b).Client(b)
	ctx := context.Background()
	secret := hex.EncodeToString([]byte("12345678901234567890"))
	now := strconv.FormatInt(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), 10)

	for _, bc := range []struct {
		name   string
		script *redis.Script
	}{
		{"totp", totpCheckScript},
		{"totp_ok only", redis.NewScript(luaTOTP + "\nreturn {ARGV[1], totp_ok(ARGV[1], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])) and 1 or 0}")},
		{"baseline", redis.NewScript("return {ARGV[1], 0}")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if err := bc.script.Load(ctx, c).Err(); err != nil {
				b.Fatalf("SCRIPT LOAD: %v", err)
			}
			if err := c.ConfigResetStat(ctx).Err(); err != nil {
				b.Fatalf("CONFIG RESETSTAT: %v", err)
			}
			for b.Loop() {
				if err := bc.script.Run(ctx, c, nil, secret, "1", "000000", now, 30, 1).Err(); err != nil {
					b.Fatalf("script: %v", err)
				}
			}
			b.ReportMetric(evalshaUsecPerCall(b, c), "server-µs/op")
		})
	}
}

// evalshaUsecPerCall reads EVALSHA's mean server-side time from INFO commandstats.
func evalshaUsecPerCall(tb testing.TB, c *redis.Client) float64 {
	tb.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatalf("INFO commandstats: %v", err)
	}
	for line := range strings.Lines(info) {
		fields, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:")
		if !ok {
			continue
		}
		for f := range strings.SplitSeq(fields, ",") {
			if v, ok := strings.CutPrefix(f, "usec_per_call="); ok {
				usec, err := strconv.ParseFloat(v, 64)
				if err != nil {
					tb.Fatalf("parse %q: %v", line, err)
				}
				return usec
			}
		}
	}
	tb.Fatalf("no evalsha usec_per_call in INFO commandstats:\n%s", info)
	return 0
}

// TestOTPParametersMatchTokens: the store verifies codes with the domain's
// TOTP parameters, and package tokens issues them with the same.
func TestOTPParametersMatchTokens(t *testing.T) {
	if validation.DefaultOTPPeriod != tokens.OTPPeriod || validation.DefaultOTPSkew != tokens.OTPSkew {
		t.Fatalf("validation verifies with period %v skew %d; tokens issues with %v, %d",
			validation.DefaultOTPPeriod, validation.DefaultOTPSkew, tokens.OTPPeriod, tokens.OTPSkew)
	}
}
