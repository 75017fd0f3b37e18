package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Logger gives go-redis's own log lines (a pool that cannot dial, a
// Sentinel that does not answer) to a slog.Logger, so that they come out
// as records of the process's log, at level WARN with component=go-redis,
// instead of plain-text lines amid its JSON. Its Printf is go-redis's
// logging interface.
type Logger struct{ Log *slog.Logger }

// Printf logs the formatted line as one record's message.
func (l Logger) Printf(ctx context.Context, format string, v ...any) {
	l.Log.Log(ctx, slog.LevelWarn, strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "go-redis")
}

// SetLogger makes log go-redis's logger. go-redis has one logger per
// process, so the last call wins.
func SetLogger(log *slog.Logger) { redis.SetLogger(Logger{Log: log}) }
