package clientauth_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/arbiter-bank/arbiter/internal/clientauth"
	"github.com/arbiter-bank/arbiter/validation"
)

// testSecret is "whsec_" and the base64 of 32 bytes.
const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw4q7bqjfJv1Y="

func clientsWithWebhook(webhook string) string {
	return "clients:\n  - id: card-service\n    key_sha256: 52e53c654d2720c17a16ebdcc951400d5115d82e61b5136cf8803d81b18cc926\n    roles: [checker]\n" +
		"    webhook:\n" + webhook
}

func TestWebhooks(t *testing.T) {
	t.Run("defaults to every type", func(t *testing.T) {
		cs, err := clientauth.Parse([]byte(clientsWithWebhook("      url: https://card.example/webhooks/arbiter\n      secret: " + testSecret + "\n")))
		if err != nil {
			t.Fatal(err)
		}
		ws := cs.Webhooks()
		if got, want := len(ws), 1; got != want {
			t.Fatalf("len(Webhooks()) = %d, want %d", got, want)
		}
		w := ws[0]
		if w.ID != "card-service" || w.URL != "https://card.example/webhooks/arbiter" || w.Secret != testSecret {
			t.Errorf("Webhooks()[0] = %+v", w)
		}
		if !slices.Equal(w.Types, validation.WebhookTypes) {
			t.Errorf("Types = %v, want %v", w.Types, validation.WebhookTypes)
		}
		if got, want := w.Subscriber(), (validation.Subscriber{ID: "card-service", Types: validation.WebhookTypes}); got.ID != want.ID || !slices.Equal(got.Types, want.Types) {
			t.Errorf("Subscriber() = %+v, want %+v", got, want)
		}
		if cs.Clients[0].Webhook.Secret != "" {
			t.Error("the secret is still in Client, which request handlers see")
		}
	})
	t.Run("reads secret_file without its trailing newline", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "secret")
		if err := os.WriteFile(path, []byte(testSecret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cs, err := clientauth.Parse([]byte(clientsWithWebhook("      url: http://127.0.0.1:8081/webhooks/arbiter\n      secret_file: " + path + "\n      events: [hold_expired, hold_cancelled]\n")))
		if err != nil {
			t.Fatal(err)
		}
		w := cs.Webhooks()[0]
		if w.Secret != testSecret {
			t.Error("secret_file's secret not read as written, less its newline")
		}
		if got, want := w.Types, []string{"hold_expired", "hold_cancelled"}; !slices.Equal(got, want) {
			t.Errorf("Types = %v, want %v", got, want)
		}
	})
	t.Run("no webhook, no subscriber", func(t *testing.T) {
		cs, err := clientauth.Parse([]byte(strings.TrimSuffix(clientsWithWebhook(""), "    webhook:\n")))
		if err != nil {
			t.Fatal(err)
		}
		if got := cs.Webhooks(); len(got) != 0 {
			t.Errorf("Webhooks() = %v, want none", got)
		}
	})
	t.Run("never prints the secret", func(t *testing.T) {
		w := clientauth.Webhook{ID: "card-service", URL: "https://card.example/", Secret: testSecret, Types: []string{"hold_expired"}}
		var logged strings.Builder
		slog.New(slog.NewTextHandler(&logged, nil)).Info("subscriber", "webhook", w)
		for _, s := range []string{fmt.Sprint(w), fmt.Sprintf("%v", w), fmt.Sprintf("%#v", w), fmt.Sprintf("%+v", w), w.String(), logged.String()} {
			if strings.Contains(s, "MfKQ9r8") {
				t.Errorf("the secret is printed: %s", s)
			}
		}
	})
}

func TestWebhookRefusals(t *testing.T) {
	short := "whsec_" + "c2hvcnQga2V5IG9mIDIzIGJ5dGVzISE=" // 23 bytes
	for _, tc := range []struct {
		name, webhook, want string
	}{
		{"relative url", "      url: /webhooks\n      secret: " + testSecret + "\n", "absolute"},
		{"ftp url", "      url: ftp://card.example/\n      secret: " + testSecret + "\n", "absolute"},
		{"no secret", "      url: https://card.example/\n", "no secret"},
		{"both secrets", "      url: https://card.example/\n      secret: " + testSecret + "\n      secret_file: /x\n", "set one"},
		{"missing secret file", "      url: https://card.example/\n      secret_file: /nonexistent/secret\n", "secret_file"},
		{"no prefix", "      url: https://card.example/\n      secret: MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw4q7bqjfJv1Y=\n", "whsec_"},
		{"not base64", "      url: https://card.example/\n      secret: whsec_not*base64!!\n", "base64"},
		{"short key", "      url: https://card.example/\n      secret: " + short + "\n", "at least 24"},
		{"unknown event", "      url: https://card.example/\n      secret: " + testSecret + "\n      events: [hold_expired, checked]\n", `"checked" is unknown`},
		{"event twice", "      url: https://card.example/\n      secret: " + testSecret + "\n      events: [hold_expired, hold_expired]\n", "twice"},
		{"unknown field", "      url: https://card.example/\n      secret: " + testSecret + "\n      retries: 3\n", "retries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := clientauth.Parse([]byte(clientsWithWebhook(tc.webhook)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error = %v, want one saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "MfKQ9r8") || strings.Contains(err.Error(), "c2hvcnQ") {
				t.Errorf("the error quotes the secret: %v", err)
			}
		})
	}
}
