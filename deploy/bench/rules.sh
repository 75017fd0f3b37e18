#!/usr/bin/env bash
# deploy/bench/rules.sh: Redis µs per check and per refusal of this tree
# beside a base revision (default: the release before the rule engine), in
# the same run, on one redis-server, rounds interleaved (base, head, head
# under a policy with a family limit and a cooling-off rule), medians
# printed. It builds validation/redisstore's TestRuleCost at both
# revisions (copying the probe into the base's tree, in a temporary
# worktree) and asserts nothing: the figures go to BENCHMARKS.md.
#
#   deploy/bench/rules.sh                 # BASE=ddb18c0 ROUNDS=7 N=5000
set -euo pipefail
cd "$(dirname "$0")/../.."
BASE=${BASE:-ddb18c0}; ROUNDS=${ROUNDS:-7}; N=${N:-5000}
W=$(mktemp -d /tmp/arbiter-rules.XXXXXX)
cleanup() { kill "${RP:-}" 2>/dev/null || true; git worktree remove --force "$W/base" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
go test -c -o "$W/head.test" ./validation/redisstore/
git worktree add -q --detach "$W/base" "$BASE"
cp validation/redisstore/rulecost_test.go "$W/base/validation/redisstore/"
cat >"$W/base/validation/redisstore/rulecost_policy_test.go" <<'GO'
package redisstore_test

import "github.com/arbiter-bank/arbiter/validation"

func rulesPolicy() *validation.Policy { return validation.DefaultPolicy() }
GO
(cd "$W/base" && go test -c -o "$W/base.test" ./validation/redisstore/)
PORT=$((20000 + RANDOM % 20000))
redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no --dir "$W" --logfile "$W/redis.log" &
RP=$!
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
for _ in $(seq "$ROUNDS"); do
  for v in base head rules; do
    bin=$W/$v.test; [ "$v" = rules ] && bin=$W/head.test
    PROBE_REDIS=redis://127.0.0.1:$PORT PROBE_N=$N PROBE_TAG=$v PROBE_POLICY=$v "$bin" -test.run '^TestRuleCost$' -test.count=1 | grep '^PROBE'
  done
done | tee "$W/probe.txt"
awk '/^PROBE/ { split($3, c, "="); split($4, r, "="); checks[$2] = checks[$2] " " c[2]; refusals[$2] = refusals[$2] " " r[2] }
  END { for (v in checks) print v, "check", checks[v], "| refusal", refusals[v] }' "$W/probe.txt" |
while read -r v _ rest; do
  med() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
  c=$(echo "${rest%%|*}" | med); r=$(echo "${rest#*refusal}" | med)
  echo "median $v: check $c µs, refusal $r µs"
done
