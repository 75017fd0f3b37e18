#!/usr/bin/env bash
# deploy/bench/outbox.sh: what the durable record costs Redis, in the same
# run: Redis µs and bytes per check and per refusal with the outbox off and
# on (rounds interleaved on one redis-server, medians printed), then the
# records/s an Exporter moves from the outboxes into a PostgreSQL started
# here, and the bytes per customer Redis keeps once they are archived. It
# builds validation/redisstore's TestOutboxCost and asserts nothing: the
# figures go to BENCHMARKS.md. Needs redis-server and PostgreSQL's server
# binaries (run as root, PostgreSQL runs as the postgres user).
#
#   deploy/bench/outbox.sh                 # ROUNDS=7 N=5000
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-7}; N=${N:-5000}
W=$(mktemp -d /tmp/arbiter-outbox.XXXXXX)
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() { kill "${RP:-}" 2>/dev/null || true; as_pg "$PGBIN/pg_ctl" -D "$W/pg" -m fast stop >/dev/null 2>&1 || true; rm -rf "$W"; }
trap cleanup EXIT
go test -c -o "$W/probe.test" ./validation/redisstore/
[ "$(id -u)" = 0 ] && chown postgres "$W"
PGPORT=$((20000 + RANDOM % 20000)); PORT=$((PGPORT + 1))
as_pg "$PGBIN/initdb" -D "$W/pg" -A trust -U postgres >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$W/pg" -l "$W/pg.log" -o "-p $PGPORT -k $W -c listen_addresses=127.0.0.1" -w start >/dev/null  # fsync on, as in production
redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no --dir "$W" --logfile "$W/redis.log" &
RP=$!
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
for r in $(seq "$ROUNDS"); do
  for v in off on; do
    pg=""; [ "$v" = on ] && [ "$r" = "$ROUNDS" ] && pg="postgres://postgres@127.0.0.1:$PGPORT/postgres"
    PROBE_REDIS=redis://127.0.0.1:$PORT PROBE_N=$N PROBE_TAG=$v PROBE_OUTBOX=$([ $v = on ] && echo 1 || echo 0) PROBE_PG=$pg \
      "$W/probe.test" -test.run '^TestOutboxCost$' -test.count=1 | grep '^PROBE'
  done
done | tee "$W/probe.txt"
med() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
for v in off on; do
  for f in check refusal check_bytes refusal_bytes; do
    printf 'median %s %s: %s\n' "$v" "$f" "$(grep "^PROBE $v " "$W/probe.txt" | tr ' ' '\n' | grep "^$f=" | cut -d= -f2 | med)"
  done
done
grep -o 'export_per_s=[0-9]*\|kept_bytes=[0-9]*' "$W/probe.txt" | tail -3
