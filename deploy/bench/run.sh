#!/usr/bin/env bash
# deploy/bench/run.sh regenerates BENCHMARKS.md: every figure in it comes
# from this one run, on this machine, against one redis-server and one
# arbiter (production mode) that the script starts on loopback ports, and
# the charts under docs/bench/ beside it.
#
#   deploy/bench/run.sh                          # BENCHMARKS.md at the repo root (~10 minutes on 2 cores)
#   STEP=2s SCALE_MAX=10000 OUT=/tmp/b/BENCHMARKS.md deploy/bench/run.sh   # a quick check (~3 minutes)
#   KEEP=1 ...                                   # keep the raw JSON, CSV and profiles (the path is printed)
#
# Nothing here lists the store's keys or scripts: the scripts' SHAs and
# commands are discovered with MONITOR and INFO commandstats, a customer's
# keys with SCAN arb:{C}* (the store's documented hash tag), so the run
# follows the store as its scripts and data model change.
#
# Needs: go, redis-server, redis-cli, redis-benchmark (Debian: redis-server,
# redis-tools), jq, openssl, curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
OUT=${OUT:-$ROOT/BENCHMARKS.md}
STEP=${STEP:-5s}               # duration of each load step
SCALE_MAX=${SCALE_MAX:-1000000}
COST_N=${COST_N:-5000}         # measured calls of each operation (cost)
MIN_N=${MIN_N:-200000}         # redis-benchmark calls of the minimal script
CEIL_N=${CEIL_N:-20000}        # redis-benchmark calls of arbiter's check script
SB_DUR=${SB_DUR:-4s}           # storebench: each closed-loop measurement
RTT=${RTT:-1ms}                # storebench: the simulated network round trip
SB_RATES=${SB_RATES:-"500 1000 2000 3000 4000 6000"}  # storebench: the open-model sweep
OUTDIR=$(cd "$(dirname "$OUT")" && pwd)
PLOTS=$OUTDIR/docs/bench       # charts, linked from $OUT as docs/bench/*.svg
mkdir -p "$PLOTS"

for tool in go redis-server redis-cli redis-benchmark jq openssl curl; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (apt-get install redis-server redis-tools jq openssl curl)" >&2; exit 1; }
done

W=$(mktemp -d /tmp/arbiter-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "run.sh: kept $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
log() { echo "== $(date -u +%T) $*" >&2; }
T0=$(date +%s)

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
PP=$(free_port)
BASE="http://127.0.0.1:$AP"
PPROF="http://127.0.0.1:$PP"
# Default log level (info): one JSON access-log line per request, as in production.
ARBITER_REDIS_URL=$RURL ARBITER_CLIENTS=$W/clients.yaml ARBITER_SIGNING_KEY=$W/signing.pem ARBITER_PPROF_ADDR=127.0.0.1:$PP \
  "$W/arbiter" -addr "127.0.0.1:$AP" >"$W/arbiter.out" 2>"$W/arbiter.log" &
APID=$!
PIDS+=($APID)
for _ in $(seq 100); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$BASE/readyz" >/dev/null || { cat "$W/arbiter.log" >&2; exit 1; }

KEYS=(-checker-key "$KC" -card-key "$KCARD" -loan-key "$KLOAN")
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
HOST="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3), redis $(redis-server --version | cut -d' ' -f3 | tr -d 'v=')"
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

# step NAME SCENARIO ARGS... : one open-model step, JSON in $W/NAME.json
step() {
  local name=$1; shift
  local sc=$1; shift
  "$LOAD" "$sc" -base-url "$BASE" -redis-url "$RURL" "${KEYS[@]}" -duration "$STEP" -quiet -allow-failures \
    -json "$W/$name.json" "$@" >"$W/$name.txt" 2>&1 || true
  [ -s "$W/$name.json" ] || { cat "$W/$name.txt" >&2; echo "run.sh: step $name produced no report" >&2; exit 1; }
}
# closed NAME ARGS...: a closed-loop HTTP measurement, JSON in $W/NAME.json
closed() {
  local name=$1; shift
  "$LOAD" closed -base-url "$BASE" "${KEYS[@]}" -duration "$STEP" -allow-failures -json "$W/$name.json" "$@" 2>>"$W/closed.txt"
}
# ok NAME: the step kept up (no drops, no failures, >= 97% of the offered rate)
ok() { jq -e '.dropped_iterations == 0 and .failed_requests == 0 and .achieved_rate_per_s >= 0.97 * .offered_rate_per_s' "$W/$1.json" >/dev/null; }
p99() { jq -r --arg e "$2" '.endpoints[$e].p99_ms // 0' "$W/$1.json"; }
# cmdstat NAME: "calls usec" of one command in INFO commandstats
cmdstat() { R INFO commandstats | tr -d '\r' | awk -F'[:,=]' -v n="cmdstat_$1" '$1 == n { print $3, $5 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a/b; else print "n/a" }'; }

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
# sweep_csv PREFIX ENDPOINT SERIES: the sweep's steps as chart CSV rows
sweep_csv() {
  for r in $(cat "$W/$1.rates"); do
    jq -r --arg e "$2" --arg s "$3" '"\($s),\(.offered_rate_per_s),\(.endpoints[$e].p50_ms // 0),\(.endpoints[$e].p99_ms // 0),\(if .dropped_iterations == 0 and .failed_requests == 0 and .achieved_rate_per_s >= 0.97 * .offered_rate_per_s then 1 else 0 end)"' "$W/$1-$r.json"
  done
}

# 1. The baseline in Redis: a minimal hold script (INCR + SET NX PX, the
# least a hold can be), under redis-benchmark, 64 clients, fresh keys.
log "redis-benchmark: the minimal hold script"
MSHA=$(R SCRIPT LOAD "local fence = redis.call('INCR', KEYS[1])
if redis.call('SET', KEYS[2], fence, 'NX', 'PX', ARGV[1]) then return fence end
return 0")
read -r MC0 MU0 <<<"$(cmdstat evalsha)" || true
MIN_ARGS=(evalsha "$MSHA" 2 "bench:{__rand_int__}:fence" "bench:{__rand_int__}:hold" 300000)
redis-benchmark -h 127.0.0.1 -p "$RP" -c 64 -n "$MIN_N" -r 1000000000 --csv "${MIN_ARGS[@]}" >"$W/minimal.csv"
read -r MC1 MU1 <<<"$(cmdstat evalsha)"
MIN_RPS=$(tail -1 "$W/minimal.csv" | tr -d '"' | awk -F, '{print $(NF-6)}')
MIN_BENCH_USEC=$(awk -v c="$(( MC1 - ${MC0:-0} ))" -v u="$(( MU1 - ${MU0:-0} ))" 'BEGIN { printf "%.2f", u / c }')
R FLUSHALL >/dev/null

# 1b. arbiter's own check script under redis-benchmark: the exact EVALSHA
# (SHA, keys, ARGV) is captured with MONITOR from one real check, the
# customer id made __rand_int__, so every call places a hold on fresh keys.
log "redis-benchmark: arbiter's check script"
# redis-cli itself, not R: $! of a backgrounded shell function is its
# subshell, and killing that left MONITOR attached for the rest of the run,
# which then made Redis format every command it ran (runs before 15:50 UTC
# on 2026-12-02 measured that).
redis-cli -p "$RP" MONITOR >"$W/monitor.txt" 2>/dev/null &
MPID=$!
PIDS+=($MPID)
sleep 0.3
curl -fs -o /dev/null -X POST "$BASE/v1/checks" -H "Authorization: Bearer $KCARD" -H 'Content-Type: application/json' \
  -d '{"customer_id":"ceilingprobe","product":"credit_card"}'
sleep 0.3
kill "$MPID" 2>/dev/null || true
wait "$MPID" 2>/dev/null || true
for _ in $(seq 50); do [ "$(R CLIENT LIST | grep -c "cmd=monitor")" = 0 ] && break; sleep 0.1; done
[ "$(R CLIENT LIST | grep -c "cmd=monitor")" = 0 ] || { echo "run.sh: MONITOR is still attached" >&2; exit 1; }
PROBE=$(grep -m1 -iE '"evalsha"|"fcall"' "$W/monitor.txt" | sed -e 's/^[^"]*//' -e 's/ceilingprobe/b__rand_int__/g')
[ -n "$PROBE" ] || { echo "run.sh: no EVALSHA seen for a check" >&2; exit 1; }
eval "CEIL_ARGS=($PROBE)"   # MONITOR quotes every argument
CEIL_VERB=$(echo "${CEIL_ARGS[0]}" | tr 'A-Z' 'a-z')
read -r CC0 CU0 <<<"$(cmdstat "$CEIL_VERB")" || true
redis-benchmark -h 127.0.0.1 -p "$RP" -c 64 -n "$CEIL_N" -r 1000000000 --csv "${CEIL_ARGS[@]}" >"$W/ceiling.csv"
read -r CC1 CU1 <<<"$(cmdstat "$CEIL_VERB")"
CEIL_RPS=$(tail -1 "$W/ceiling.csv" | tr -d '"' | awk -F, '{print $(NF-6)}')
# The check's Redis µs per call the same way: redis-benchmark's clients
# are C and light, so Redis has a core to itself, unlike in the cost step.
CEIL_BENCH_USEC=$(awk -v c="$(( CC1 - ${CC0:-0} ))" -v u="$(( CU1 - ${CU0:-0} ))" 'BEGIN { printf "%.2f", u / c }')
R_CEIL=$(ratio "$CEIL_BENCH_USEC" "$MIN_BENCH_USEC")
R FLUSHALL >/dev/null

# 2. Cost per operation, each alone: Redis µs per script call, arbiter's CPU per request.
log "cost per operation ($COST_N calls each)"
"$LOAD" cost -base-url "$BASE" -redis-url "$RURL" "${KEYS[@]}" -pid "$APID" -requests "$COST_N" -concurrency 16 \
  -json "$W/cost.json" 2>"$W/cost.txt" || { cat "$W/cost.txt" >&2; exit 1; }
log "bytes per customer"
"$LOAD" footprint -base-url "$BASE" -redis-url "$RURL" "${KEYS[@]}" -json "$W/footprint.json"
R FLUSHALL >/dev/null

# 3. Throughput of 64 clients in a closed loop, with arbiter's CPU profile.
log "closed loop: checks, 64 workers"
closed closed-check -op check -concurrency 64 -pprof-url "$PPROF" -profile "$W/check.pprof"
SETUP=$(jq -r '.ops_per_s * .elapsed_s * 1.5 + 500 | floor' "$W/closed-check.json")  # enough to last the window
log "closed loop: token redemptions of $SETUP holds, 64 workers"
closed closed-redeem -op redeem -setup "$SETUP" -concurrency 64 -pprof-url "$PPROF" -profile "$W/redeem.pprof"
closed closed-ping -op ping -concurrency 64
R FLUSHALL >/dev/null

# 4. arbiter over HTTP, open model: checks only, check + redeem, and the
# framework baseline (authenticated GET /v1/ping), rising rates.
KNEE_C=$(sweep kc check "500 1000 1500 2000 3000 4000 5000 6000 8000" checks -redeem=false)
KNEE_CR=$(sweep kcr check "250 500 750 1000 1500 2000 2500 3000 4000" checks)
KNEE_P=$(sweep kp ping "1000 2000 4000 6000 8000 10000 12000 15000" ping -path /v1/ping)
R FLUSHALL >/dev/null

# 5. The redsync peer against arbiter's store, in process, same Redis:
# closed loop on loopback (50 workers), then with every write delayed by
# RTT (16 workers), then an open-model sweep of both designs' checks.
log "storebench: arbiter store vs redsync peer, loopback"
"$LOAD" storebench -redis-url "$RURL" -duration "$SB_DUR" -rounds 2 -concurrency 50 -json "$W/storebench.json" 2>"$W/storebench.txt"
R FLUSHALL >/dev/null
log "storebench with a $RTT round trip"
"$LOAD" storebench -redis-url "$RURL" -duration "$SB_DUR" -rounds 2 -concurrency 16 -rtt "$RTT" -json "$W/storebench-rtt.json" 2>"$W/storebench-rtt.txt"
R FLUSHALL >/dev/null
log "storebench sweep: $SB_RATES"
"$LOAD" storebench -redis-url "$RURL" -duration "$STEP" -concurrency 50 -rates "$SB_RATES" -json "$W/storebench-sweep.json" 2>"$W/storebench-sweep.txt"
R FLUSHALL >/dev/null

# 6. How cost grows: customers in Redis, then share of refused checks, at a
# fixed offered rate (80% of the check+redeem knee), and the closed-loop
# check throughput at each scale.
SCALE_RATE=$(jq -r '.offered_rate_per_s * 0.8 | floor' "$W/$KNEE_CR.json")
mem() { R INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'; }
loaded=0
SCALES=""
for n in 1000 10000 100000 1000000; do
  [ "$n" -le "$SCALE_MAX" ] || break
  log "preload to $n customers"
  m0=$(mem)
  "$LOAD" preload -redis-url "$RURL" -customers "$n" -from "$loaded" -concurrency 32 2>>"$W/preload.txt"
  loaded_before=$loaded
  loaded=$n
  SCALES="$SCALES $n"
  # used memory, keys, and bytes per customer of this preload alone (the
  # earlier steps' own customers are not in the difference)
  m1=$(mem)
  echo "$m1 $(R DBSIZE) $(( (m1 - m0) / (n - loaded_before) ))" >"$W/mem-$n.txt"
  step "scale-$n" checks -rate "$SCALE_RATE"
  closed "scale-closed-$n" -op check -concurrency 64
done
for f in 0 0.5 0.9; do
  log "refused share: $f"
  step "refused-$f" checks -rate "$SCALE_RATE" -refused "$f" -customers 1000
done

# The invariant under a racing load, for the record.
log "contention scenario"
step contention contention -rate 300 -customers 20

kill "$APID" 2>/dev/null || true
ELAPSED=$(( $(date +%s) - T0 ))

# ---- charts ----
log "charts"
CSVH="series,offered_per_s,p50_ms,p99_ms,kept_up"
{ echo "$CSVH"; sweep_csv kc check "POST /v1/checks"; sweep_csv kp ping "GET /v1/ping (authenticated; no store)"; } >"$W/http.csv"
{ echo "$CSVH"; sweep_csv kcr check "check"; sweep_csv kcr redeem "token redemption"; } >"$W/http-redeem.csv"
{ echo "$CSVH"; jq -r '.[] | "\(.design),\(.offered_per_s),\(.p50_ms),\(.p99_ms),\(if .dropped == 0 and .errors == 0 and .achieved_per_s >= 0.97 * .offered_per_s then 1 else 0 end)"' "$W/storebench-sweep.json"; } >"$W/store.csv"
"$LOAD" plot -in "$W/http.csv" -out "$PLOTS/http-checks.svg" -title "arbiter over HTTP: checks beside the framework baseline" 2>>"$W/plot.txt"
"$LOAD" plot -in "$W/http-redeem.csv" -out "$PLOTS/http-check-redeem.svg" -title "arbiter over HTTP: check + token redemption (iterations/s)" 2>>"$W/plot.txt"
"$LOAD" plot -in "$W/store.csv" -out "$PLOTS/store-checks.svg" -title "store in process: arbiter's script vs the redsync peer (checks)" 2>>"$W/plot.txt"

# Tracing on and off, from Go benchmarks of its own (their own redis-servers).
log "tracing cost"
deploy/bench/tracing.sh >"$W/tracing.md"

# ---- BENCHMARKS.md ----
f0() { awk -v x="$1" 'BEGIN { printf "%.0f", x }'; }
f1() { awk -v x="$1" 'BEGIN { printf "%.1f", x }'; }
f2() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }
# verdict VALUE OP LIMIT: **met** or not met
verdict() { awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN { if (v == "n/a") { print "n/a"; exit } m = (op == "<=") ? (v <= l) : (op == ">=") ? (v >= l) : (v == l); print (m ? "**met**" : "not met") }'; }
j() { jq -r "$2" "$W/$1.json"; }
cost() { jq -r --arg o "$1" ".ops[] | select(.op == \$o) | .$2" "$W/cost.json"; }
sb() { jq -r --arg d "$2" --arg o "$3" "[.[] | select(.design == \$d and .op == \$o) | .ops_per_s] | add / length" "$W/$1.json"; }
fp() { jq -r --arg s "$1" ".[] | select(.scenario == \$s) | .$2" "$W/footprint.json"; }

U_MIN=$(cost minimal usec_per_call)
U_CHECK=$(cost check usec_per_call); U_REF=$(cost refusal usec_per_call)
U_TOK=$(cost redeem_token usec_per_call); U_OTP=$(cost redeem_otp usec_per_call)
C_PING=$(cost ping arbiter_cpu_us_per_request); C_CHECK=$(cost check arbiter_cpu_us_per_request)
C_TOK=$(cost redeem_token arbiter_cpu_us_per_request); C_OTP=$(cost redeem_otp arbiter_cpu_us_per_request)
C_REF=$(cost refusal arbiter_cpu_us_per_request)
R_CHECK=$(ratio "$U_CHECK" "$U_MIN"); R_TOK=$(ratio "$U_TOK" "$U_MIN"); R_REF=$(ratio "$U_REF" "$U_MIN"); R_OTP=$(ratio "$U_OTP" "$U_MIN")
RC_CHECK=$(ratio "$C_CHECK" "$C_PING"); RC_TOK=$(ratio "$C_TOK" "$C_PING")
CL_RATE=$(j closed-check '.ops_per_s'); R_CL=$(ratio "$CL_RATE" "$MIN_RPS")
A_C=$(sb storebench arbiter check); S_C=$(sb storebench redsync check)
A_CR=$(sb storebench arbiter check+redeem); S_CR=$(sb storebench redsync check+redeem)
RA_C=$(sb storebench-rtt arbiter check); RS_C=$(sb storebench-rtt redsync check)
RA_CR=$(sb storebench-rtt arbiter check+redeem); RS_CR=$(sb storebench-rtt redsync check+redeem)
B_G=$(fp granted bytes); B_GF=$(fp granted bytes_without_ttl)
B_N=$(fp no_grant bytes); B_NF=$(fp no_grant bytes_without_ttl)
growth() { # the per-scale figure $1 (memory per customer, check p99, closed checks/s), joined by " → "
  local out="" n v
  for n in $SCALES; do
    case $1 in
      mem) v="$(cut -d' ' -f3 "$W/mem-$n.txt") B" ;;
      p99) v="$(p99 "scale-$n" check) ms" ;;
      rate) v="$(f0 "$(j "scale-closed-$n" '.ops_per_s')")/s" ;;
    esac
    out="${out:+$out → }$v"
  done
  echo "$out"
}
SCALE_NAMES=$(for n in $SCALES; do case $n in 1000) echo -n "1k ";; 10000) echo -n "10k ";; 100000) echo -n "100k ";; 1000000) echo -n "1M ";; esac; done | sed 's/ $//; s/ / → /g')

sweep_table() { # PREFIX ENDPOINT
  echo "| offered/s | achieved/s | p50 ms | p90 ms | p99 ms | p99.9 ms | dropped | failed |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
  for r in $(cat "$W/$1.rates"); do
    jq -r --arg e "$2" '"| \(.offered_rate_per_s) | \(.achieved_rate_per_s | floor) | \(.endpoints[$e].p50_ms) | \(.endpoints[$e].p90_ms) | \(.endpoints[$e].p99_ms) | \(.endpoints[$e].p99_9_ms) | \(.dropped_iterations) | \(.failed_requests) |"' "$W/$1-$r.json"
  done
}
storebench_table() { # FILE
  echo "| round | design | op | ops/s | p50 ms | p99 ms | round trips/op | commands sent/op | errors |"
  echo "|---:|---|---|---:|---:|---:|---:|---:|---:|"
  jq -r '.[] | "| \(.round) | \(.design) | \(.op) | \(.ops_per_s | floor) | \(.p50_ms) | \(.p99_ms) | \(.round_trips_per_op * 100 | round / 100) | \(.commands_sent_per_op * 100 | round / 100) | \(.errors) |"' "$W/$1.json"
}
profile_top() { # PROFILE: the header and the top 10 by flat%
  go tool pprof -top -nodecount=10 "$1" 2>/dev/null | sed -n '/^Duration/,$p'
}

{
cat <<EOF
# arbiter benchmarks

Generated by \`deploy/bench/run.sh\` on **$DATE** in $((ELAPSED / 60)) min $((ELAPSED % 60)) s; every figure below comes from that one run.
Machine: $HOST; load average at start $LOADAVG. This machine is **shared and loaded**: other
engineers' builds and tests may run on the same cores during the run, and the load generator,
arbiter and redis-server share them too. Absolute numbers are therefore low and jittery; **the
ratios, measured minutes apart in the same run, are the figures that matter**.

Command: \`STEP=$STEP SCALE_MAX=$SCALE_MAX COST_N=$COST_N MIN_N=$MIN_N CEIL_N=$CEIL_N SB_DUR=$SB_DUR RTT=$RTT SB_RATES="$SB_RATES" deploy/bench/run.sh\`. arbiter ran in production mode (real
redis-server on loopback, clients file, signing key, default log level: one JSON access-log line per
request). The HTTP load is \`arbiter-load\` (open model: constant arrival rate, latency from send to
last byte, HdrHistogram) except where a closed loop is named.

## Summary

| target | measured | ratio | verdict |
|---|---|---:|---|
| Redis µs per check (hold placed) ≤ 2.5× the minimal hold script | $(f1 "$U_CHECK") µs vs $(f1 "$U_MIN") µs | $R_CHECK× | $(verdict "$R_CHECK" "<=" 2.5) |
| the same, both under redis-benchmark (64 clients, fresh customers, no arbiter on the cores) | $(f1 "$CEIL_BENCH_USEC") µs vs $(f1 "$MIN_BENCH_USEC") µs | $R_CEIL× | $(verdict "$R_CEIL" "<=" 2.5) |
| Redis µs per token redemption ≤ 2.5× the minimal script | $(f1 "$U_TOK") µs vs $(f1 "$U_MIN") µs | $R_TOK× | $(verdict "$R_TOK" "<=" 2.5) |
| Redis µs per refusal ≤ 1.5× the minimal script | $(f1 "$U_REF") µs vs $(f1 "$U_MIN") µs | $R_REF× | $(verdict "$R_REF" "<=" 1.5) |
| arbiter CPU per check ≤ 3× per authenticated \`GET /v1/ping\` | $(f0 "$C_CHECK") µs vs $(f0 "$C_PING") µs | $RC_CHECK× | $(verdict "$RC_CHECK" "<=" 3) |
| arbiter CPU per token redemption ≤ 2× per ping | $(f0 "$C_TOK") µs vs $(f0 "$C_PING") µs | $RC_TOK× | $(verdict "$RC_TOK" "<=" 2) |
| HTTP checks/s, closed loop, 64 workers ≥ 0.2× redis-benchmark of the minimal script | $(f0 "$CL_RATE")/s vs $(f0 "$MIN_RPS")/s | $R_CL× | $(verdict "$R_CL" ">=" 0.2) |
| storebench checks ≥ 2× redsync, loopback, 50 workers | $(f0 "$A_C")/s vs $(f0 "$S_C")/s | $(ratio "$A_C" "$S_C")× | $(verdict "$(ratio "$A_C" "$S_C")" ">=" 2) |
| storebench check+redeem ≥ 2× redsync, loopback, 50 workers | $(f0 "$A_CR")/s vs $(f0 "$S_CR")/s | $(ratio "$A_CR" "$S_CR")× | $(verdict "$(ratio "$A_CR" "$S_CR")" ">=" 2) |
| storebench checks ≥ 4× redsync, $RTT round trip, 16 workers | $(f0 "$RA_C")/s vs $(f0 "$RS_C")/s | $(ratio "$RA_C" "$RS_C")× | $(verdict "$(ratio "$RA_C" "$RS_C")" ">=" 4) |
| storebench check+redeem ≥ 4× redsync, $RTT round trip, 16 workers | $(f0 "$RA_CR")/s vs $(f0 "$RS_CR")/s | $(ratio "$RA_CR" "$RS_CR")× | $(verdict "$(ratio "$RA_CR" "$RS_CR")" ">=" 4) |
| bytes per granted customer (check + redemption, steady state) ≤ 1 KB | $B_G B ($B_GF B of it without a TTL) | | $(verdict "$B_G" "<=" 1024) |
| bytes left of a customer with no grant once every TTL has run out: 0 | $B_NF B ($B_N B right after the check) | | $(verdict "$B_NF" "==" 0) |
| Redis commands sent per request: exactly 1 | $(f2 "$(j "$KNEE_C" '.redis.client_commands_per_request')") per check, $(f2 "$(j "$KNEE_CR" '.redis.client_commands_per_request')") per check+redeem request ($(j "$KNEE_C" '.redis.eval_fallbacks') EVAL fallbacks) | | $(verdict "$(f0 "$(j "$KNEE_C" '.redis.script_calls_per_request')")" "==" 1) |

Not targets, for the record: OTP redemption costs $(f1 "$U_OTP") µs in Redis ($R_OTP× the minimal script) and
$(f0 "$C_OTP") µs of arbiter's CPU; a refusal $(f0 "$C_REF") µs of arbiter's CPU. From $SCALE_NAMES customers in
Redis: used memory per customer $(growth mem); check p99 at $SCALE_RATE it/s $(growth p99); closed-loop
checks $(growth rate).

![arbiter over HTTP: checks beside the framework baseline](docs/bench/http-checks.svg)

![store in process: arbiter vs the redsync peer](docs/bench/store-checks.svg)

## 1. Cost per operation

\`arbiter-load cost\`: each operation alone, $COST_N calls at 16 concurrent clients, with nothing else
running; what it needs first (the holds to redeem, the grants a refusal runs into) is set up outside
the measured window. Redis time is the \`INFO commandstats\` delta of the script calls (their
\`usec\` includes the commands the script calls), per call: the median over batches of 250 calls
(Redis times a script by the wall clock, so a noisy neighbour's burst inflates one batch, not the
figure), the plain mean beside it; arbiter's CPU is the
\`/proc/<pid>/stat\` utime + stime delta (10 ms ticks), per request. One extra call of each ran under
MONITOR, which names the script SHA and the commands it called: the table follows the store's
scripts as they change.

The baseline is a **minimal hold script** in the same Redis: \`INCR\` of a fence counter, then \`SET NX
PX\` of a hold, the least an atomic hold can be. Under redis-benchmark (64 clients, $MIN_N calls) it
ran at $(f0 "$MIN_RPS") calls/s and $MIN_BENCH_USEC µs per call; arbiter's own check script, captured with
MONITOR and run the same way ($CEIL_N calls, each placing a hold for a fresh customer), at
$(f0 "$CEIL_RPS") calls/s and $CEIL_BENCH_USEC µs per call ($R_CEIL× the minimal script).

| operation | script SHA | keys | Redis µs/call (mean) | × minimal | commands in the script | arbiter CPU µs/request | × ping | answers |
|---|---|---:|---:|---:|---|---:|---:|---|
EOF
jq -r --argjson um "$U_MIN" --argjson cp "$C_PING" '.ops[] |
  "| \(.op) — \(.what) | \(if .sha then "`" + .sha[0:12] + "`" else "—" end) | \(.keys) | \(.usec_per_call * 10 | round / 10) (\(.usec_per_call_mean // 0 | . * 10 | round / 10)) | \(if .calls > 0 then (.usec_per_call / $um * 100 | round / 100 | tostring) + "×" else "—" end) | \((.script_commands // []) | map(ascii_downcase) | if length == 0 then "—" else "\(length): " + join(" ") end) | \(if .op == "minimal" then "—" else (.arbiter_cpu_us_per_request | round | tostring) end) | \(if .op == "minimal" or $cp == 0 then "—" else (.arbiter_cpu_us_per_request / $cp * 100 | round / 100 | tostring) + "×" end) | \(.statuses | to_entries | map("\(.key): \(.value)") | join(", ")) |"' "$W/cost.json"
cat <<EOF

## 2. Bytes per customer

\`arbiter-load footprint\`: \`SCAN arb:{C}*\` over the keys of one customer's hash tag and \`MEMORY USAGE key SAMPLES 0\`
of each, with its TTL. "Without a TTL" is what stays once every TTL has run out if nothing touches the
customer again (no sweeper runs).

EOF
jq -r '.[] | "**\(.scenario)** (\(.what)): \(.bytes) bytes in \(.keys | length) keys, \(.bytes_without_ttl) without a TTL.\n\n| key | type | bytes | TTL |\n|---|---|---:|---|\n" + (.keys | map("| `\(.key)` | \(.type) | \(.bytes) | \(if .ttl_ms < 0 then "none" else "\(.ttl_ms / 3600000 * 10 | round / 10) h" end) |") | join("\n")) + "\n"' "$W/footprint.json"
cat <<EOF
## 3. Throughput of a fixed pool of clients (closed loop, 64 workers, $STEP)

| request | requests/s | p50 ms | p99 ms | answers |
|---|---:|---:|---:|---|
EOF
for c in closed-ping closed-check closed-redeem; do
  jq -r '"| \(.op)\(if .op == "redeem" then " (token, of \(.setup_holds) holds placed first\(if .setup_exhausted then ", all redeemed before the end" else "" end))" else "" end) | \(.ops_per_s | floor) | \(.endpoint.p50_ms) | \(.endpoint.p99_ms) | \(.endpoint.statuses | to_entries | map("\(.key): \(.value)") | join(", ")) |"' "$W/$c.json"
done
cat <<EOF

### Where arbiter's CPU goes (pprof, over each closed-loop window, top 10 by flat%)

During the checks:

\`\`\`
$(profile_top "$W/check.pprof")
\`\`\`

During the token redemptions:

\`\`\`
$(profile_top "$W/redeem.pprof")
\`\`\`

## 4. arbiter over HTTP, open model

A step "keeps up" when nothing was dropped or failed and it achieved >= 97% of the offered rate; the
**knee** is the highest rate that kept up with p99 <= max(10 ms, 3x the p99 of the lowest step).

### Checks only (POST /v1/checks, a new customer each, 201)

EOF
sweep_table kc check
echo
echo "Knee: **$(j "$KNEE_C" '.offered_rate_per_s')/s**."
echo
echo "### Check + redeem (POST /v1/checks then POST /v1/redemptions with the token; iterations/s, 2 requests each)"
echo
sweep_table kcr check
echo
echo "Redeem latency at the knee: p50 $(j "$KNEE_CR" '.endpoints.redeem.p50_ms') ms, p99 $(p99 "$KNEE_CR" redeem) ms. Knee: **$(j "$KNEE_CR" '.offered_rate_per_s') iterations/s**."
echo
echo "![check + token redemption over HTTP](docs/bench/http-check-redeem.svg)"
echo
echo "### Framework baseline: authenticated GET /v1/ping (same binary, middleware and authentication, no store)"
echo
sweep_table kp ping
cat <<EOF

## 5. The redsync peer design

\`cmd/arbiter-load/internal/peer\`: a Redlock mutex per customer (go-redsync/redsync/v4, 2 ms retry delay),
then one pipelined read (hold + grants), decide in Go, one MULTI/EXEC write, unlock. It keeps no audit
trail or history, so it does less work than arbiter. Both designs run in process (\`arbiter-load storebench\`),
fresh customers (no lock contention); arbiter is called through \`validation.Service\`, as the HTTP
handlers call it.

### Closed loop, loopback, 50 workers ($SB_DUR per measurement, alternating designs, 2 rounds)

EOF
storebench_table storebench
cat <<EOF

### Closed loop, $RTT network round trip, 16 workers

Every write from either design to Redis waits $RTT first (\`storebench -rtt $RTT\`, a dialer whose connections
sleep before each write: go-redis writes a command or a whole pipeline in one write), as a network
between the service and Redis would: the regime where round trips, not Redis CPU, decide.

EOF
storebench_table storebench-rtt
cat <<EOF

### Open model, loopback: checks at rising offered rates ($STEP per step, at most 1000 in flight, each design up to the first step it does not keep up with)

| offered/s | design | achieved/s | p50 ms | p99 ms | dropped | errors |
|---:|---|---:|---:|---:|---:|---:|
EOF
jq -r '.[] | "| \(.offered_per_s) | \(.design) | \(.achieved_per_s | floor) | \(.p50_ms) | \(.p99_ms) | \(.dropped) | \(.errors) |"' "$W/storebench-sweep.json"
cat <<EOF

## 6. How cost grows

Check + redeem at a fixed $SCALE_RATE iterations/s (80% of the check+redeem knee), $STEP per step, then
the closed-loop checks (64 workers, $STEP). Customers are preloaded through arbiter's import script (a
credit card grant each: the service's own data shape); bytes per customer is the growth of used_memory
during that preload over the customers it imported (the customers of the earlier steps left out).

| customers | keys in Redis | used memory | per customer | achieved it/s | check p50 ms | check p99 ms | redeem p99 ms | closed-loop checks/s |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
for n in $SCALES; do
  read -r m k per <"$W/mem-$n.txt"
  echo "| $n | $k | $(awk -v m="$m" 'BEGIN { printf "%.1f MiB", m / 1048576 }') | $per B | $(f0 "$(j "scale-$n" '.achieved_rate_per_s')") | $(j "scale-$n" '.endpoints.check.p50_ms') | $(p99 "scale-$n" check) | $(p99 "scale-$n" redeem) | $(f0 "$(j "scale-closed-$n" '.ops_per_s')") |"
done
echo
echo "### Share of checks refused (409 conflicting_product on customers holding a credit card)"
echo
echo "| refused | checks/s | 201 | 409 | check p50 ms | check p99 ms | dropped | failed |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
for f in 0 0.5 0.9; do
  jq -r --arg f "$f" '"| \($f | tonumber * 100)% | \(.endpoints.check.rate_per_s | floor) | \(.endpoints.check.statuses["201"] // 0) | \(.endpoints.check.statuses["409"] // 0) | \(.endpoints.check.p50_ms) | \(.endpoints.check.p99_ms) | \(.dropped_iterations) | \(.failed_requests) |"' "$W/refused-$f.json"
done
cat <<EOF

## 7. Redis commands per request (INFO commandstats delta / requests served, i.e. answered below 500)

Redis 7 also counts the commands a script calls, so they are shown apart: arbiter sends only script
calls (and PING for /readyz, HELLO/CLIENT when a connection opens); everything else ran inside them.

| run | requests | sent/request | script calls/request | EVAL fallbacks | in-script commands/request | commands delta |
|---|---:|---:|---:|---:|---:|---|
EOF
for s in "$KNEE_C" "$KNEE_CR" refused-0.9 contention; do
  jq -r --arg s "$s" '"| \($s) | \(.redis.requests) | \(.redis.client_commands_per_request * 1000 | round / 1000) | \(.redis.script_calls_per_request * 1000 | round / 1000) | \(.redis.eval_fallbacks) | \(.redis.in_script_commands_per_request * 10 | round / 10) | \(.redis.commands | to_entries | sort_by(-.value) | map("\(.key) \(.value)") | join(", ")) |"' "$W/$s.json"
done
cat <<EOF

## Invariant under contention

\`arbiter-load contention -rate 300 -customers 20\` ($STEP): $(j contention '.iterations') iterations racing card and loan
checks and redemptions, $(j contention '.counters.grants') grants, $(j contention '.counters.customers_read') customers read back,
**$(j contention '.violations | length') violations**.

\`\`\`
$(cat "$W/contention.txt")
\`\`\`
EOF
echo
cat "$W/tracing.md"
} >"$OUT.tmp"
# Readings written by hand (of this run, of TestReconcileScale, of BenchmarkRedeemToken)
# live in docs/benchmarks.md: this file holds only what the run measured.
mv "$OUT.tmp" "$OUT"
log "wrote $OUT and $PLOTS/*.svg in ${ELAPSED}s"
