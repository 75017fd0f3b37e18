package load

import (
	"bufio"
	"context"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// RedisDelta is what Redis executed during a run, from INFO commandstats
// taken before and after. Redis 7 counts the commands a Lua script calls
// in commandstats too, so the delta is split: ClientCommands are the ones a
// client sends (EVALSHA, EVAL, PING, connection set-up), InScript the ones
// arbiter's scripts call (arbiter itself never sends HGET, HSET, ...).
type RedisDelta struct {
	Commands       map[string]int64 `json:"commands"`
	ScriptCalls    int64            `json:"script_calls"`    // EVALSHA + EVAL (+ _RO variants, FCALL)
	EvalFallbacks  int64            `json:"eval_fallbacks"`  // EVAL calls: NOSCRIPT fallbacks, 0 in steady state
	ClientCommands int64            `json:"client_commands"` // script calls + PING + connection set-up
	InScript       int64            `json:"in_script_commands"`
	// Requests is the number of API requests served (status below 500) the
	// delta is divided by, and
	// the per-request figures are the counts above divided by it.
	Requests                int64   `json:"requests"`
	ClientCommandsPerReq    float64 `json:"client_commands_per_request"`
	ScriptCallsPerRequest   float64 `json:"script_calls_per_request"`
	InScriptCommandsPerReq  float64 `json:"in_script_commands_per_request"`
	UsedMemoryBytesAfterRun int64   `json:"used_memory_bytes"`
	KeysAfterRun            int64   `json:"keys"`
}

// CommandStats returns the calls of every command from INFO commandstats
// (keys like "evalsha", "client|setinfo").
func CommandStats(ctx context.Context, rdb redis.UniversalClient) (map[string]int64, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[name] = n
			}
		}
	}
	return out, sc.Err()
}

// Delta turns two CommandStats snapshots into a RedisDelta over requests.
// INFO and CONFIG (the measurement's own commands) are left out.
func Delta(before, after map[string]int64, requests int64) RedisDelta {
	d := RedisDelta{Commands: map[string]int64{}, Requests: requests}
	for name, n := range after {
		n -= before[name]
		if n <= 0 || name == "info" || strings.HasPrefix(name, "config") {
			continue
		}
		d.Commands[name] = n
		switch {
		case name == "evalsha" || name == "evalsha_ro" || name == "eval" || name == "eval_ro" || name == "fcall" || name == "fcall_ro":
			d.ScriptCalls += n
			d.ClientCommands += n
			if name == "eval" || name == "eval_ro" {
				d.EvalFallbacks += n
			}
		case name == "ping" || name == "hello" || name == "select" || name == "auth" || strings.HasPrefix(name, "client") || strings.HasPrefix(name, "script"):
			d.ClientCommands += n
		default:
			d.InScript += n
		}
	}
	if requests > 0 {
		d.ClientCommandsPerReq = float64(d.ClientCommands) / float64(requests)
		d.ScriptCallsPerRequest = float64(d.ScriptCalls) / float64(requests)
		d.InScriptCommandsPerReq = float64(d.InScript) / float64(requests)
	}
	return d
}

// Footprint fills the memory and key count after a run.
func (d *RedisDelta) Footprint(ctx context.Context, rdb redis.UniversalClient) {
	if n, err := rdb.DBSize(ctx).Result(); err == nil {
		d.KeysAfterRun = n
	}
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			d.UsedMemoryBytesAfterRun, _ = strconv.ParseInt(v, 10, 64)
		}
	}
}
