package feed_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/validation/reconcile/feed"
)

func TestPage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string // error substring; "" for success
	}{
		{"a page", 200, `{"holdings":[{"customer_id":"C-1","product":"credit_card","check_id":"","issued_at":"2019-03-01T00:00:00Z","fence":1}],"next":"C-1"}`, ""},
		{"the last page", 200, `{"holdings":[],"next":""}`, ""},
		{"not JSON", 200, `<html>maintenance</html>`, "garbage"},
		{"no holdings member", 200, `{"items":[]}`, `no "holdings" array`},
		{"a bad date", 200, `{"holdings":[{"customer_id":"C-1","product":"credit_card","issued_at":"yesterday"}]}`, "not RFC 3339"},
		{"a server error", 503, `{"reason":"unavailable"}`, "status 503"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if got := r.Header.Get("Authorization"); got != "Bearer k" {
					t.Errorf("Authorization = %q", got)
				}
				if got := r.URL.Query().Get("after") + "|" + r.URL.Query().Get("limit"); got != "C-0|2" {
					t.Errorf("after|limit = %q", got)
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c := &feed.Client{URL: srv.URL + "/v1/holdings", Key: "k"}
			p, err := c.Page(context.Background(), "C-0", 2)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Page: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Page error = %v, want %q", err, tc.want)
			case tc.name == "a page":
				if len(p.Holdings) != 1 || p.Next != "C-1" || p.Holdings[0].CheckID != "" ||
					!p.Holdings[0].IssuedAt.Equal(time.Date(2019, 3, 1, 0, 0, 0, 0, time.UTC)) {
					t.Errorf("page = %+v", p)
				}
			}
		})
	}
}

// TestPageRefusesRedirects: a redirect is never followed, to another host
// or from https to http: the key would go where the URL does not say, and
// the data from there would be trusted. The error names status and Location.
func TestPageRefusesRedirects(t *testing.T) {
	reached := make(chan string, 4)
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached <- r.Header.Get("Authorization")
		w.Write([]byte(`{"holdings":[],"next":""}`))
	}))
	defer elsewhere.Close()
	redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/v1/holdings?"+r.URL.RawQuery, http.StatusFound)
	})
	plain := httptest.NewServer(redirect)
	defer plain.Close()
	tls := httptest.NewTLSServer(redirect)
	defer tls.Close()
	for _, tc := range []struct {
		name string
		c    *feed.Client
	}{
		{"to another host", &feed.Client{URL: plain.URL + "/v1/holdings", Key: "k"}},
		{"from https to http", &feed.Client{URL: tls.URL + "/v1/holdings", Key: "k", HTTP: tls.Client()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.Page(context.Background(), "", 2)
			if err == nil || !strings.Contains(err.Error(), "302") || !strings.Contains(err.Error(), elsewhere.URL) {
				t.Errorf("Page error = %v, want the 302 and its Location refused", err)
			}
			select {
			case auth := <-reached:
				t.Errorf("the redirect was followed (Authorization %q reached the other server)", auth)
			default:
			}
		})
	}
}

// TestPageBoundsItsSize: a page is decoded as it streams in and fails once
// it holds more holdings than asked or more bytes than a page of them may
// take, without first reading (and allocating) the whole of it.
func TestPageBoundsItsSize(t *testing.T) {
	const pageBytes = 64 << 20
	holding := []byte(`{"customer_id":"C-1","product":"credit_card","issued_at":"2019-03-01T00:00:00Z"},`)
	filler := bytes.Repeat([]byte("x"), 64<<10)
	for _, tc := range []struct {
		name       string
		head, fill []byte // the page: head, then fill repeated to pageBytes
		want       string
	}{
		{"more holdings than asked", []byte(`{"next":"","holdings":[`), holding, "more than the 2 holdings asked"},
		{"a holding of 64 MiB", []byte(`{"next":"","holdings":[{"customer_id":"C-1","notes":"`), filler, "bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write(tc.head)
				for n := len(tc.head); n < pageBytes; n += len(tc.fill) {
					if _, err := w.Write(tc.fill); err != nil {
						return // the client hung up
					}
				}
			}))
			defer srv.Close()
			c := &feed.Client{URL: srv.URL}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := c.Page(context.Background(), "", 2)
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Page error = %v, want %q", err, tc.want)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > pageBytes/16 {
				t.Errorf("Page allocated %d MiB for a %d MiB page, want it stopped long before", got>>20, pageBytes>>20)
			}
		})
	}
}
