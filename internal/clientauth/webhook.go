package clientauth

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/arbiter-bank/arbiter/validation"
)

// WebhookConfig is a client's webhook subscription as the clients file
// writes it: where to announce events, the signing secret (inline or in a
// file, exactly one), and which event types (validation.WebhookTypes; empty:
// all of them). After loading, Secret and SecretFile are cleared: the
// secret lives only in the Webhook that Clients.Webhooks returns.
type WebhookConfig struct {
	URL        string   `yaml:"url"`
	Secret     string   `yaml:"secret"`
	SecretFile string   `yaml:"secret_file"`
	Events     []string `yaml:"events"`
}

// Webhook is one subscriber ready for the sender: the client's id, its
// endpoint, its Standard Webhooks secret ("whsec_" + base64 of the key)
// and the event types it receives. String and LogValue redact the secret,
// so printing or logging a Webhook never shows it.
type Webhook struct {
	ID     string
	URL    string
	Secret string
	Types  []string
}

// String describes the webhook without its secret.
func (w Webhook) String() string {
	return fmt.Sprintf("webhook %s → %s %v (secret redacted)", w.ID, w.URL, w.Types)
}

// GoString is String, so that %#v does not print the secret either.
func (w Webhook) GoString() string { return w.String() }

// LogValue logs the webhook without its secret.
func (w Webhook) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", w.ID), slog.String("url", w.URL), slog.Any("types", w.Types))
}

// Subscriber is the webhook's subscription as the archive's delivery
// queue knows it: who, and which types.
func (w Webhook) Subscriber() validation.Subscriber {
	return validation.Subscriber{ID: w.ID, Types: slices.Clone(w.Types)}
}

// MinWebhookKeyBytes is the shortest signing key accepted: a secret
// decodes to at least this many bytes.
const MinWebhookKeyBytes = 24

// webhookSecretPrefix starts every Standard Webhooks secret.
const webhookSecretPrefix = "whsec_"

// Webhooks returns the clients' webhook subscriptions, in file order.
func (cs *Clients) Webhooks() []Webhook {
	out := make([]Webhook, len(cs.webhooks))
	for i, w := range cs.webhooks {
		w.Types = slices.Clone(w.Types)
		out[i] = w
	}
	return out
}

// prepareWebhook checks client i's webhook, if it has one, reads its
// secret and keeps the subscriber aside, clearing the secret from Client
// (which Identify hands to request handlers).
func (cs *Clients) prepareWebhook(i int) error {
	c := &cs.Clients[i]
	wc := c.Webhook
	if wc == nil {
		return nil
	}
	u, err := url.Parse(wc.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("client %q: webhook url %q must be an absolute http:// or https:// URL", c.ID, wc.URL)
	}
	secret, err := webhookSecret(wc)
	if err != nil {
		return fmt.Errorf("client %q: webhook %w", c.ID, err)
	}
	types := wc.Events
	if len(types) == 0 {
		types = validation.WebhookTypes
	}
	seen := map[string]bool{}
	for _, t := range types {
		if !slices.Contains(validation.WebhookTypes, t) {
			return fmt.Errorf("client %q: webhook event %q is unknown (%s)", c.ID, t, strings.Join(validation.WebhookTypes, ", "))
		}
		if seen[t] {
			return fmt.Errorf("client %q: webhook event %q is listed twice", c.ID, t)
		}
		seen[t] = true
	}
	cs.webhooks = append(cs.webhooks, Webhook{ID: c.ID, URL: wc.URL, Secret: secret, Types: slices.Clone(types)})
	wc.Secret, wc.SecretFile = "", ""
	return nil
}

// webhookSecret reads the secret of wc (inline or from its file, one
// trailing newline dropped) and checks that it decodes to a key long
// enough. Its errors never quote the secret.
func webhookSecret(wc *WebhookConfig) (string, error) {
	secret := wc.Secret
	switch {
	case wc.Secret != "" && wc.SecretFile != "":
		return "", fmt.Errorf("sets secret and secret_file: set one")
	case wc.SecretFile != "":
		b, err := os.ReadFile(wc.SecretFile)
		if err != nil {
			return "", fmt.Errorf("secret_file: %w", err)
		}
		secret = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	case wc.Secret == "":
		return "", fmt.Errorf("has no secret or secret_file")
	}
	b64, ok := strings.CutPrefix(secret, webhookSecretPrefix)
	if !ok {
		return "", fmt.Errorf("secret must start with %s", webhookSecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", fmt.Errorf("secret is not %s followed by standard base64", webhookSecretPrefix)
	}
	if len(key) < MinWebhookKeyBytes {
		return "", fmt.Errorf("secret's key is %d bytes; at least %d are needed", len(key), MinWebhookKeyBytes)
	}
	return secret, nil
}
