package httpapi

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/arbiter-bank/arbiter/products/issuing"
)

// TestDecodeIsStrict: a body the product service accepts means one thing
// to every reader, so duplicate and case-variant member names, unknown
// members, invalid UTF-8 and trailing data are refused.
func TestDecodeIsStrict(t *testing.T) {
	tests := []struct {
		name, body string
		want       string // the decoded customer id; "" when refused
		reason     string // the refusal's reason; invalid_request when empty
	}{
		{name: "one object", body: `{"customer_id":"C-1","token":"t"}`, want: "C-1"},
		{name: "duplicate member", body: `{"customer_id":"C-1","customer_id":"C-2"}`, want: ""},
		{name: "duplicate member, escaped", body: `{"customer_id":"C-1","customer\u005fid":"C-2"}`, want: ""},
		{name: "case-variant name", body: `{"Customer_ID":"C-1"}`, want: ""},
		{name: "case-variant duplicate", body: `{"customer_id":"C-1","CUSTOMER_ID":"C-2"}`, want: ""},
		{name: "unknown member", body: `{"customer_id":"C-1","colour":"red"}`, want: ""},
		{name: "invalid UTF-8", body: "{\"customer_id\":\"C-\xff\"}", want: ""},
		{name: "two values", body: `{"customer_id":"C-1"} {}`, want: ""},
		{name: "trailing garbage", body: `{"customer_id":"C-1"}x`, want: ""},
		{name: "empty", body: ``, want: ""},
		{name: "too large", body: `{"customer_id":"` + strings.Repeat("c", MaxBodyBytes) + `"}`, reason: reasonPayloadTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/applications", strings.NewReader(tt.body))
			r.Header.Set("Content-Type", "application/json")
			var a issuing.Application
			err := decode(httptest.NewRecorder(), r, &a)
			if tt.want != "" {
				if err != nil {
					t.Fatalf("decode(%s) = %v, want it accepted", tt.body, err)
				}
				if got, want := a.CustomerID, tt.want; got != want {
					t.Fatalf("customer_id = %q, want %q", got, want)
				}
				return
			}
			var e *issuing.Error
			if !errors.As(err, &e) {
				t.Fatalf("decode(%s) = %v (decoded %+v), want an *issuing.Error", tt.body, err, a)
			}
			want := issuing.ReasonInvalidRequest
			if tt.reason != "" {
				want = tt.reason
			}
			if got := e.Reason; got != want {
				t.Fatalf("reason = %q, want %q", got, want)
			}
		})
	}
}
