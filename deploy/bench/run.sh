#!/usr/bin/env bash
# deploy/bench/run.sh regenerates BENCHMARKS.md: every figure in it comes
# from this one run, on this machine, against one redis-server, one
# arbiter (production mode) and one bare net/http server (`arbiter-load
# bare`, the baseline) that the script starts on loopback ports, and the
# charts and figures.json under docs/bench/ beside it. The figures of the
# previous run (figures.json, read before it is overwritten) stand beside
# this run's in the summary.
#
#   deploy/bench/run.sh                          # BENCHMARKS.md at the repo root (~15 minutes on 2 cores)
#   STEP=2s SCALE_MAX=10000 OUT=/tmp/b/BENCHMARKS.md deploy/bench/run.sh   # a quick check (~5 minutes)
#   KEEP=1 ...                                   # keep the raw JSON, CSV and profiles (the path is printed)
#
# Sections of the previous BENCHMARKS.md measured by scripts of their own
# (headed "## ... (run of DATE, ...)", e.g. rules.sh, outbox.sh) are carried
# over as they are, after this run's sections.
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
SB_RATES=${SB_RATES:-"500 1000 2000 3000 4000 6000 9000 13000 20000 30000"}  # storebench: the open-model sweep (each design stops at its first step that does not keep up)
CPU_DUR=${CPU_DUR:-5s}         # CPU per request: each closed-loop window (16 workers)
CPU_ROUNDS=${CPU_ROUNDS:-3}    # CPU per request: interleaved rounds (bare, ping, check, redeem, refusal); medians
SWEEP_MAX=${SWEEP_MAX:-16}     # open-model sweeps: at most this many steps (x1.5 each) before giving up on saturating
mkdir -p "$(dirname "$OUT")"
OUTDIR=$(cd "$(dirname "$OUT")" && pwd)
PLOTS=$OUTDIR/docs/bench       # charts and figures.json, linked from $OUT as docs/bench/*
mkdir -p "$PLOTS"
# The previous run: its figures (docs/bench/figures.json beside $OUT, else
# the repository's) and its BENCHMARKS.md (for the carried-over sections).
PREV_FIGURES=${PREV_FIGURES:-$PLOTS/figures.json}
[ -s "$PREV_FIGURES" ] || PREV_FIGURES=$ROOT/docs/bench/figures.json
PREV_OUT=${PREV_OUT:-$OUT}
[ -s "$PREV_OUT" ] || PREV_OUT=$ROOT/BENCHMARKS.md

for tool in go redis-server redis-cli redis-benchmark jq openssl curl; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (apt-get install redis-server redis-tools jq openssl curl)" >&2; exit 1; }
done

W=$(mktemp -d /tmp/arbiter-bench.XXXXXX)
if [ -s "$PREV_FIGURES" ]; then cp "$PREV_FIGURES" "$W/prev.json"; else echo '{}' >"$W/prev.json"; fi
[ -s "$PREV_OUT" ] && cp "$PREV_OUT" "$W/prev.md" || : >"$W/prev.md"
: >"$W/figures.tsv"
PIDS=()
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }  # PostgreSQL runs as postgres
PG_DATA=""
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -z "$PG_DATA" ] || as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -m fast stop >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "run.sh: kept $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # through cleanup: the PostgreSQL run.sh may start is no child of PIDS
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
RPID=$!
PIDS+=($RPID)
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
# start_arbiter NAME PORT [VAR=VALUE...]: an arbiter in production mode on
# PORT, default log level (info: one JSON access-log line per request, as
# in production); its pid in ARB_PID.
start_arbiter() {
  local name=$1 port=$2; shift 2
  env ARBITER_REDIS_URL="$RURL" ARBITER_CLIENTS="$W/clients.yaml" ARBITER_SIGNING_KEY="$W/signing.pem" "$@" \
    "$W/arbiter" -addr "127.0.0.1:$port" >"$W/$name.out" 2>"$W/$name.log" &
  ARB_PID=$!
  PIDS+=($ARB_PID)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$W/$name.log" >&2; exit 1; }
}
AP=$(free_port)
PP=$(free_port)
BASE="http://127.0.0.1:$AP"
PPROF="http://127.0.0.1:$PP"
start_arbiter arbiter "$AP" ARBITER_PPROF_ADDR="127.0.0.1:$PP"
APID=$ARB_PID

# The baseline: a bare net/http server answering 204 to anything, in a
# process of its own, driven by the same clients as arbiter.
BP=$(free_port)
BARE="http://127.0.0.1:$BP"
"$W/arbiter-load" bare -addr "127.0.0.1:$BP" 2>"$W/bare.log" &
BPID=$!
PIDS+=($BPID)
for _ in $(seq 100); do curl -fs "$BARE/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$BARE/readyz" >/dev/null || { cat "$W/bare.log" >&2; exit 1; }

# AutoPipeline of arbiter's Redis calls (ARBITER_REDIS_AUTOPIPELINE on/off;
# an arbiter without it ignores the variable, so look for its name in the
# binary) and of storebench's arbiter store (-autopipeline).
AP_ARB=""; grep -aq ARBITER_REDIS_AUTOPIPELINE "$W/arbiter" && AP_ARB=1
# (The help is read whole first: grep -q closing the pipe early kills the
# writer, which pipefail would read as "no such flag".)
AP_SB=""; SB_HELP=$("$W/arbiter-load" storebench -h 2>&1 || true); [[ $SB_HELP == *autopipeline* ]] && AP_SB=1

KEYS=(-checker-key "$KC" -card-key "$KCARD" -loan-key "$KLOAN")
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
HOST="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3), redis $(redis-server --version | cut -d' ' -f3 | tr -d 'v=')"
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

# fig KEY VALUE: a figure of this run, for docs/bench/figures.json (numbers only)
fig() { case $2 in ''|n/a|null) ;; *) printf '%s\t%s\n' "$1" "$2" >>"$W/figures.tsv" ;; esac; }
# step NAME SCENARIO ARGS... : one open-model step against $TARGET (default
# arbiter, with Redis's commandstats), JSON in $W/NAME.json
step() {
  local name=$1; shift
  local sc=$1; shift
  local target=(-base-url "$BASE" -redis-url "$RURL")
  [ -z "${TARGET:-}" ] || target=(-base-url "$TARGET")
  "$LOAD" "$sc" "${target[@]}" "${KEYS[@]}" -duration "$STEP" -quiet -allow-failures \
    -json "$W/$name.json" "$@" >"$W/$name.txt" 2>&1 || true
  [ -s "$W/$name.json" ] || { cat "$W/$name.txt" >&2; echo "run.sh: step $name produced no report" >&2; exit 1; }
}
# closed NAME ARGS...: a closed-loop HTTP measurement of $TARGET (default
# arbiter), JSON in $W/NAME.json
closed() {
  local name=$1; shift
  "$LOAD" closed -base-url "${TARGET:-$BASE}" "${KEYS[@]}" -duration "$STEP" -allow-failures -json "$W/$name.json" "$@" 2>>"$W/closed.txt"
}
# ok NAME: the step kept up (no drops, no failures, >= 97% of the offered rate)
ok() { jq -e '.dropped_iterations == 0 and .failed_requests == 0 and .achieved_rate_per_s >= 0.97 * .offered_rate_per_s' "$W/$1.json" >/dev/null; }
p99() { jq -r --arg e "$2" '.endpoints[$e].p99_ms // 0' "$W/$1.json"; }
# cmdstat NAME: "calls usec" of one command in INFO commandstats
cmdstat() { R INFO commandstats | tr -d '\r' | awk -F'[:,=]' -v n="cmdstat_$1" '$1 == n { print $3, $5 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a/b; else print "n/a" }'; }

# sweep PREFIX ENDPOINT START ARGS...: offered rates from START up, x1.5
# a step (rounded to 2 significant digits), until a step does not keep up
# twice in a row (the second try replaces the first in the report):
# every sweep runs to saturation (at most SWEEP_MAX steps; $W/PREFIX.saturated
# says whether it got there). The knee is the last rate that kept up with
# p99 <= max(10 ms, 3x the first step's p99). Prints the knee's step name.
sweep() {
  local prefix=$1 ep=$2 r=$3; shift 3
  local knee="" base_p99="" n=0 prev=""
  echo 0 >"$W/$prefix.saturated"
  : >"$W/$prefix.rates"
  while [ "$n" -lt "$SWEEP_MAX" ]; do
    n=$((n + 1))
    log "$prefix at $r/s"
    step "$prefix-$r" "$@" -rate "$r"
    local p; p=$(p99 "$prefix-$r" "$ep")
    [ -n "$base_p99" ] || base_p99=$p
    echo "$r" >>"$W/$prefix.rates"
    if ! ok "$prefix-$r"; then # once more, so one noisy neighbour's burst does not end the sweep
      log "$prefix at $r/s did not keep up: once more"
      step "$prefix-$r" "$@" -rate "$r"
      p=$(p99 "$prefix-$r" "$ep")
      if ! ok "$prefix-$r"; then echo 1 >"$W/$prefix.saturated"; break; fi
    fi
    if [ -z "$knee" ] || [ "$knee" = "$prefix-$prev" ]; then
      awk -v p="$p" -v b="$base_p99" 'BEGIN { lim = 3*b; if (lim < 10) lim = 10; exit !(p <= lim) }' && knee="$prefix-$r"
    fi
    prev=$r
    r=$(awk -v r="$r" 'BEGIN { x = r * 1.5; e = 10 ^ (int(log(x) / log(10)) - 1); printf "%d", int(x / e + 0.5) * e }')
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
# Compact grants (ARBITER_COMPACT_GRANTS=on, off by default for one
# release): the same footprint from an arbiter that writes the ledger's
# short grant, its scenarios suffixed ", compact grants".
COMPACT=""; grep -aq ARBITER_COMPACT_GRANTS "$W/arbiter" && COMPACT=1
if [ -n "$COMPACT" ]; then
  CP=$(free_port)
  start_arbiter arbiter-compact "$CP" ARBITER_COMPACT_GRANTS=on
  CPID=$ARB_PID
  "$LOAD" footprint -base-url "http://127.0.0.1:$CP" -redis-url "$RURL" "${KEYS[@]}" -json "$W/footprint-compact.json"
  kill "$CPID"; wait "$CPID" 2>/dev/null || true
  jq -s '.[0] + (.[1] | map(.scenario += ", compact grants"))' "$W/footprint.json" "$W/footprint-compact.json" >"$W/footprint-all.json"
  mv "$W/footprint-all.json" "$W/footprint.json"
fi
# With an archive, Redis need keep only the recent audit
# (ARBITER_AUDIT_RETENTION, ARBITER_AUDIT_CAP, settable only with one): the
# same footprint from an arbiter with compact grants, a PostgreSQL archive
# started here, and a day of audit, its scenarios suffixed ", archive, 24 h audit".
SHORT=""; [ -n "$COMPACT" ] && grep -aq ARBITER_AUDIT_RETENTION "$W/arbiter" && SHORT=1
if [ -n "$SHORT" ]; then
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  [ -x "$PGBIN/initdb" ] || { echo "run.sh: PostgreSQL's server is missing (apt-get install postgresql)" >&2; exit 1; }
  mkdir "$W/pg"  # data in pg/data, the socket and log beside it: the only part postgres owns
  if [ "$(id -u)" = 0 ]; then chown postgres "$W/pg"; chmod 711 "$W"; fi
  PGPORT=$(free_port)
  as_pg "$PGBIN/initdb" -D "$W/pg/data" -A trust -U postgres >/dev/null
  PG_DATA=$W/pg/data  # before the start: a start that times out may leave it running
  as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -l "$W/pg/pg.log" -o "-p $PGPORT -k $W/pg -c listen_addresses=127.0.0.1" -w start >/dev/null
  SP=$(free_port)
  start_arbiter arbiter-short "$SP" ARBITER_COMPACT_GRANTS=on ARBITER_ARCHIVE_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres" \
    ARBITER_AUDIT_RETENTION=24h ARBITER_AUDIT_CAP=20
  SPID=$ARB_PID
  "$LOAD" footprint -base-url "http://127.0.0.1:$SP" -redis-url "$RURL" "${KEYS[@]}" -json "$W/footprint-short.json"
  kill "$SPID"; wait "$SPID" 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -m fast stop >/dev/null; PG_DATA=""
  jq -s '.[0] + (.[1] | map(.scenario += ", compact grants, archive, 24 h audit"))' "$W/footprint.json" "$W/footprint-short.json" >"$W/footprint-all.json"
  mv "$W/footprint-all.json" "$W/footprint.json"
fi
R FLUSHALL >/dev/null

# 2b. CPU per request beside the bare net/http server: 16 workers in a
# closed loop, CPU_DUR each, the serving process's /proc/<pid>/stat
# utime+stime delta per request (and redis-server's, and Redis's script
# time); CPU_ROUNDS interleaved rounds of bare, ping, check, token
# redemption and refusal, minutes apart at most; medians.
for round in $(seq "$CPU_ROUNDS"); do
  log "CPU per request, round $round of $CPU_ROUNDS (16 workers, $CPU_DUR each)"
  TARGET=$BARE STEP=$CPU_DUR closed "cpu-bare-$round" -op ping -concurrency 16 -pid "$BPID" -redis-pid "$RPID"
  STEP=$CPU_DUR closed "cpu-ping-$round" -op ping -concurrency 16 -pid "$APID" -redis-pid "$RPID" -redis-url "$RURL"
  STEP=$CPU_DUR closed "cpu-check-$round" -op check -concurrency 16 -pid "$APID" -redis-pid "$RPID" -redis-url "$RURL"
  n=$(jq -r '.ops_per_s * .elapsed_s * 1.3 + 500 | floor' "$W/cpu-check-$round.json")
  STEP=$CPU_DUR closed "cpu-redeem_token-$round" -op redeem -setup "$n" -concurrency 16 -pid "$APID" -redis-pid "$RPID" -redis-url "$RURL"
  STEP=$CPU_DUR closed "cpu-refusal-$round" -op refusal -setup 200 -concurrency 16 -pid "$APID" -redis-pid "$RPID" -redis-url "$RURL"
done
R FLUSHALL >/dev/null

# 2c. AutoPipeline on and off: two more arbiters, one each way, measured
# in alternation (checks, 16 and 64 workers): arbiter's CPU, redis-server's
# CPU and Redis's script time per check.
if [ -n "$AP_ARB" ]; then
  for mode in off on; do
    port=$(free_port)
    start_arbiter "arbiter-ap-$mode" "$port" ARBITER_REDIS_AUTOPIPELINE=$mode
    eval "AP_PID_$mode=$ARB_PID AP_BASE_$mode=http://127.0.0.1:$port"
  done
  for round in $(seq "$CPU_ROUNDS"); do
    for mode in off on; do
      log "AutoPipeline $mode, round $round"
      pid_var=AP_PID_$mode base_var=AP_BASE_$mode
      for conc in 16 64; do
        TARGET=${!base_var} STEP=$CPU_DUR closed "ap-$mode-$conc-$round" -op check -concurrency "$conc" \
          -pid "${!pid_var}" -redis-pid "$RPID" -redis-url "$RURL"
      done
    done
  done
  kill "$AP_PID_off" "$AP_PID_on" 2>/dev/null || true
  R FLUSHALL >/dev/null
else
  log "AutoPipeline: not available in this binary (no ARBITER_REDIS_AUTOPIPELINE)"
fi

# 3. Throughput of 64 clients in a closed loop, with arbiter's CPU profile.
log "closed loop: checks, 64 workers"
closed closed-check -op check -concurrency 64 -pid "$APID" -redis-pid "$RPID" -pprof-url "$PPROF" -profile "$W/check.pprof"
SETUP=$(jq -r '.ops_per_s * .elapsed_s * 1.5 + 500 | floor' "$W/closed-check.json")  # enough to last the window
log "closed loop: token redemptions of $SETUP holds, 64 workers"
closed closed-redeem -op redeem -setup "$SETUP" -concurrency 64 -pid "$APID" -redis-pid "$RPID" -pprof-url "$PPROF" -profile "$W/redeem.pprof"
closed closed-ping -op ping -concurrency 64 -pid "$APID" -redis-pid "$RPID" -pprof-url "$PPROF" -profile "$W/ping.pprof"
TARGET=$BARE closed closed-bare -op ping -concurrency 64 -pid "$BPID" -redis-pid "$RPID"
R FLUSHALL >/dev/null

# 4. Over HTTP, open model: checks only, check + redeem, the framework
# baseline (authenticated GET /v1/ping) and the bare server, each from a
# low rate up until it does not keep up.
KNEE_C=$(sweep kc check 500 checks -redeem=false)
KNEE_CR=$(sweep kcr check 250 checks)
KNEE_P=$(sweep kp ping 1000 ping -path /v1/ping)
KNEE_B=$(TARGET=$BARE sweep kb ping 1000 ping -path /v1/ping)
R FLUSHALL >/dev/null

# 5. The redsync peer against arbiter's store, in process, same Redis:
# closed loop on loopback (50 workers), then with every write delayed by
# RTT (16 workers), then an open-model sweep of both designs' checks.
# With -autopipeline (when this arbiter-load has it) both again, the
# arbiter store's calls pipelined automatically.
for ap in "" ${AP_SB:+-ap}; do
  flag=(); [ -z "$ap" ] || flag=(-autopipeline)
  log "storebench${ap:+ (autopipeline)}: arbiter store vs redsync peer, loopback"
  "$LOAD" storebench -redis-url "$RURL" -duration "$SB_DUR" -rounds 2 -concurrency 50 "${flag[@]}" -json "$W/storebench$ap.json" 2>"$W/storebench$ap.txt"
  R FLUSHALL >/dev/null
  log "storebench${ap:+ (autopipeline)} with a $RTT round trip"
  "$LOAD" storebench -redis-url "$RURL" -duration "$SB_DUR" -rounds 2 -concurrency 16 -rtt "$RTT" "${flag[@]}" -json "$W/storebench-rtt$ap.json" 2>"$W/storebench-rtt$ap.txt"
  R FLUSHALL >/dev/null
done
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

kill "$APID" "$BPID" 2>/dev/null || true
ELAPSED=$(( $(date +%s) - T0 ))

# ---- charts ----
log "charts"
CSVH="series,offered_per_s,p50_ms,p99_ms,kept_up"
{ echo "$CSVH"; sweep_csv kc check "POST /v1/checks"; sweep_csv kp ping "GET /v1/ping (authenticated)"; sweep_csv kb ping "bare net/http (204)"; } >"$W/http.csv"
{ echo "$CSVH"; sweep_csv kcr check "check"; sweep_csv kcr redeem "token redemption"; } >"$W/http-redeem.csv"
{ echo "$CSVH"; jq -r '.[] | "\(.design),\(.offered_per_s),\(.p50_ms),\(.p99_ms),\(if .dropped == 0 and .errors == 0 and .achieved_per_s >= 0.97 * .offered_per_s then 1 else 0 end)"' "$W/storebench-sweep.json"; } >"$W/store.csv"
"$LOAD" plot -in "$W/http.csv" -out "$PLOTS/http-checks.svg" -title "over HTTP: checks beside ping and a bare net/http server" 2>>"$W/plot.txt"
"$LOAD" plot -in "$W/http-redeem.csv" -out "$PLOTS/http-check-redeem.svg" -title "arbiter over HTTP: check + token redemption (iterations/s)" 2>>"$W/plot.txt"
"$LOAD" plot -in "$W/store.csv" -out "$PLOTS/store-checks.svg" -title "store in process: arbiter's script vs the redsync peer (checks)" 2>>"$W/plot.txt"

# Tracing on and off, from Go benchmarks of its own (their own redis-servers).
log "tracing cost"
deploy/bench/tracing.sh >"$W/tracing.md"

# Where a request's time goes: web's BenchmarkRequestSteps (one
# sub-benchmark per middleware and per step of a check), when the tree has it.
: >"$W/steps.txt"
if grep -q 'func BenchmarkRequestSteps' web/*_test.go 2>/dev/null; then
  log "request steps (BenchmarkRequestSteps)"
  ARBITER_REQUIRE_REDIS=1 go test -run '^$' -bench '^BenchmarkRequestSteps$' -benchmem -count=1 ./web/ >"$W/steps.raw" 2>&1 || { cat "$W/steps.raw" >&2; echo "run.sh: BenchmarkRequestSteps failed" >&2; exit 1; }
  awk '$1 ~ /^BenchmarkRequestSteps\// { n = $1; sub(/^BenchmarkRequestSteps\//, "", n); sub(/-[0-9]+$/, "", n); ns = b = a = "";
    for (i = 3; i < NF; i++) { if ($(i+1) == "ns/op") ns = $i; if ($(i+1) == "B/op") b = $i; if ($(i+1) == "allocs/op") a = $i }
    print n, ns, b, a }' "$W/steps.raw" >"$W/steps.txt"
fi

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
# steady state: the keys that outlive the ended checks' records (RETENTION,
# 24 h): what a granted customer holds for the audit's life.
fpsteady() { jq -r --arg s "$1" '[.[] | select(.scenario == $s) | .keys[] | select(.ttl_ms < 0 or .ttl_ms > 86400000) | .bytes] | add // 0' "$W/footprint.json"; }
B_GS=$(fpsteady granted)
GC=granted; GCT="default whole grants"; [ -n "$COMPACT" ] && GC="granted, compact grants" && GCT="with ARBITER_COMPACT_GRANTS=on"
B_CG=$(fp "$GC" bytes); B_CGF=$(fp "$GC" bytes_without_ttl); B_CGS=$(fpsteady "$GC")
# The steady-state target is read with the archive and a day of audit when
# the binary has them; the 30-day audit's figure stays beside it.
GS=$GC; GST=$GCT; B_SG=$B_CG; B_SGS=$B_CGS
if [ -n "$SHORT" ]; then
  GS="granted, compact grants, archive, 24 h audit"; GST="with compact grants, an archive and ARBITER_AUDIT_RETENTION=24h"
  B_SG=$(fp "$GS" bytes); B_SGS=$(fpsteady "$GS")
fi
B_N=$(fp no_grant bytes); B_NF=$(fp no_grant bytes_without_ttl)

# med PREFIX FIELD: the median of FIELD over the rounds $W/PREFIX-<n>.json
med() {
  local f
  for f in "$W/$1"-[0-9]*.json; do [ -e "$f" ] && jq -r "$2 // 0" "$f"; done | sort -g |
    awk '{ v[NR] = $1 } END { if (NR) printf "%.2f", (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; else print "n/a" }'
}
CPU_OPS="bare ping check redeem_token refusal"
for op in $CPU_OPS; do
  eval "CPU_$op=\$(med cpu-$op .server_cpu_us_per_request)"
  eval "RCPU_$op=\$(med cpu-$op .redis_cpu_us_per_request)"
  eval "RUS_$op=\$(med cpu-$op .redis.usec_per_call)"
  eval "RATE_$op=\$(med cpu-$op .ops_per_s)"
done
RB_PING=$(ratio "$CPU_ping" "$CPU_bare"); RB_CHECK=$(ratio "$CPU_check" "$CPU_bare")
RB_TOK=$(ratio "$CPU_redeem_token" "$CPU_bare"); RB_REF=$(ratio "$CPU_refusal" "$CPU_bare")
R_SB_C=$(ratio "$A_C" "$S_C"); R_SB_CR=$(ratio "$A_CR" "$S_CR")
R_SBR_C=$(ratio "$RA_C" "$RS_C"); R_SBR_CR=$(ratio "$RA_CR" "$RS_CR")
if [ -n "$AP_SB" ]; then
  AA_C=$(sb storebench-ap arbiter check); AS_C=$(sb storebench-ap redsync check)
  AA_CR=$(sb storebench-ap arbiter check+redeem); AS_CR=$(sb storebench-ap redsync check+redeem)
  ARA_C=$(sb storebench-rtt-ap arbiter check); ARS_C=$(sb storebench-rtt-ap redsync check)
  ARA_CR=$(sb storebench-rtt-ap arbiter check+redeem); ARS_CR=$(sb storebench-rtt-ap redsync check+redeem)
  R_ASB_C=$(ratio "$AA_C" "$AS_C"); R_ASB_CR=$(ratio "$AA_CR" "$AS_CR")
  R_ASBR_C=$(ratio "$ARA_C" "$ARS_C"); R_ASBR_CR=$(ratio "$ARA_CR" "$ARS_CR")
fi
CMD_C=$(j "$KNEE_C" '.redis.client_commands_per_request'); CMD_CR=$(j "$KNEE_CR" '.redis.client_commands_per_request')
saturated() { # PREFIX: "yes, at R/s" (the first step that did not keep up) or "no (up to R/s)"
  local last; last=$(tail -1 "$W/$1.rates")
  if [ "$(cat "$W/$1.saturated")" = 1 ]; then echo "at $last/s"; else echo "not within $SWEEP_MAX steps (up to $last/s)"; fi
}
# sb_saturated DESIGN: 1 when the design's last step in the storebench sweep did not keep up
sb_saturated() { jq -r --arg d "$1" '[.[] | select(.design == $d)] | last | if .dropped > 0 or .errors > 0 or .achieved_per_s < 0.97 * .offered_per_s then 1 else 0 end' "$W/storebench-sweep.json"; }
sb_sat_text() { local top; top=$(jq -r --arg d "$1" '[.[] | select(.design == $d)] | last | .offered_per_s' "$W/storebench-sweep.json")
  if [ "$(sb_saturated "$1")" = 1 ]; then echo "at $top/s"; else echo "not within SB_RATES (up to $top/s)"; fi; }
SAT_ALL=$({ cat "$W"/k{c,cr,p,b}.saturated; sb_saturated arbiter; sb_saturated redsync; } | awk '{ s += $1 } END { print (s == NR) ? 1 : 0 }')

# This run's figures, flat, for the next run's "previous run" column.
fig run_unix "$T0"
for op in $CPU_OPS; do
  for v in CPU RCPU RUS RATE; do
    n="${v}_$op"
    case $v in CPU) k=cpu16.server_us;; RCPU) k=cpu16.redis_cpu_us;; RUS) k=cpu16.redis_script_us;; RATE) k=cpu16.per_s;; esac
    fig "$k.$op" "${!n}"
  done
done
fig ratio.ping_bare "$RB_PING"; fig ratio.check_bare "$RB_CHECK"; fig ratio.redeem_token_bare "$RB_TOK"; fig ratio.refusal_bare "$RB_REF"
for c in bare ping check redeem; do fig "closed64.per_s.$c" "$(j "closed-$c" .ops_per_s)"; fig "closed64.server_us.$c" "$(j "closed-$c" .server_cpu_us_per_request)"
  fig "closed64.client_us.$c" "$(j "closed-$c" '.client_cpu_us_per_request // 0')"; fig "closed64.machine_us.$c" "$(j "closed-$c" '.machine_cpu_us_per_request // 0')"; done
fig minimal.bench_per_s "$MIN_RPS"; fig minimal.bench_us "$MIN_BENCH_USEC"
fig check_script.bench_per_s "$CEIL_RPS"; fig check_script.bench_us "$CEIL_BENCH_USEC"
fig ratio.redis_bench_check_minimal "$R_CEIL"; fig ratio.closed_check_minimal "$R_CL"
for op in minimal ping check refusal redeem_token redeem_otp; do
  fig "cost.redis_us.$op" "$(cost "$op" usec_per_call)"; fig "cost.server_us.$op" "$(cost "$op" arbiter_cpu_us_per_request)"
done
fig ratio.redis_check_minimal "$R_CHECK"; fig ratio.redis_redeem_token_minimal "$R_TOK"; fig ratio.redis_refusal_minimal "$R_REF"
fig ratio.cost_check_ping "$RC_CHECK"; fig ratio.cost_redeem_token_ping "$RC_TOK"
fig sb.loop.arbiter.check "$A_C"; fig sb.loop.redsync.check "$S_C"; fig sb.loop.arbiter.check_redeem "$A_CR"; fig sb.loop.redsync.check_redeem "$S_CR"
fig sb.rtt.arbiter.check "$RA_C"; fig sb.rtt.redsync.check "$RS_C"; fig sb.rtt.arbiter.check_redeem "$RA_CR"; fig sb.rtt.redsync.check_redeem "$RS_CR"
fig ratio.sb_loop_check "$R_SB_C"; fig ratio.sb_loop_check_redeem "$R_SB_CR"; fig ratio.sb_rtt_check "$R_SBR_C"; fig ratio.sb_rtt_check_redeem "$R_SBR_CR"
if [ -n "$AP_SB" ]; then
  fig sb_ap.loop.arbiter.check "$AA_C"; fig sb_ap.loop.redsync.check "$AS_C"; fig sb_ap.loop.arbiter.check_redeem "$AA_CR"; fig sb_ap.loop.redsync.check_redeem "$AS_CR"
  fig sb_ap.rtt.arbiter.check "$ARA_C"; fig sb_ap.rtt.redsync.check "$ARS_C"; fig sb_ap.rtt.arbiter.check_redeem "$ARA_CR"; fig sb_ap.rtt.redsync.check_redeem "$ARS_CR"
  fig ratio.sb_ap_loop_check "$R_ASB_C"; fig ratio.sb_ap_loop_check_redeem "$R_ASB_CR"; fig ratio.sb_ap_rtt_check "$R_ASBR_C"; fig ratio.sb_ap_rtt_check_redeem "$R_ASBR_CR"
fi
if [ -n "$AP_ARB" ]; then
  for mode in off on; do for conc in 16 64; do
    fig "ap_$mode.c$conc.per_s" "$(med "ap-$mode-$conc" .ops_per_s)"
    fig "ap_$mode.c$conc.server_us" "$(med "ap-$mode-$conc" .server_cpu_us_per_request)"
    fig "ap_$mode.c$conc.redis_cpu_us" "$(med "ap-$mode-$conc" .redis_cpu_us_per_request)"
    fig "ap_$mode.c$conc.redis_script_us" "$(med "ap-$mode-$conc" .redis.usec_per_call)"
  done; done
fi
fig bytes.granted "$B_G"; fig bytes.granted_no_ttl "$B_GF"; fig bytes.granted_steady "$B_GS"
fig bytes.short_granted "$B_SG"; fig bytes.short_granted_steady "$B_SGS"; fig bytes.compact_granted "$B_CG"; fig bytes.compact_granted_no_ttl "$B_CGF"; fig bytes.compact_granted_steady "$B_CGS"; fig bytes.no_grant "$B_N"; fig bytes.no_grant_no_ttl "$B_NF"
fig cmds_per_request.check "$CMD_C"; fig cmds_per_request.check_redeem "$CMD_CR"
fig knee.checks "$(j "$KNEE_C" .offered_rate_per_s)"; fig knee.check_redeem "$(j "$KNEE_CR" .offered_rate_per_s)"
fig knee.ping "$(j "$KNEE_P" .offered_rate_per_s)"; fig knee.bare "$(j "$KNEE_B" .offered_rate_per_s)"
for p in kc kcr kp kb; do fig "sweep_top.$p" "$(tail -1 "$W/$p.rates")"; done
while read -r name ns b a; do fig "steps.ns_op.$name" "$ns"; fig "steps.allocs_op.$name" "$a"; done <"$W/steps.txt"
jq -Rn '[inputs | split("\t") | {(.[0]): (.[1] | tonumber | . * 100 | round / 100)}] | add // {}' "$W/figures.tsv" >"$W/figures.json"

# The previous run, beside this one.
PREV_DATE=$(jq -r '.run_unix // empty' "$W/prev.json")
PREV_DATE=${PREV_DATE:+$(date -u -d "@$PREV_DATE" '+%Y-%m-%d %H:%M UTC')}
PREV_DATE=${PREV_DATE:-none}
pv() { # KEY [DIGITS]: the previous run's figure, or —
  local v; v=$(jq -r --arg k "$1" '.[$k] // empty' "$W/prev.json")
  if [ -z "$v" ]; then echo "—"; else awk -v x="$v" -v d="${2:-0}" 'BEGIN { printf "%." d "f", x }'; fi
}
nv() { # KEY [DIGITS]: this run's figure, or —
  local v; v=$(jq -r --arg k "$1" '.[$k] // empty' "$W/figures.json")
  if [ -z "$v" ]; then echo "—"; else awk -v x="$v" -v d="${2:-0}" 'BEGIN { printf "%." d "f", x }'; fi
}
u() { if [ "$1" = "—" ]; then echo "—"; else echo "$1$2"; fi; } # VALUE UNIT: a figure with its unit, or —
x() { if [ "$1" = "—" ]; then echo "—"; else echo "$1×"; fi; } # a ratio, or —
cell() { # pv|nv RATIO_KEY A_KEY B_KEY UNIT DIGITS: "R× (A vs B UNIT)", or —
  local r; r=$($1 "$2" 2)
  [ "$r" != "—" ] || { echo "—"; return; }
  echo "$r× ($($1 "$3" "$6") vs $($1 "$4" "$6") $5)"
}
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
# profile_parts PROFILE US LABEL=FRAME...: a table of the named frames'
# cumulative share of the profile's samples, and that share of US (the
# server's CPU µs per request over the same window); — for a frame the
# profile does not have (pprof drops those under 0.5 %).
profile_parts() {
  local prof=$1 us=$2 top pair label frame pct; shift 2
  top=$(go tool pprof -top -cum -nodecount=3000 "$prof" 2>/dev/null)
  echo "| part of a request | frame (cumulative) | share of samples | ≈ µs of CPU per request |"
  echo "|---|---|---:|---:|"
  for pair in "$@"; do
    label=${pair%%=*}; frame=${pair#*=}
    pct=$(awk -v f="$frame" '$5 ~ /%$/ && length($6) >= length(f) && substr($6, length($6) - length(f) + 1) == f { sub(/%/, "", $5); print $5; exit }' <<<"$top")
    if [ -n "$pct" ]; then
      echo "| $label | \`$frame\` | $pct % | $(awk -v p="$pct" -v u="$us" 'BEGIN { printf "%.1f", p * u / 100 }') |"
    else
      echo "| $label | \`$frame\` | — | — |"
    fi
  done
}

{
cat <<EOF
# arbiter benchmarks

Generated by \`deploy/bench/run.sh\` on **$DATE** in $((ELAPSED / 60)) min $((ELAPSED % 60)) s; every figure below comes from that one run.
Machine: $HOST; load average at start $LOADAVG. This machine is **shared and loaded**: other
engineers' builds and tests may run on the same cores during the run, and the load generator,
arbiter and redis-server share them too. Absolute numbers are therefore low and jittery; **the
ratios, measured minutes apart in the same run, are the figures that matter**.

Command: \`STEP=$STEP SCALE_MAX=$SCALE_MAX COST_N=$COST_N MIN_N=$MIN_N CEIL_N=$CEIL_N SB_DUR=$SB_DUR RTT=$RTT SB_RATES="$SB_RATES" CPU_DUR=$CPU_DUR CPU_ROUNDS=$CPU_ROUNDS SWEEP_MAX=$SWEEP_MAX deploy/bench/run.sh\`; AutoPipeline in arbiter: $([ -n "$AP_ARB" ] && echo "measured on and off" || echo "not available in this binary"); in storebench: $([ -n "$AP_SB" ] && echo "measured on and off" || echo "not available in this binary"). arbiter ran in production mode (real
redis-server on loopback, clients file, signing key, default log level: one JSON access-log line per
request). The HTTP load is \`arbiter-load\` (open model: constant arrival rate, latency from send to
last byte, HdrHistogram) except where a closed loop is named.

## Summary

Issue #24's targets. *Previous run* is the run of **$PREV_DATE** (\`docs/bench/figures.json\` before this
run overwrote it); — where that run had no such measurement. Every figure of both runs is in
[Every figure beside the previous run](#every-figure-beside-the-previous-run).

| target | this run | previous run | verdict |
|---|---|---|---|
| arbiter CPU per authenticated \`GET /v1/ping\` ≤ 1.3× the bare net/http server's per request (closed loop, 16 workers) | $(cell nv ratio.ping_bare cpu16.server_us.ping cpu16.server_us.bare µs 1) | $(cell pv ratio.ping_bare cpu16.server_us.ping cpu16.server_us.bare µs 1) | $(verdict "$RB_PING" "<=" 1.3) |
| arbiter CPU per check ≤ 4× bare | $(cell nv ratio.check_bare cpu16.server_us.check cpu16.server_us.bare µs 1) | $(cell pv ratio.check_bare cpu16.server_us.check cpu16.server_us.bare µs 1) | $(verdict "$RB_CHECK" "<=" 4) |
| arbiter CPU per token redemption ≤ 3× bare | $(cell nv ratio.redeem_token_bare cpu16.server_us.redeem_token cpu16.server_us.bare µs 1) | $(cell pv ratio.redeem_token_bare cpu16.server_us.redeem_token cpu16.server_us.bare µs 1) | $(verdict "$RB_TOK" "<=" 3) |
| HTTP checks/s, closed loop, 64 workers ≥ 0.25× redis-benchmark of the minimal script | $(cell nv ratio.closed_check_minimal closed64.per_s.check minimal.bench_per_s /s 0) | $(cell pv ratio.closed_check_minimal closed64.per_s.check minimal.bench_per_s /s 0) | $(verdict "$R_CL" ">=" 0.25) |
| storebench checks ≥ 3× redsync, loopback, 50 workers | $(cell nv ratio.sb_loop_check sb.loop.arbiter.check sb.loop.redsync.check /s 0) | $(cell pv ratio.sb_loop_check sb.loop.arbiter.check sb.loop.redsync.check /s 0) | $(verdict "$R_SB_C" ">=" 3) |
| storebench check+redeem ≥ 3× redsync, loopback, 50 workers | $(cell nv ratio.sb_loop_check_redeem sb.loop.arbiter.check_redeem sb.loop.redsync.check_redeem /s 0) | $(cell pv ratio.sb_loop_check_redeem sb.loop.arbiter.check_redeem sb.loop.redsync.check_redeem /s 0) | $(verdict "$R_SB_CR" ">=" 3) |
| storebench checks ≥ 3.5× redsync, $RTT round trip, 16 workers | $(cell nv ratio.sb_rtt_check sb.rtt.arbiter.check sb.rtt.redsync.check /s 0) | $(cell pv ratio.sb_rtt_check sb.rtt.arbiter.check sb.rtt.redsync.check /s 0) | $(verdict "$R_SBR_C" ">=" 3.5) |
| storebench check+redeem ≥ 3.5× redsync, $RTT round trip, 16 workers | $(cell nv ratio.sb_rtt_check_redeem sb.rtt.arbiter.check_redeem sb.rtt.redsync.check_redeem /s 0) | $(cell pv ratio.sb_rtt_check_redeem sb.rtt.arbiter.check_redeem sb.rtt.redsync.check_redeem /s 0) | $(verdict "$R_SBR_CR" ">=" 3.5) |
$(if [ -n "$AP_SB" ]; then
  echo "| the same four with \`storebench -autopipeline\` (loopback ≥ 3×, $RTT ≥ 3.5×) | checks $(x "$(nv ratio.sb_ap_loop_check 2)"), check+redeem $(x "$(nv ratio.sb_ap_loop_check_redeem 2)"); at $RTT: $(x "$(nv ratio.sb_ap_rtt_check 2)"), $(x "$(nv ratio.sb_ap_rtt_check_redeem 2)") | $(x "$(pv ratio.sb_ap_loop_check 2)"), $(x "$(pv ratio.sb_ap_loop_check_redeem 2)"); $(x "$(pv ratio.sb_ap_rtt_check 2)"), $(x "$(pv ratio.sb_ap_rtt_check_redeem 2)") | $(awk -v a="$R_ASB_C" -v b="$R_ASB_CR" -v c="$R_ASBR_C" -v d="$R_ASBR_CR" 'BEGIN { print (a >= 3 && b >= 3 && c >= 3.5 && d >= 3.5) ? "**met**" : "not met" }') |"
else
  echo "| the same with \`storebench -autopipeline\` | not available in this binary | $(x "$(pv ratio.sb_ap_loop_check 2)") | — |"
fi)
| Redis µs per check ≤ 3× the minimal hold script (through arbiter, \`cost\`, 16 clients) | $(cell nv ratio.redis_check_minimal cost.redis_us.check cost.redis_us.minimal µs 1) | $(cell pv ratio.redis_check_minimal cost.redis_us.check cost.redis_us.minimal µs 1) | $(verdict "$R_CHECK" "<=" 3) |
| the same, both under redis-benchmark (64 clients, fresh customers, no arbiter on the cores) | $(cell nv ratio.redis_bench_check_minimal check_script.bench_us minimal.bench_us µs 1) | $(cell pv ratio.redis_bench_check_minimal check_script.bench_us minimal.bench_us µs 1) | $(verdict "$R_CEIL" "<=" 3) |
| bytes per granted customer at steady state (the keys that outlive the 24 h records), $GST ≤ 512 B | $B_SGS B ($B_SG B right after check + redemption; a 30-day audit: $B_CGS B, $B_CG B; default whole grants: $B_GS B, $B_G B) | $(u "$(pv bytes.compact_granted_steady)" " B") (compact grants, 30-day audit), $(u "$(pv bytes.granted)" " B") right after | $(verdict "$B_SGS" "<=" 512) |
| bytes a granted customer keeps without a TTL (for good), $GCT ≤ 256 B | $B_CGF B (default whole grants: $B_GF B) | $(u "$(pv bytes.granted_no_ttl)" " B") | $(verdict "$B_CGF" "<=" 256) |
| bytes left of a customer with no grant once every TTL has run out: 0 | $B_NF B ($B_N B right after the check) | $(u "$(pv bytes.no_grant_no_ttl)" " B") ($(u "$(pv bytes.no_grant)" " B")) | $(verdict "$B_NF" "==" 0) |
| Redis commands sent per request: exactly 1 | $(f2 "$CMD_C") per check, $(f2 "$CMD_CR") per check+redeem request ($(j "$KNEE_C" '.redis.eval_fallbacks') EVAL fallbacks) | $(pv cmds_per_request.check 2), $(pv cmds_per_request.check_redeem 2) | $(verdict "$(f0 "$(j "$KNEE_C" '.redis.script_calls_per_request')")" "==" 1) |
| every open-model sweep runs until a step does not keep up | checks $(saturated kc); check+redeem $(saturated kcr); ping $(saturated kp); bare $(saturated kb); storebench arbiter $(sb_sat_text arbiter), redsync $(sb_sat_text redsync) | checks went up to $(u "$(pv sweep_top.kc)" /s), ping to $(u "$(pv sweep_top.kp)" /s) | $([ "$SAT_ALL" = 1 ] && echo "**met**" || echo "not met") |

Not targets, for the record: a refusal costs $(f1 "$CPU_refusal") µs of arbiter's CPU ($RB_REF× bare; previous
run $(x "$(pv ratio.refusal_bare 2)")); redis-server's own CPU per check $(f1 "$RCPU_check") µs (16 workers). In the \`cost\`
step (each operation alone): Redis µs per token redemption $R_TOK× the minimal script, per refusal $R_REF×, per
OTP redemption $R_OTP×; arbiter CPU per check $RC_CHECK× per ping, per token redemption $RC_TOK×. AutoPipeline:
$(if [ -n "$AP_ARB" ]; then echo "see [AutoPipeline on and off](#autopipeline-on-and-off)."; else echo "not available in this binary (the section says so)."; fi)
From $SCALE_NAMES customers in Redis: used memory per customer $(growth mem); check p99 at $SCALE_RATE it/s
$(growth p99); closed-loop checks $(growth rate).

![over HTTP: checks beside ping and a bare net/http server](docs/bench/http-checks.svg)

![store in process: arbiter vs the redsync peer](docs/bench/store-checks.svg)

## CPU per request beside a bare net/http server

\`arbiter-load closed\`, 16 workers back to back for $CPU_DUR per window, the same client for every row;
$CPU_ROUNDS rounds, each going through the rows in this order, medians of the rounds. *bare* is
\`arbiter-load bare\`: net/http with cmd/arbiter's \`http.Server\` settings, a handler that answers
204 to anything and reads nothing (the Authorization header the client sends is ignored), in a
process of its own. Server CPU is that process's \`/proc/<pid>/stat\` utime + stime delta over the
window per request (10 ms ticks), redis-server's the same way, Redis µs per script call the
\`INFO commandstats\` delta. The load generator shares the 2 cores, so requests/s is the
machine's, not the server's.

| request | server CPU µs/request | × bare | redis-server CPU µs/request | Redis µs per script call | requests/s | per round (server µs) |
|---|---:|---:|---:|---:|---:|---|
EOF
for op in $CPU_OPS; do
  c="CPU_$op" rc="RCPU_$op" ru="RUS_$op" rt="RATE_$op"
  case $op in
    bare) what="bare net/http: GET /v1/ping answered 204, nothing read" ;;
    ping) what="arbiter: authenticated GET /v1/ping (no store)" ;;
    check) what="arbiter: POST /v1/checks, a new customer (201)" ;;
    redeem_token) what="arbiter: POST /v1/redemptions {token} (201)" ;;
    refusal) what="arbiter: a loan check for a card holder (409)" ;;
  esac
  echo "| $what | $(f1 "${!c}") | $(ratio "${!c}" "$CPU_bare")× | $(f1 "${!rc}") | $(awk -v u="${!ru}" 'BEGIN { if (u > 0) printf "%.1f", u; else print "—" }') | $(f0 "${!rt}") | $(for f in "$W/cpu-$op"-[0-9]*.json; do jq -r '.server_cpu_us_per_request * 10 | round / 10' "$f"; done | paste -sd' ') |"
done
cat <<EOF

## Where a request's time goes

EOF
if [ -s "$W/steps.txt" ]; then
  echo "\`go test -run '^\$' -bench '^BenchmarkRequestSteps\$' -benchmem -count=1 ./web/\` (one sub-benchmark per middleware"
  echo "and per step of a check, in process: no network), beside the previous run."
  echo
  echo "| step | ns/op | previous ns/op | B/op | allocs/op | previous allocs/op |"
  echo "|---|---:|---:|---:|---:|---:|"
  while read -r name ns b a; do
    echo "| $name | $ns | $(pv "steps.ns_op.$name") | $b | $a | $(pv "steps.allocs_op.$name") |"
  done <"$W/steps.txt"
else
  echo "Not measured: this tree has no \`BenchmarkRequestSteps\` in \`web\` (run.sh runs it when it exists)."
fi
cat <<EOF

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

Every worker has a keep-alive connection of its own, written and read by net/http's request writer
and response reader without the Transport's pool and goroutines (as redis-benchmark's and wrk's
clients do): the client is on the same two cores as the server and Redis, and the least CPU it takes
is the most left to them. The CPU columns say where the cores went, per request: the server
(arbiter, or the bare server), redis-server, the load generator itself, and the whole machine
(\`/proc/stat\`, steal excluded), with how busy the cores were over the window.

| request | requests/s | p50 ms | p99 ms | server CPU µs/request | Redis CPU µs | client CPU µs | machine CPU µs | cores busy | answers |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---|
EOF
for c in closed-bare closed-ping closed-check closed-redeem; do
  jq -r --arg c "$c" 'def r: . * 10 | round / 10; "| \(if $c == "closed-bare" then "bare net/http (204)" else .op end)\(if .op == "redeem" then " (token, of \(.setup_holds) holds placed first\(if .setup_exhausted then ", all redeemed before the end" else "" end))" else "" end) | \(.ops_per_s | floor) | \(.endpoint.p50_ms) | \(.endpoint.p99_ms) | \(.server_cpu_us_per_request | r) | \(.redis_cpu_us_per_request | r) | \(.client_cpu_us_per_request // 0 | r) | \(.machine_cpu_us_per_request // 0 | r) | \((.machine_busy_share // 0) * 100 | round)% | \(.endpoint.statuses | to_entries | map("\(.key): \(.value)") | join(", ")) |"' "$W/$c.json"
done
cat <<EOF

### Where arbiter's CPU goes (pprof, over each closed-loop window, top 10 by flat%)

During the checks:

\`\`\`
$(profile_top "$W/check.pprof")
\`\`\`

The same window by part, cumulative (a frame's share includes what it calls; parts overlap where
one calls another), against the $(f1 "$(j closed-check .server_cpu_us_per_request)") µs of arbiter's CPU per check measured over it:

$(profile_parts "$W/check.pprof" "$(j closed-check .server_cpu_us_per_request)" \
  "the whole connection: read, handle, write=net/http.(*conn).serve" \
  "reading and parsing the request=net/http.(*conn).readRequest" \
  "writing the response out=net/http.(*response).finishRequest" \
  "echo, the middleware and the handler=web.(*Server).ServeHTTP" \
  "the approval token: claims, Ed25519, base64=tokens.(*Issuer).Sign" \
  "of it, the Ed25519 signature=crypto/ed25519.Sign" \
  "the policy and the store call=validation.(*Service).Check" \
  "the response's JSON=echo/v4.(*context).JSON" \
  "the batched round trip to Redis (AutoPipeline)=go-redis/v9.(*AutoPipeliner).dispatchCmds" \
  "garbage collection (background)=runtime.gcBgMarkWorker")

During the token redemptions:

\`\`\`
$(profile_top "$W/redeem.pprof")
\`\`\`

By part, against $(f1 "$(j closed-redeem .server_cpu_us_per_request)") µs per redemption:

$(profile_parts "$W/redeem.pprof" "$(j closed-redeem .server_cpu_us_per_request)" \
  "the whole connection: read, handle, write=net/http.(*conn).serve" \
  "reading and parsing the request=net/http.(*conn).readRequest" \
  "writing the response out=net/http.(*response).finishRequest" \
  "echo, the middleware and the handler=web.(*Server).ServeHTTP" \
  "the token's claims (no signature check: the script compares its secret's digest)=tokens.(*Issuer).ParseOwn" \
  "the policy and the store call=validation.(*Service).RedeemToken" \
  "the batched round trip to Redis (AutoPipeline)=go-redis/v9.(*AutoPipeliner).dispatchCmds" \
  "garbage collection (background)=runtime.gcBgMarkWorker")

During the pings:

\`\`\`
$(profile_top "$W/ping.pprof")
\`\`\`

## AutoPipeline on and off

EOF
if [ -n "$AP_ARB" ]; then
  echo "Two more arbiters on the same Redis, \`ARBITER_REDIS_AUTOPIPELINE=off\` and \`=on\`, measured in alternation"
  echo "($CPU_ROUNDS rounds, $CPU_DUR windows of checks for new customers, closed loop; medians). Redis time: redis-server's"
  echo "process CPU per check and \`INFO commandstats\` µs per script call."
  echo
  echo "| workers | AutoPipeline | checks/s | arbiter CPU µs/check | redis-server CPU µs/check | Redis µs per script call | on ÷ off (arbiter CPU, Redis CPU) | previous run (arbiter, Redis CPU µs) |"
  echo "|---:|---|---:|---:|---:|---:|---|---|"
  for conc in 16 64; do for mode in off on; do
    echo "| $conc | $mode | $(nv "ap_$mode.c$conc.per_s") | $(nv "ap_$mode.c$conc.server_us" 1) | $(nv "ap_$mode.c$conc.redis_cpu_us" 1) | $(nv "ap_$mode.c$conc.redis_script_us" 1) | $([ "$mode" = on ] && echo "$(ratio "$(nv ap_on.c$conc.server_us 2)" "$(nv ap_off.c$conc.server_us 2)")×, $(ratio "$(nv ap_on.c$conc.redis_cpu_us 2)" "$(nv ap_off.c$conc.redis_cpu_us 2)")×" || echo "") | $(pv "ap_$mode.c$conc.server_us" 1), $(pv "ap_$mode.c$conc.redis_cpu_us" 1) |"
  done; done
else
  echo "Not available in this binary: this arbiter has no \`ARBITER_REDIS_AUTOPIPELINE\`, so on and off were not measured."
fi
cat <<EOF

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
echo
echo "Knee: **$(j "$KNEE_P" '.offered_rate_per_s')/s**."
echo
echo "### Bare net/http (\`arbiter-load bare\`: 204 to anything, no middleware, its own process)"
echo
sweep_table kb ping
echo
echo "Knee: **$(j "$KNEE_B" '.offered_rate_per_s')/s**. On 2 shared cores the load generator needs a core of its own at"
echo "these rates: where bare stops keeping up, it is mostly the client that saturates."
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
if [ -n "$AP_SB" ]; then
  printf '\n### The same two with `storebench -autopipeline` (the arbiter store'"'"'s calls pipelined automatically)\n\nLoopback, 50 workers:\n\n'
  storebench_table storebench-ap
  printf '\n%s round trip, 16 workers:\n\n' "$RTT"
  storebench_table storebench-rtt-ap
else
  printf '\nWith `-autopipeline`: not available in this binary.\n'
fi
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

## Every figure beside the previous run

This run's \`docs/bench/figures.json\` beside the previous run's ($PREV_DATE); — where one of them has no
such figure. Keys: \`cpu16\` the closed loop of 16 workers above, \`closed64\` section 3, \`cost\` section 1
(each operation alone), \`sb\` storebench (\`sb_ap\` with -autopipeline), \`ap_on\`/\`ap_off\` AutoPipeline,
\`steps\` BenchmarkRequestSteps; µs are per request (per call for \`redis_script_us\`).

| figure | this run | previous run |
|---|---:|---:|
EOF
jq -r -n --slurpfile now "$W/figures.json" --slurpfile prev "$W/prev.json" '
  ($now[0] + $prev[0] | keys | map(select(. != "run_unix")))[] as $k
  | "| \($k) | \($now[0][$k] // "—") | \($prev[0][$k] // "—") |"'
# Sections other scripts measured (rules.sh, outbox.sh), carried over from the previous BENCHMARKS.md.
awk '/^## / { keep = ($0 ~ /\(run of /); if (keep && !n++) print "" } keep' "$W/prev.md"
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
cp "$W/figures.json" "$PLOTS/figures.json"
log "wrote $OUT and $PLOTS/*.svg in ${ELAPSED}s"
