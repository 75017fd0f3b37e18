package tokens_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/tokens"
)

// rfc6238Secret is the SHA1 seed of RFC 6238 Appendix B.
var rfc6238Secret = []byte("12345678901234567890")

func TestOTPCodeRFC6238(t *testing.T) {
	// RFC 6238 Appendix B, SHA1, keeping the last 6 of the 8 published digits.
	tests := []struct {
		unix int64
		code string
	}{
		{59, "287082"},
		{1111111109, "081804"},
		{1111111111, "050471"},
		{1234567890, "005924"},
		{2000000000, "279037"},
		{20000000000, "353130"},
	}
	for _, tt := range tests {
		at := time.Unix(tt.unix, 0).UTC()
		code, validUntil, err := tokens.OTPCode(rfc6238Secret, at)
		if err != nil {
			t.Fatalf("OTPCode(T=%d): %v", tt.unix, err)
		}
		if got, want := code, tt.code; got != want {
			t.Fatalf("OTPCode(T=%d) = %q, want %q", tt.unix, got, want)
		}
		if got, want := validUntil, time.Unix((tt.unix/30+1)*30, 0).UTC(); !got.Equal(want) {
			t.Fatalf("OTPCode(T=%d) validUntil = %v, want %v", tt.unix, got, want)
		}
		if got, want := tokens.OTPValid(rfc6238Secret, tt.code, at), true; got != want {
			t.Fatalf("OTPValid(%q, T=%d) = %v, want %v", tt.code, tt.unix, got, want)
		}
	}
}

func TestOTPCodeValidUntil(t *testing.T) {
	tests := []struct {
		unix, until int64
	}{
		{0, 30},
		{29, 30},
		{30, 60},
		{1111111111, 1111111140},
	}
	for _, tt := range tests {
		_, got, err := tokens.OTPCode(rfc6238Secret, time.Unix(tt.unix, 999_999_999))
		if err != nil {
			t.Fatal(err)
		}
		if want := time.Unix(tt.until, 0); !got.Equal(want) {
			t.Fatalf("OTPCode(T=%d.999) validUntil = %v, want %v", tt.unix, got.Unix(), want.Unix())
		}
	}
}

func TestOTPValidWindow(t *testing.T) {
	issued := time.Unix(1111111111, 0) // code 050471, period [1111111110, 1111111140)
	code, _, err := tokens.OTPCode(rfc6238Secret, issued)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		after time.Duration
		ok    bool
	}{
		{"two periods early", -2 * tokens.OTPPeriod, false},
		{"previous period", -tokens.OTPPeriod, true},
		{"same instant", 0, true},
		{"end of same period", 28 * time.Second, true},
		{"next period", tokens.OTPPeriod, true},
		{"last second of next period", 58 * time.Second, true},
		{"two periods late", 2 * tokens.OTPPeriod, false},
		{"an hour late", time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := tokens.OTPValid(rfc6238Secret, code, issued.Add(tt.after)), tt.ok; got != want {
				t.Fatalf("OTPValid(%q) at +%v = %v, want %v", code, tt.after, got, want)
			}
		})
	}
}

func TestOTPValidRefusesMalformed(t *testing.T) {
	at := time.Unix(1111111111, 0) // the code is 050471
	tests := []struct {
		name, code string
	}{
		{"empty", ""},
		{"five digits", "12345"},
		{"seven digits", "1234567"},
		{"letter", "12a456"},
		{"leading space", " 50471"},
		{"trailing space", "05047 "},
		{"right code padded", " 050471 "},
		{"right code with eighth digits", "07050471"},
		{"sign", "+50471"},
		{"fullwidth digit", "０50471"},
		{"wrong code", "050472"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := tokens.OTPValid(rfc6238Secret, tt.code, at), false; got != want {
				t.Fatalf("OTPValid(%q) = %v, want %v", tt.code, got, want)
			}
		})
	}
}

func TestOTPShortSecret(t *testing.T) {
	short := rfc6238Secret[:15]
	if _, _, err := tokens.OTPCode(short, time.Unix(59, 0)); !errors.Is(err, tokens.ErrKey) {
		t.Fatalf("OTPCode(15-byte secret) error = %v, want ErrKey", err)
	}
	if got, want := tokens.OTPValid(nil, "287082", time.Unix(59, 0)), false; got != want {
		t.Fatalf("OTPValid(nil secret) = %v, want %v", got, want)
	}
}

func TestNewOTPSecret(t *testing.T) {
	a, err := tokens.NewOTPSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := tokens.NewOTPSecret()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(a), 20; got != want {
		t.Fatalf("len(NewOTPSecret()) = %d, want %d", got, want)
	}
	if bytes.Equal(a, b) {
		t.Fatal("two NewOTPSecret calls returned the same secret")
	}
	code, _, err := tokens.OTPCode(a, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tokens.OTPValid(a, code, t0), true; got != want {
		t.Fatalf("OTPValid(own code) = %v, want %v", got, want)
	}
}
