package main

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/arbiter-bank/arbiter/internal/metrics"
	"github.com/arbiter-bank/arbiter/web/connlimit"
)

// maxAutoConnections bounds the cap derived from the open-file limit.
const maxAutoConnections = 4096

// autoMaxConnections is the default cap: three quarters of the open-file
// limit, so the quarter left covers Redis's pool, the listeners, the
// files read at start and the reconciler's feeds; at most
// maxAutoConnections, at least 16. nofile 0 means the limit is unknown.
func autoMaxConnections(nofile uint64) int {
	if nofile == 0 {
		return 1024
	}
	return int(max(16, min(maxAutoConnections, nofile*3/4)))
}

// limitConnections caps srv's open client connections (connlimit): at
// the cap, idle and silent connections are closed to make room, so checks
// keep flowing however many idle connections clients leave open.
func limitConnections(srv *http.Server, cfg config, local func() time.Time, metrics *metrics.Set, log *slog.Logger) {
	max := cfg.MaxConnections
	if max == 0 {
		max = autoMaxConnections(openFileLimit())
	}
	l := &connlimit.Limiter{Max: max, Now: local, OnClose: metrics.ConnectionClosed}
	srv.ConnState = l.ConnState
	metrics.ObserveConnections(l.Open, max)
	log.Info("client connections capped", "max", max, "from_open_file_limit", cfg.MaxConnections == 0)
}
