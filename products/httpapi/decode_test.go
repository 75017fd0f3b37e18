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
	}{
		{"one object", `{"customer_id":"C-1","token":"t"}`, "C-1"},
		{"duplicate member", `{"customer_id":"C-1","customer_id":"C-2"}`, ""},
		{"duplicate member, escaped", `{"customer_id":"C-1","customer\u005fid":"C-2"}`, ""},
		{"case-variant name", `{"Customer_ID":"C-1"}`, ""},
		{"case-variant duplicate", `{"customer_id":"C-1","CUSTOMER_ID":"C-2"}`, ""},
		{"unknown member", `{"customer_id":"C-1","colour":"red"}`, ""},
		{"invalid UTF-8", "{\"customer_id\":\"C-\xff\"}", ""},
		{"two values", `{"customer_id":"C-1"} {}`, ""},
		{"trailing garbage", `{"customer_id":"C-1"}x`, ""},
		{"empty", ``, ""},
		{"too large", `{"customer_id":"` + strings.Repeat("c", MaxBodyBytes) + `"}`, ""},
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
			if got, want := e.Reason, issuing.ReasonInvalidRequest; got != want {
				t.Fatalf("reason = %q, want %q", got, want)
			}
		})
	}
}
