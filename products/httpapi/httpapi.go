// Package httpapi is the HTTP API of a product service, on net/http:
//
//	POST   /v1/applications             {"customer_id","token"} or {"customer_id","otp"}
//	POST   /v1/applications/online      {"customer_id"}
//	DELETE /v1/products/{customer_id}   close the product, release the grant
//	GET    /v1/holdings?after=&limit=   issued products, paged by customer id (arbiter's holdings feed)
//	POST   /webhooks/arbiter            arbiter's signed announcements (with Config.Webhooks; 204)
//	GET    /healthz, /readyz
//
// An application answers 201 with the issued product, 200 when it had been
// issued already (a retry), and otherwise an application/problem+json
// document {type, title, status, detail, reason, ...}: arbiter's refusals
// keep arbiter's reason and status and add "arbiter": the whole refusal;
// "compensated": true says arbiter's grant was released after a failed local
// write, and "pending": true that reconciliation will settle the outcome.
//
// With Config.Authenticate set, the application and close routes answer
// only identified callers (401 unauthorized otherwise), and each
// application carries its caller's id, so that every OTP attempt is
// attributed; the holdings feed keeps its own key (Config.FeedKey).
package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/arbiter-bank/arbiter/products/client"
	"github.com/arbiter-bank/arbiter/products/issuing"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 16 << 10

// Config is what the handler needs.
type Config struct {
	Service *issuing.Service
	// Ready reports whether the service can take applications (database
	// answers, start-up reconciliation done).
	Ready  func(ctx context.Context) error
	Logger *slog.Logger
	// FeedKey, when set, is the bearer key GET /v1/holdings requires (the
	// key arbiter's reconciler sends); empty: the feed is open.
	FeedKey string
	// Authenticate, when set, identifies the caller of the application and
	// close routes from its request (API key, verified client certificate)
	// and returns its id; an error refuses the request with 401
	// unauthorized, its message as the detail. nil: those routes are open
	// and every caller is anonymous.
	Authenticate func(r *http.Request) (callerID string, err error)
	// Webhooks, when set, verifies arbiter's announcements to
	// POST /webhooks/arbiter (the secret of this service's webhook in
	// arbiter's clients file); nil: that route answers 404.
	Webhooks *client.WebhookVerifier
}

// New returns the service's HTTP handler.
func New(cfg Config) http.Handler {
	mux := http.NewServeMux()
	svc := cfg.Service
	h := func(f func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if err := f(w, r); err != nil {
				writeError(w, r, cfg.Logger, err)
			}
		}
	}
	auth := func(next func(w http.ResponseWriter, r *http.Request, caller string) error) http.HandlerFunc {
		return h(requireCaller(cfg.Authenticate, next))
	}
	mux.HandleFunc("POST /v1/applications", auth(handleApply(svc)))
	mux.HandleFunc("POST /v1/applications/online", auth(handleApplyOnline(svc)))
	mux.HandleFunc("DELETE /v1/products/{customer_id}", auth(handleClose(svc)))
	mux.HandleFunc("GET /v1/holdings", h(requireKey(cfg.FeedKey, handleHoldings(svc))))
	if cfg.Webhooks != nil {
		mux.HandleFunc("POST /webhooks/arbiter", h(handleWebhook(svc, cfg.Webhooks)))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", h(func(w http.ResponseWriter, r *http.Request) error {
		if err := cfg.Ready(r.Context()); err != nil {
			return &issuing.Error{Reason: reasonUnavailable, Detail: "not ready: " + err.Error()}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return nil
	}))
	mux.HandleFunc("/", h(func(w http.ResponseWriter, r *http.Request) error {
		return &issuing.Error{Reason: issuing.ReasonNotFound, Detail: "no such route"}
	}))
	return mux
}

func handleApply(svc *issuing.Service) func(w http.ResponseWriter, r *http.Request, caller string) error {
	return func(w http.ResponseWriter, r *http.Request, caller string) error {
		var a issuing.Application
		if err := decode(w, r, &a); err != nil {
			return err
		}
		a.Caller = caller
		p, replayed, err := svc.Apply(r.Context(), a)
		if err != nil {
			return err
		}
		writeJSON(w, created(replayed), p)
		return nil
	}
}

func handleApplyOnline(svc *issuing.Service) func(w http.ResponseWriter, r *http.Request, caller string) error {
	return func(w http.ResponseWriter, r *http.Request, _ string) error {
		var req struct {
			CustomerID string `json:"customer_id"`
		}
		if err := decode(w, r, &req); err != nil {
			return err
		}
		p, replayed, err := svc.ApplyOnline(r.Context(), req.CustomerID)
		if err != nil {
			return err
		}
		writeJSON(w, created(replayed), p)
		return nil
	}
}

func handleClose(svc *issuing.Service) func(w http.ResponseWriter, r *http.Request, caller string) error {
	return func(w http.ResponseWriter, r *http.Request, _ string) error {
		c, err := svc.Close(r.Context(), r.PathValue("customer_id"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, c)
		return nil
	}
}

// holding is one entry of the holdings feed: the interface arbiter's
// reconciler reads, plus this service's fence and channel.
type holding struct {
	CustomerID string          `json:"customer_id"`
	Product    string          `json:"product"`
	CheckID    string          `json:"check_id"` // "" for products issued outside arbiter
	IssuedAt   time.Time       `json:"issued_at"`
	Fence      int64           `json:"fence"`
	Channel    issuing.Channel `json:"channel"`
}

func handleHoldings(svc *issuing.Service) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		limit := 100
		if q := r.URL.Query().Get("limit"); q != "" {
			n, err := strconv.Atoi(q)
			if err != nil || n < 1 || n > 1000 {
				return &issuing.Error{Reason: issuing.ReasonInvalidRequest, Detail: "limit must be an integer from 1 to 1000"}
			}
			limit = n
		}
		page, err := svc.Holdings(r.Context(), r.URL.Query().Get("after"), limit)
		if err != nil {
			return err
		}
		resp := struct {
			Product  string    `json:"product"`
			Holdings []holding `json:"holdings"`
			Next     string    `json:"next"` // pass as ?after= for the next page; "" on the last
			// Proof: the listing's own count and digest of the range the
			// page covers (docs/reconciliation.md, "The completeness proof").
			Proof issuing.HoldingsProof `json:"proof"`
		}{Product: svc.Product, Holdings: make([]holding, 0, len(page.Products)), Next: page.Next, Proof: page.Proof}
		for _, p := range page.Products {
			h := holding{CustomerID: p.CustomerID, Product: p.Product, CheckID: p.CheckID, IssuedAt: p.IssuedAt, Fence: p.Fence, Channel: p.Channel}
			if p.Channel == issuing.ChannelLegacy {
				h.CheckID = ""
			}
			resp.Holdings = append(resp.Holdings, h)
		}
		writeJSON(w, http.StatusOK, resp)
		return nil
	}
}

// requireKey refuses a request without "Authorization: Bearer <key>" when
// key is set (compared in constant time).
func requireKey(key string, next func(w http.ResponseWriter, r *http.Request) error) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if key == "" {
			return next(w, r)
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(key)) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			return &issuing.Error{Reason: reasonUnauthorized, Detail: "the holdings feed needs its key: Authorization: Bearer <key>"}
		}
		return next(w, r)
	}
}

// requireCaller identifies the request's caller with authenticate and
// passes its id on; a request it cannot identify is refused with 401
// unauthorized before its body is read. A nil authenticate lets every
// request through as the anonymous caller "".
func requireCaller(authenticate func(*http.Request) (string, error), next func(w http.ResponseWriter, r *http.Request, caller string) error) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if authenticate == nil {
			return next(w, r, "")
		}
		caller, err := authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="productsvc"`)
			return &issuing.Error{Reason: reasonUnauthorized, Detail: err.Error()}
		}
		return next(w, r, caller)
	}
}

func created(replayed bool) int {
	if replayed {
		return http.StatusOK
	}
	return http.StatusCreated
}

// decode reads one JSON object strictly: bounded, no unknown members, and
// with encoding/json/v2's semantics (github.com/go-json-experiment/json),
// so that every reader of the body sees the same request: a member named
// twice or in another case, invalid UTF-8 and anything after the value are
// errors (encoding/json lets the last duplicate win and matches names
// case-insensitively).
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return &issuing.Error{Reason: issuing.ReasonInvalidRequest, Detail: "Content-Type must be application/json"}
		}
	}
	err := jsonv2.UnmarshalRead(http.MaxBytesReader(w, r.Body, MaxBodyBytes), v, jsonv2.RejectUnknownMembers(true))
	if tooLarge := new(http.MaxBytesError); errors.As(err, &tooLarge) {
		return &issuing.Error{Reason: reasonPayloadTooLarge, Detail: fmt.Sprintf("the body is over %d bytes", MaxBodyBytes)}
	}
	if err != nil {
		return &issuing.Error{Reason: issuing.ReasonInvalidRequest,
			Detail: "the body must be one JSON object of known members, each once, in UTF-8: " + err.Error()}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
