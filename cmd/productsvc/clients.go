package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/arbiter-bank/arbiter/internal/clientauth"
	"github.com/arbiter-bank/arbiter/validation"
)

// loadCallers reads PRODUCTSVC_CLIENTS into the function that identifies the
// caller of an application; nil when no file is set (the API is open). The
// file is arbiter's clients file format; roles and agents are accepted but
// mean nothing here: any listed client may apply and close.
func loadCallers(cfg config) (func(*http.Request) (string, error), error) {
	if cfg.ClientsFile == "" {
		return nil, nil
	}
	data, err := os.ReadFile(cfg.ClientsFile)
	if err != nil {
		return nil, fmt.Errorf("PRODUCTSVC_CLIENTS: %w", err)
	}
	cs, err := clientauth.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("PRODUCTSVC_CLIENTS %s: %w", cfg.ClientsFile, err)
	}
	if id, ok := cs.HasCertNames(); ok && cfg.TLSClientCA == "" {
		return nil, fmt.Errorf("PRODUCTSVC_CLIENTS: client %q has cert_names, but no PRODUCTSVC_TLS_CLIENT_CA verifies client certificates", id)
	}
	return func(r *http.Request) (string, error) { return identify(cs, r) }, nil
}

// identify returns the id of the client the request's bearer key and
// verified client certificate identify (clientauth.Clients.Identify: keys
// compared as SHA-256 in constant time).
func identify(cs *clientauth.Clients, r *http.Request) (string, error) {
	key, cert, err := clientauth.Credentials(r)
	var c clientauth.Client
	if err == nil {
		c, err = cs.Identify(key, cert)
	}
	if ve := (*validation.Error)(nil); errors.As(err, &ve) {
		return "", errors.New(ve.Detail) // the problem document carries the reason
	}
	if err != nil {
		return "", err
	}
	return c.ID, nil
}
