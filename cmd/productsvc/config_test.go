package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		wantDB  string
	}{
		{name: "flags", args: []string{"-product", "credit_card", "-id", "card-service"}, env: map[string]string{"PRODUCTSVC_ARBITER_KEY": "k"}, wantDB: "card-service.db"},
		{name: "env", env: map[string]string{"PRODUCTSVC_PRODUCT": "personal_loan", "PRODUCTSVC_ID": "loan-service", "PRODUCTSVC_ARBITER_KEY": "k", "PRODUCTSVC_DB": "/tmp/l.db"}, wantDB: "/tmp/l.db"},
		{name: "missing", env: map[string]string{}, wantErr: "missing -product"},
		{name: "bad fault", args: []string{"-product", "p", "-id", "i", "-arbiter-key", "k"}, env: map[string]string{"PRODUCTSVC_FAULT": "boom"}, wantErr: "PRODUCTSVC_FAULT"},
		{name: "a client certificate instead of a key", args: []string{"-product", "p", "-id", "i", "-arbiter-url", "https://arbiter:8443", "-arbiter-cert", "c.pem", "-arbiter-cert-key", "k.pem"}, env: map[string]string{}, wantDB: "i.db"},
		{name: "a client certificate without its key", args: []string{"-product", "p", "-id", "i", "-arbiter-url", "https://arbiter:8443", "-arbiter-cert", "c.pem"}, env: map[string]string{}, wantErr: "go together"},
		{name: "an arbiter CA with http://", args: []string{"-product", "p", "-id", "i", "-arbiter-key", "k", "-arbiter-ca", "ca.pem"}, env: map[string]string{}, wantErr: "need an https:// arbiter URL"},
		{name: "a listener certificate without its key", args: []string{"-product", "p", "-id", "i", "-arbiter-key", "k", "-tls-cert", "c.pem"}, env: map[string]string{}, wantErr: "PRODUCTSVC_TLS_CERT and PRODUCTSVC_TLS_KEY"},
		{name: "a client CA without a listener certificate", args: []string{"-product", "p", "-id", "i", "-arbiter-key", "k"}, env: map[string]string{"PRODUCTSVC_TLS_CLIENT_CA": "ca.pem"}, wantErr: "needs a TLS listener"},
		{name: "bad duration", args: []string{"-product", "p", "-id", "i", "-arbiter-key", "k", "-reconcile-interval", "0s"}, env: map[string]string{}, wantErr: "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, env(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseConfig = %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, want := c.DB, tt.wantDB; got != want {
				t.Fatalf("DB = %q, want %q", got, want)
			}
		})
	}
}
