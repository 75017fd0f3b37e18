#!/usr/bin/env bash
# deploy/bench/run.sh regenerates BENCHMARKS.md: every figure in it comes
# from this one run, on this machine, against one redis-server and one
# arbiter (production mode) that the script starts on loopback ports.
#
#   deploy/bench/run.sh                 # writes BENCHMARKS.md at the repo root (~8 minutes on 2 cores)
#   STEP=5s OUT=/tmp/b.md deploy/bench/run.sh
#
# Needs: go, redis-server, redis-cli, redis-benchmark (Debian: redis-server,
# redis-tools), jq, openssl, curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
OUT=${OUT:-$ROOT/BENCHMARKS.md}
STEP=${STEP:-8s}            # duration of each HTTP load step
SCALE_MAX=${SCALE_MAX:-1000000}

for tool in go redis-server redis-cli redis-benchmark jq openssl curl; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (apt-get install redis-server redis-tools jq openssl curl)" >&2; exit 1; }
done

W=$(mktemp -d /tmp/arbiter-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
log() { echo "== $*" >&2; }

free_port() { # a loopback port nothing listens on
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  echo "run.sh: no free port" >&2; exit 1
}

log "build"
go build -o "$W/arbiter" ./cmd/arbiter
go build -o "$W/arbiter-load" ./cmd/arbiter-load
LOAD="$W/arbiter-load"

RP=$(free_port)
redis-server --bind 127.0.0.1 --port "$RP" --save '' --appendonly no --dir "$W" --logfile "$W/redis.log" &
PIDS+=($!)
RURL="redis://127.0.0.1:$RP"
for _ in $(seq 100); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done
R() { redis-cli -p "$RP" "$@"; }

openssl genpkey -algorithm ed25519 -out "$W/signing.pem" 2>/dev/null
KC=bench-checker-key-00001 KCARD=bench-card-key-0000001 KLOAN=bench-loan-key-0000001
cat >"$W/clients.yaml" <<EOF
clients:
  - {id: branch-portal, key: $KC, roles: [checker]}
  - {id: card-service, key: $KCARD, roles: [checker, redeemer]}
  - {id: loan-service, key: $KLOAN, roles: [checker, redeemer]}
EOF
AP=$(free_port)
BASE="http://127.0.0.1:$AP"
# Default log level (info): one JSON access-log line per request, as in production.
ARBITER_REDIS_URL=$RURL ARBITER_CLIENTS=$W/clients.yaml ARBITER_SIGNING_KEY=$W/signing.pem \
  "$W/arbiter" -addr "127.0.0.1:$AP" >"$W/arbiter.out" 2>"$W/arbiter.log" &
APID=$!
PIDS+=($APID)
for _ in $(seq 100); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$BASE/readyz" >/dev/null || { cat "$W/arbiter.log" >&2; exit 1; }

KEYS=(-checker-key "$KC" -card-key "$KCARD" -loan-key "$KLOAN")
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
HOST="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3), $(redis-server --version | cut -d' ' -f3 | tr -d 'v=')"
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

# step NAME SCENARIO ARGS... : one open-model step, JSON in $W/NAME.json
step() {
  local name=$1; shift
  local sc=$1; shift
  "$LOAD" "$sc" -base-url "$BASE" -redis-url "$RURL" "${KEYS[@]}" -duration "$STEP" -quiet -allow-failures \
    -json "$W/$name.json" "$@" >"$W/$name.txt" 2>&1 || true
  [ -s "$W/$name.json" ] || { cat "$W/$name.txt" >&2; echo "run.sh: step $name produced no report" >&2; exit 1; }
}
# ok NAME: the step kept up (no drops, no failures, >= 97% of the offered rate)
ok() { jq -e '.dropped_iterations == 0 and .failed_requests == 0 and .achieved_rate_per_s >= 0.97 * .offered_rate_per_s' "$W/$1.json" >/dev/null; }
p99() { jq -r --arg e "$2" '.endpoints[$e].p99_ms // 0' "$W/$1.json"; }

# sweep PREFIX ENDPOINT "RATES" ARGS...: rising rates until one cannot keep
# up; the knee is the last rate that kept up with p99 <= max(10 ms, 3x the
# first step's p99). Prints the knee's step name.
sweep() {
  local prefix=$1 ep=$2 rates=$3; shift 3
  local knee="" base_p99="" r
  for r in $rates; do
    log "$prefix at $r/s"
    step "$prefix-$r" "$@" -rate "$r"
    local p; p=$(p99 "$prefix-$r" "$ep")
    [ -n "$base_p99" ] || base_p99=$p
    echo "$r" >>"$W/$prefix.rates"
    if ok "$prefix-$r" && awk -v p="$p" -v b="$base_p99" 'BEGIN { lim = 3*b; if (lim < 10) lim = 10; exit !(p <= lim) }'; then
      knee="$prefix-$r"
    else
      break
    fi
  done
  echo "${knee:-$prefix-$(head -1 "$W/$prefix.rates")}"
}

# 1. The ceiling: redis-benchmark running arbiter's check script itself,
# 50 clients, no pipelining. The exact EVALSHA (SHA, keys, ARGV) is captured
# with MONITOR from one real check, so it follows the store as it changes;
# the customer id becomes __rand_int__, so every call is on fresh keys.
log "ceiling: redis-benchmark EVALSHA check script"
R MONITOR >"$W/monitor.txt" 2>/dev/null &
MPID=$!
PIDS+=($MPID)
sleep 0.3
curl -fs -o /dev/null -X POST "$BASE/v1/checks" -H "Authorization: Bearer $KCARD" -H 'Content-Type: application/json' \
  -d '{"customer_id":"ceilingprobe","product":"credit_card"}'
sleep 0.3
kill "$MPID" 2>/dev/null || true
PROBE=$(grep -m1 -i '"evalsha"' "$W/monitor.txt" | sed -e 's/^[^"]*//' -e 's/ceilingprobe/b__rand_int__/g')
[ -n "$PROBE" ] || { echo "run.sh: no EVALSHA seen for a check" >&2; exit 1; }
eval "CEIL_ARGS=($PROBE)"   # MONITOR quotes every argument
SHA=${CEIL_ARGS[1]}
CEIL_N=${CEIL_N:-200000}
redis-benchmark -h 127.0.0.1 -p "$RP" -c 50 -n "$CEIL_N" -r 1000000000 --csv "${CEIL_ARGS[@]}" >"$W/ceiling.csv"
CEIL_RPS=$(tail -1 "$W/ceiling.csv" | tr -d '"' | cut -d, -f2)
CEIL_P99=$(tail -1 "$W/ceiling.csv" | tr -d '"' | cut -d, -f7)
R FLUSHALL >/dev/null

# 2. arbiter over HTTP: checks only, then check + redeem, rising rates.
KNEE_C=$(sweep kc check "500 1000 1500 2000 2500 3000 4000 5000 6000 8000" checks -redeem=false)
KNEE_CR=$(sweep kcr check "250 500 750 1000 1250 1500 2000 2500 3000 4000" checks)
# 3. The framework baseline: the same binary, stack and middleware, no Redis.
PING_PATH=/healthz
curl -fs -o /dev/null "$BASE/v1/ping" 2>/dev/null && PING_PATH=/v1/ping
KNEE_P=$(sweep kp ping "1000 2000 4000 6000 8000 10000 12000 15000" ping -path "$PING_PATH")
R FLUSHALL >/dev/null

# 4. The redsync peer against arbiter's store, in process, same Redis.
log "storebench: arbiter store vs redsync peer"
"$LOAD" storebench -redis-url "$RURL" -duration 5s -rounds 2 -concurrency 50 -json "$W/storebench.json" 2>"$W/storebench.txt"
R FLUSHALL >/dev/null
# The same with a simulated network round trip between the designs and
# Redis (every write waits RTT): where round trips, not Redis CPU, decide.
RTT=${RTT:-1ms}
log "storebench with a $RTT round trip"
"$LOAD" storebench -redis-url "$RURL" -duration 5s -rounds 2 -concurrency 16 -rtt "$RTT" -json "$W/storebench-rtt.json" 2>"$W/storebench-rtt.txt"
R FLUSHALL >/dev/null

# 6. How cost grows: keys in Redis, then share of refused checks, at a
# fixed offered rate (80% of the check+redeem knee).
SCALE_RATE=$(jq -r '.offered_rate_per_s * 0.8 | floor' "$W/$KNEE_CR.json")
loaded=0
SCALES=""
for n in 1000 10000 100000 1000000; do
  [ "$n" -le "$SCALE_MAX" ] || break
  log "preload to $n customers"
  "$LOAD" preload -redis-url "$RURL" -customers "$n" -from "$loaded" -concurrency 32 2>>"$W/preload.txt"
  loaded=$n
  SCALES="$SCALES $n"
  step "scale-$n" checks -rate "$SCALE_RATE"
done
for f in 0 0.5 0.9; do
  log "contention: $f refused"
  step "refused-$f" checks -rate "$SCALE_RATE" -refused "$f" -customers 1000
done

# The invariant under a racing load, for the record.
log "contention scenario"
step contention contention -rate 300 -customers 20

kill "$APID" 2>/dev/null || true

# Tracing on and off, from Go benchmarks of its own (their own redis-servers).
log "tracing cost"
deploy/bench/tracing.sh >"$W/tracing.md"

# ---- BENCHMARKS.md ----
f2() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }
f0() { awk -v x="$1" 'BEGIN { printf "%.0f", x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a/b; else print "n/a" }'; }
j() { jq -r "$2" "$W/$1.json"; }

C_RATE=$(j "$KNEE_C" '.endpoints.check.rate_per_s'); C_P99=$(p99 "$KNEE_C" check)
CR_RATE=$(j "$KNEE_CR" '.achieved_rate_per_s'); CR_P99C=$(p99 "$KNEE_CR" check); CR_P99R=$(p99 "$KNEE_CR" redeem)
P_RATE=$(j "$KNEE_P" '.endpoints.ping.rate_per_s'); P_P99=$(p99 "$KNEE_P" ping)
sb() { jq -r --arg d "$1" --arg o "$2" "[.[] | select(.design == \$d and .op == \$o) | .$3] | add / length" "$W/storebench.json"; }
A_C=$(sb arbiter check ops_per_s); S_C=$(sb redsync check ops_per_s)
A_CR=$(sb arbiter check+redeem ops_per_s); S_CR=$(sb redsync check+redeem ops_per_s)
sbr() { jq -r --arg d "$1" --arg o "$2" "[.[] | select(.design == \$d and .op == \$o) | .$3] | add / length" "$W/storebench-rtt.json"; }
RA_C=$(sbr arbiter check ops_per_s); RS_C=$(sbr redsync check ops_per_s)
RA_CR=$(sbr arbiter check+redeem ops_per_s); RS_CR=$(sbr redsync check+redeem ops_per_s)
# p99 at 5,000 checks/s, if that step ran
P99_5K="not reached (the sweep stopped below 5,000/s)"
if [ -f "$W/kc-5000.json" ]; then
  P99_5K="$(p99 kc-5000 check) ms (achieved $(f0 "$(j kc-5000 '.achieved_rate_per_s')")/s, $(j kc-5000 '.dropped_iterations') dropped)"
fi

sweep_table() { # PREFIX ENDPOINT
  echo "| offered/s | achieved/s | p50 ms | p90 ms | p99 ms | p99.9 ms | dropped | failed |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
  for r in $(cat "$W/$1.rates"); do
    jq -r --arg e "$2" '"| \(.offered_rate_per_s) | \(.achieved_rate_per_s | floor) | \(.endpoints[$e].p50_ms) | \(.endpoints[$e].p90_ms) | \(.endpoints[$e].p99_ms) | \(.endpoints[$e].p99_9_ms) | \(.dropped_iterations) | \(.failed_requests) |"' "$W/$1-$r.json"
  done
}

{
cat <<EOF
# arbiter benchmarks

Generated by \`deploy/bench/run.sh\` on **$DATE**; every figure below comes from that one run.
Machine: $HOST; load average at start $LOADAVG. This machine is **shared and noisy**: other
engineers ran builds and tests on the same 2 cores during the run, and the load generator,
arbiter and redis-server share those 2 cores too. Absolute numbers are therefore low and
jittery; **the ratios, measured minutes apart in the same run, are the figures that matter**.

Command: \`deploy/bench/run.sh\` (STEP=$STEP per load step). arbiter ran in production mode
(real redis-server $RURL, clients file, signing key, default log level: one JSON access-log
line per request). The HTTP load is \`arbiter-load\` (open model: constant arrival rate,
latency from send to last byte, HdrHistogram). A step "keeps up" when nothing was dropped
or failed and it achieved >= 97% of the offered rate; the **knee** is the highest rate that
kept up with check p99 <= max(10 ms, 3x the p99 of the lowest step).

## Summary

| figure | measured | target | ratio |
|---|---:|---|---:|
| 1. ceiling: redis-benchmark EVALSHA of the check script, 50 clients | $(f0 "$CEIL_RPS") calls/s (p99 $CEIL_P99 ms) | | 1.00 |
| 2a. arbiter checks/s over HTTP at the knee | $(f0 "$C_RATE")/s, p99 $C_P99 ms | >= 0.35x ceiling | $(ratio "$C_RATE" "$CEIL_RPS") x ceiling |
| 2b. arbiter check+redeem/s over HTTP at the knee | $(f0 "$CR_RATE")/s, p99 check $CR_P99C ms, redeem $CR_P99R ms | | |
| 3. framework baseline: GET $PING_PATH, same binary | $(f0 "$P_RATE")/s, p99 $P_P99 ms | | arbiter checks = $(ratio "$C_RATE" "$P_RATE") x baseline |
| 4a. redsync peer, check (in process, 50 workers) | arbiter $(f0 "$A_C")/s vs redsync $(f0 "$S_C")/s | >= 3x redsync | $(ratio "$A_C" "$S_C") x |
| 4b. redsync peer, check+redeem | arbiter $(f0 "$A_CR")/s vs redsync $(f0 "$S_CR")/s | >= 3x redsync | $(ratio "$A_CR" "$S_CR") x |
| 4c. redsync peer, check, $RTT network round trip (16 workers) | arbiter $(f0 "$RA_C")/s vs redsync $(f0 "$RS_C")/s | >= 3x redsync | $(ratio "$RA_C" "$RS_C") x |
| 4d. redsync peer, check+redeem, $RTT network round trip | arbiter $(f0 "$RA_CR")/s vs redsync $(f0 "$RS_CR")/s | >= 3x redsync | $(ratio "$RA_CR" "$RS_CR") x |
| 5a. Redis commands sent per check (knee run, commandstats) | $(f2 "$(j "$KNEE_C" '.redis.client_commands_per_request')") ($(f2 "$(j "$KNEE_C" '.redis.script_calls_per_request')") EVALSHA, $(j "$KNEE_C" '.redis.eval_fallbacks') EVAL fallbacks) | exactly 1 | |
| 5b. Redis commands sent per check+redeem request | $(f2 "$(j "$KNEE_CR" '.redis.client_commands_per_request')") ($(f2 "$(j "$KNEE_CR" '.redis.script_calls_per_request')") EVALSHA) | exactly 1 | |
| p99 at 5,000 checks/s | $P99_5K | <= 10 ms | |

EOF
echo "## 1. Ceiling: redis-benchmark on arbiter's own check script"
echo
echo "\`redis-benchmark -c 50 -n $CEIL_N -r 1000000000 --csv ${CEIL_ARGS[*]}\`"
echo
echo "The EVALSHA is the one arbiter sent for a real check (captured with MONITOR), the customer id replaced by"
echo "\`__rand_int__\`. redis-benchmark draws each occurrence independently, so every call places a hold on fresh"
echo "keys: the full \"held\" path of the script, the same path the HTTP checks below take."
echo
echo '```'
cat "$W/ceiling.csv"
echo '```'
echo
echo "## 2. arbiter over HTTP"
echo
echo "### Checks only (POST /v1/checks, a new customer each, 201)"
echo
sweep_table kc check
echo
echo "Knee: **$(j "$KNEE_C" '.offered_rate_per_s')/s**."
echo
echo "### Check + redeem (POST /v1/checks then POST /v1/redemptions with the token; rates are iterations/s, 2 requests each)"
echo
sweep_table kcr check
echo
echo "Redeem latency at the knee: p50 $(j "$KNEE_CR" '.endpoints.redeem.p50_ms') ms, p99 $CR_P99R ms. Knee: **$(j "$KNEE_CR" '.offered_rate_per_s') iterations/s**."
echo
echo "## 3. Framework baseline: GET $PING_PATH (same binary and middleware chain, no Redis, no auth)"
echo
sweep_table kp ping
echo
echo "## 4. The redsync peer design"
echo
echo "\`cmd/arbiter-load/internal/peer\`: a Redlock mutex per customer (go-redsync/redsync/v4, 2 ms retry delay),"
echo "then one pipelined read (hold + grants), decide in Go, one MULTI/EXEC write, unlock. It keeps no audit"
echo "trail or history, so it does less work than arbiter. Both designs run in process (\`arbiter-load storebench\`),"
echo "closed loop, 50 workers, 5 s per measurement, alternating designs for 2 rounds, fresh customers (no lock contention)."
echo "arbiter is called through \`validation.Service\`, exactly as the HTTP handlers call it."
echo
echo "| round | design | op | ops/s | p50 ms | p99 ms | round trips/op | commands sent/op | errors |"
echo "|---:|---|---|---:|---:|---:|---:|---:|---:|"
jq -r '.[] | "| \(.round) | \(.design) | \(.op) | \(.ops_per_s | floor) | \(.p50_ms) | \(.p99_ms) | \(.round_trips_per_op * 100 | round / 100) | \(.commands_sent_per_op * 100 | round / 100) | \(.errors) |"' "$W/storebench.json"
echo
echo "### With a $RTT network round trip"
echo
echo "The same with 16 workers (a service instance's connection pool), every write from either design to Redis"
echo "delayed by $RTT (\`storebench -rtt $RTT\`) as a network between the service and Redis would: the regime"
echo "where round trips, not Redis CPU, decide."
echo
echo "| round | design | op | ops/s | p50 ms | p99 ms | round trips/op | commands sent/op | errors |"
echo "|---:|---|---|---:|---:|---:|---:|---:|---:|"
jq -r '.[] | "| \(.round) | \(.design) | \(.op) | \(.ops_per_s | floor) | \(.p50_ms) | \(.p99_ms) | \(.round_trips_per_op * 100 | round / 100) | \(.commands_sent_per_op * 100 | round / 100) | \(.errors) |"' "$W/storebench-rtt.json"
echo
echo "## 5. Redis commands per request (INFO commandstats delta / requests served, i.e. answered below 500)"
echo
echo "Redis 7 also counts the commands a script calls, so they are shown apart: arbiter sends only EVALSHA (and"
echo "PING for /readyz, HELLO/CLIENT when a connection opens); everything else ran inside the scripts."
echo
echo "| run | requests | sent/request | EVALSHA/request | EVAL fallbacks | in-script commands/request | commands delta |"
echo "|---|---:|---:|---:|---:|---:|---|"
for s in "$KNEE_C" "$KNEE_CR" refused-0.9 contention; do
  jq -r --arg s "$s" '"| \($s) | \(.redis.requests) | \(.redis.client_commands_per_request * 1000 | round / 1000) | \(.redis.script_calls_per_request * 1000 | round / 1000) | \(.redis.eval_fallbacks) | \(.redis.in_script_commands_per_request * 10 | round / 10) | \(.redis.commands | to_entries | sort_by(-.value) | map("\(.key) \(.value)") | join(", ")) |"' "$W/$s.json"
done
echo
echo "## 6. How cost grows"
echo
echo "Check + redeem at a fixed $SCALE_RATE iterations/s (80% of the knee), $STEP per step."
echo
echo "### Customers already in Redis (preloaded through arbiter's import script: the service's own data shape)"
echo
echo "| customers | keys in Redis | used memory | achieved/s | check p50 ms | check p99 ms | redeem p99 ms | dropped |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in $SCALES; do
  jq -r --arg n "$n" '"| \($n) | \(.redis.keys) | \(.redis.used_memory_bytes / 1048576 | floor) MiB | \(.achieved_rate_per_s | floor) | \(.endpoints.check.p50_ms) | \(.endpoints.check.p99_ms) | \(.endpoints.redeem.p99_ms) | \(.dropped_iterations) |"' "$W/scale-$n.json"
done
echo
echo "### Share of checks refused (409 conflicting_product on customers holding a credit card)"
echo
echo "| refused | checks/s | 201 | 409 | check p50 ms | check p99 ms | dropped | failed |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
for f in 0 0.5 0.9; do
  jq -r --arg f "$f" '"| \($f | tonumber * 100)% | \(.endpoints.check.rate_per_s | floor) | \(.endpoints.check.statuses["201"] // 0) | \(.endpoints.check.statuses["409"] // 0) | \(.endpoints.check.p50_ms) | \(.endpoints.check.p99_ms) | \(.dropped_iterations) | \(.failed_requests) |"' "$W/refused-$f.json"
done
echo
echo "## Invariant under contention"
echo
echo "\`arbiter-load contention -rate 300 -customers 20\` ($STEP): $(j contention '.iterations') iterations racing card and loan"
echo "checks and redemptions, $(j contention '.counters.grants') grants, $(j contention '.counters.customers_read') customers read back,"
echo "**$(j contention '.violations | length') violations**."
echo
echo '```'
cat "$W/contention.txt"
echo '```'
echo
cat "$W/tracing.md"
} >"$OUT.tmp"
# Findings are kept by hand in deploy/bench/findings.md and appended as is.
[ -f deploy/bench/findings.md ] && { echo; cat deploy/bench/findings.md; } >>"$OUT.tmp"
# So is the reconciliation measurement (TestReconcileScale), which needs no HTTP load.
[ -f deploy/bench/reconcile.md ] && cat deploy/bench/reconcile.md >>"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
log "wrote $OUT"
