package redisstore_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-bank/arbiter/internal/mutation"
)

// mutant is a realistic one-line bug in one of the Lua scripts: the exact
// snippet from, found exactly once in lua/<file>, replaced by to. tests
// are the contract tests that must fail with it (the shortest set known to
// kill it), run on mutantBackends.
type mutant struct {
	name  string
	file  string
	from  string
	to    string
	bug   string
	tests []string
}

// mutants is the Lua mutation run (TestMutants). Each entry keys on an
// exact snippet, so a script edit that removes one fails TestMutantSnippets
// in every test run instead of letting the list rot; update the entry with
// the script.
var mutants = []mutant{
	// check.lua
	{name: "check-no-settle", file: "prelude.lua",
		from: "  local m = meta_read(...)\n  settle(m)\n", to: "  local m = meta_read(...)\n",
		bug:   "the scripts forget to settle: an expired hold's check reads held forever",
		tests: []string{"TestContractExpirySettledByCheck"}},
	{name: "check-no-ttl", file: "prelude.lua",
		from: "redis.call('SET', K_HOLD, check_encode(c), 'PX', ttl_str)", to: "redis.call('SET', K_HOLD, check_encode(c))",
		bug:   "the hold is written without its TTL: it never expires",
		tests: []string{"TestContractExpiry"}},
	{name: "check-replay-leaks-secret", file: "check.lua",
		from: "if c ~= h then c.secret = nil end\n", to: "if c ~= h then c.secret = h and h.secret end\n",
		bug:   "an idempotent replay of an ended check returns the newer hold's TOTP secret",
		tests: []string{"TestContractReplayOfAnEndedCheck"}},
	{name: "check-ignores-rules", file: "check.lua",
		from: "evaluate(h, product, rules_of(rules),", to: "evaluate(h, product, rules_of(''),",
		bug:   "the check evaluates no limit or cooling-off: the dry run and the check disagree",
		tests: []string{"TestContractEligibilityMatchesCheck"}},
	{name: "check-refuses-two-rules", file: "check.lua",
		from: "if #vs > 0 then", to: "if #vs > 1 then",
		bug:   "off by one: a check that fails a single rule places a hold",
		tests: []string{"TestContractCheck"}},

	// cancel.lua
	{name: "cancel-any-hold", file: "cancel.lua",
		from: "if c ~= h then return reply{kind = KIND.error, reason = REASON.check_not_held", to: "if not h then return reply{kind = KIND.error, reason = REASON.check_not_held",
		bug:   "cancelling an ended check cancels the customer's newer hold",
		tests: []string{"TestContractStaleCancel"}},
	{name: "cancel-ignores-products", file: "cancel.lua",
		from:  "if allowed ~= '*' and not split(allowed)[c.product] and",
		to:    "if allowed == '' and",
		bug:   "a redeemer may cancel holds of products it does not redeem",
		tests: []string{"TestContractCancel"}},
	{name: "cancel-any-placer", file: "cancel.lua",
		from:  "(placer == '' or c.by ~= placer)",
		to:    "placer == ''",
		bug:   "a client may cancel any product's hold, as if it had placed it",
		tests: []string{"TestContractCancel"}},

	// release.lua
	{name: "release-ignores-check-id", file: "release.lua",
		from: " and (want == '' or all[i] == want)", to: "",
		bug:   "compensation by check id releases whichever grant is most recent",
		tests: []string{"TestContractReleaseByCheck"}},
	{name: "release-oldest", file: "release.lua",
		from: "if not latest or by_granted(latest, g) then", to: "if not latest or by_granted(g, latest) then",
		bug:   "a release without a check id ends the oldest grant, not the most recent",
		tests: []string{"TestContractReleaseMostRecent"}},
	{name: "release-forgets-redemption", file: "release.lua",
		from: "if latest.status == 'redeemed' then record_put(latest) end\n", to: "",
		bug:   "a released grant's check is forgotten: its replay reads hold_expired, not grant_released",
		tests: []string{"TestContractRedemptionSemantics", "TestReleasedWholeGrantIsRecorded"}},

	// import.lua
	{name: "import-no-policy", file: "import.lua",
		from: "local vs = grant_violations({}, product, rules_of(rules), h)", to: "local vs = {}",
		bug:   "an import ignores the rules: it can record a second, excluded product",
		tests: []string{"TestContractReleaseAndImport"}},
	{name: "import-reuses-fence", file: "import.lua",
		from:  "fence = next_fence(m)",
		to:    "fence = m.fence or NOW",
		bug:   "an import reuses the current fence instead of taking a new one",
		tests: []string{"TestContractFenceNeverDecreases"}},

	// prelude.lua: the fence, settle
	{name: "fence-from-clock-only", file: "prelude.lua",
		from: "return math.max((m.fence or 0) + 1, NOW)", to: "return NOW",
		bug:   "a fence is the clock alone: two holds in one millisecond, or an earlier clock, reuse a fence",
		tests: []string{"TestContractFenceNeverDecreases"}},
	{name: "settle-ended-now", file: "prelude.lua",
		from: "c.status, c.ended, c.ended_by = 'expired', c.expires, 'arbiter'", to: "c.status, c.ended, c.ended_by = 'expired', NOW, 'arbiter'",
		bug:   "an expired check is dated when it was noticed, not when its hold expired",
		tests: []string{"TestContractExpiry"}},
	{name: "settle-ignores-open", file: "prelude.lua",
		from: "  if m.open ~= '1' then return end\n", to: "  if not m.last then return end\n",
		bug:   "settle ignores the open flag: every later script records the expiry again",
		tests: []string{"TestContractExpiry"}},
	// prelude.lua: meta's shadow of the live hold
	{name: "finish-keeps-shadow", file: "prelude.lua",
		from: "  redis.call('DEL', K_HOLD)\n  shadow_drop()\n", to: "  redis.call('DEL', K_HOLD)\n",
		bug:   "ending a hold leaves meta open: the next script settles a redeemed or cancelled check as expired",
		tests: []string{"TestContractCancel"}},
	{name: "settle-ignores-shadow", file: "prelude.lua",
		from: "  local c = shadow_read()\n", to: "  local c = {id = m.last, status = 'held'}\n",
		bug:   "settle ignores meta's shadow: an expired hold's record keeps only its id",
		tests: []string{"TestSettleKeepsEveryField"}},

	// prelude.lua: evaluate and grant_violations
	{name: "block-until-ignored", file: "prelude.lua",
		from: "if b[1] and (tonumber(b[2]) == 0 or tonumber(b[2]) > NOW) then", to: "if b[1] then",
		bug:   "a block with an end date never ends",
		tests: []string{"TestContractBlockUntil"}},
	{name: "rating-boundary", file: "rules.lua",
		from: "if score < min_rating then", to: "if score <= min_rating then",
		bug:   "off by one: a score equal to min_rating is refused",
		tests: []string{"TestContractRatingBoundary"}},
	{name: "hold-same-product-only", file: "rules.lua",
		from:  "  if h then\n    table.insert(vs, violation(REASON.hold_exists",
		to:    "  if h and h.product == product then\n    table.insert(vs, violation(REASON.hold_exists",
		bug:   "a live hold blocks only checks of its own product",
		tests: []string{"TestContractCheck"}},
	{name: "max-off-by-one", file: "rules.lua",
		from: "if #held > 0 and #held + 1 > l.max then", to: "if #held > 0 and #held > l.max then",
		bug:   "a product's max lets one more grant through",
		tests: []string{"TestContractMax"}},
	{name: "limit-counts-every-grant", file: "rules.lua",
		from: "    if l.set[g.product] then held[#held + 1] = g end\n", to: "    held[#held + 1] = g\n",
		bug:   "a limit counts the grants of every related product, not its own set's",
		tests: []string{"TestContractRedeemToken", "TestContractFamilyLimit"}},
	// prelude.lua: an open reconciliation case holds the line
	{name: "check-ignores-case", file: "rules.lua",
		from: "  if case_open then table.insert(vs, case_open) end\n", to: "",
		bug:   "a check (and the dry run) ignores the customer's open case: a third product is held while a double holding awaits its resolution",
		tests: []string{"TestContractCaseHoldsTheLine"}},
	{name: "related-own-product-only", file: "rules.lua",
		from:  "      for _, p in ipairs(products) do r.related[p] = true end\n",
		to:    "      if t[2] == 'p' then for _, p in ipairs(products) do r.related[p] = true end end\n",
		bug:   "an open case about a product does not hold the line of the products sharing a limit with it",
		tests: []string{"TestContractCaseHoldsTheLine"}},
	{name: "audit-cap-off-by-one", file: "prelude.lua",
		from: "redis.call('LTRIM', key, 0, cap - 1)", to: "redis.call('LTRIM', key, 0, cap)",
		bug:   "off by one: the audit keeps one event more than its cap",
		tests: []string{"TestContractAuditCap"}},
	{name: "audit-refusals-with-state", file: "prelude.lua",
		from: "if attempt then key, cap = K_TRIES, TRIES_CAP end", to: "",
		bug:   "refusals share the state changes' list and evict the record of a grant",
		tests: []string{"TestContractRefusalsNeverEvictStateChanges"}},
	{name: "outbox-skips-attempts", file: "prelude.lua",
		from: "  audit_push(encs, attempt)\n  outbox_push(encs)", to: "  audit_push(encs, attempt)\n  if not attempt then outbox_push(encs) end",
		bug:   "refusals and wrong codes reach the audit but never the archive",
		tests: []string{"TestOutboxCarriesEveryDecision"}},
	{name: "outbox-unbounded", file: "prelude.lua",
		from: "return OUTBOX_CAP > 0 and redis.call('XLEN', K_OUTBOX) >= OUTBOX_CAP", to: "return false",
		bug:   "decisions go on past the outbox's bound, so Redis fills while the archive is down",
		tests: []string{"TestOutboxFullRefusesDecisions"}},
	{name: "expiry-not-indexed", file: "prelude.lua",
		from: "if OUTBOX_CAP > 0 then redis.call('ZADD', K_EXPIRING, expires, customer_id()) end", to: "",
		bug:   "a hold nobody touches again is never recorded as expired, nor announced",
		tests: []string{"TestSweepRecordsUntouchedExpiry"}},
	{name: "seq-restarts", file: "prelude.lua",
		from: "  if seq == n then\n    seq = NOW + n - 1", to: "  if true then\n    seq = NOW + n - 1",
		bug:   "every step numbers its records from the clock, so a customer's sequence has gaps and repeats",
		tests: []string{"TestOutboxCarriesEveryDecision"}},
	// prelude.lua: compact grants (COMPACT_GRANTS) only when asked
	{name: "grant-always-compact", file: "prelude.lua",
		from: "COMPACT_GRANTS == '1' and grant_compact(c) or enc", to: "grant_compact(c)",
		bug:   "a redemption writes g1 with compact grants off: the previous release, serving beside this one, fails on that customer",
		tests: []string{"TestWholeGrantsServeThePreviousRelease"}},
	{name: "grant-never-compact", file: "prelude.lua",
		from: "COMPACT_GRANTS == '1' and grant_compact(c) or enc", to: "enc",
		bug:   "a redemption writes the whole check with compact grants on: the ledger leaves listpack",
		tests: []string{"TestWholeGrantsServeThePreviousRelease"}},
	{name: "grant-always-recorded", file: "prelude.lua",
		from: "if status ~= 'redeemed' or COMPACT_GRANTS == '1' then record_put(c) end", to: "record_put(c)",
		bug:   "a redemption with compact grants off writes a record too: three commands the previous release did not send",
		tests: []string{"TestWholeGrantsServeThePreviousRelease"}},
	{name: "grant-never-recorded", file: "prelude.lua",
		from: "if status ~= 'redeemed' or COMPACT_GRANTS == '1' then record_put(c) end", to: "if status ~= 'redeemed' then record_put(c) end",
		bug:   "a g1 grant's check is not recorded: its replay cannot prove the code or token",
		tests: []string{"TestWholeGrantsServeThePreviousRelease", "TestContractTokenSecret"}},
	{name: "migrate-compacts-when-off", file: "migrate.lua",
		from: "local compact = COMPACT_GRANTS == '1'", to: "local compact = true",
		bug:   "arbiter migrate with compact grants off makes grants g1, which the previous release cannot read",
		tests: []string{"TestMigrateCompactsOnlyWhenOn"}},
	{name: "migrate-never-compacts", file: "migrate.lua",
		from: "local compact = COMPACT_GRANTS == '1'", to: "local compact = false",
		bug:   "arbiter migrate with compact grants on leaves whole grants: the memory is not saved",
		tests: []string{"TestMigrateCompactsOnlyWhenOn", "TestMigrate"}},
	{name: "record-kept-forever", file: "prelude.lua",
		from: "tonumber(c.ended or 0) + RETENTION < NOW then return nil end", to: "false then return nil end",
		bug:   "an ended check stays readable past the retention",
		tests: []string{"TestContractPrunesOldChecks"}},

	// redeem_token.lua, redeem_otp.lua, redeem.lua
	{name: "redeem-token-any-hold", file: "redeem_token.lua",
		from: "if not h or h.id ~= id then", to: "if not h then",
		bug:   "a token of an ended check redeems the customer's newer hold",
		tests: []string{"TestContractStaleToken"}},
	{name: "redeem-token-any-secret", file: "redeem_token.lua",
		from: "local function token_ok(c) return (c.token or '') == token end", to: "local function token_ok(c) return true end",
		bug:   "a token's secret is not compared with its check's digest: a forged token (no signature is verified when it has one) redeems any check",
		tests: []string{"TestContractTokenSecret"}},
	{name: "redeem-token-replay-any-secret", file: "redeem.lua",
		from: "    if accept and not accept(proof) then", to: "    if false then",
		bug:   "a replay of a grant by token does not compare the token's secret: a forged token learns the grant",
		tests: []string{"TestContractTokenSecret"}},
	{name: "redeem-token-any-product", file: "redeem_token.lua",
		from: "if h.product ~= product then return reply{kind = KIND.error, reason = REASON.token_invalid, detail = 'product'} end\n", to: "",
		bug:   "a redemption for another product than the hold's is granted",
		tests: []string{"TestContractRedeemOtherProduct"}},
	{name: "redeem-lockout-early", file: "redeem_otp.lua",
		from: "if fails >= max_attempts then", to: "if fails >= max_attempts - 1 then",
		bug:   "off by one: the hold burns on the 4th wrong code, not the 5th",
		tests: []string{"TestContractRedeemOTP"}},
	{name: "redeem-lockout-late", file: "redeem_otp.lua",
		from: "if fails >= max_attempts then", to: "if fails > max_attempts then",
		bug:   "off by one: the hold burns on the 6th wrong code, not the 5th",
		tests: []string{"TestContractOTPLockout"}},
	{name: "redeem-fails-not-reset", file: "prelude.lua",
		from: "'last:' .. c.product, c.id, 'fails', '0',\n", to: "'last:' .. c.product, c.id,\n",
		bug:   "a new hold inherits the wrong codes of the customer's previous hold",
		tests: []string{"TestContractOTPLockout"}},
	{name: "redeem-token-ignores-case", file: "redeem_token.lua",
		from: "local refused = case_refusal(h, actor)\nif refused then return refused end\n", to: "",
		bug:   "a token redeems a hold placed before the customer's case opened, while it is open",
		tests: []string{"TestContractCaseHoldsTheLine"}},
	{name: "redeem-otp-ignores-case", file: "redeem_otp.lua",
		from: "local refused = case_refusal(h, actor)\nif refused then return refused end\n", to: "",
		bug:   "an OTP redeems a hold placed before the customer's case opened, while it is open",
		tests: []string{"TestContractCaseHoldsTheLine"}},
	{name: "redeem-case-own-product", file: "redeem.lua",
		from: "local v = case_violation(RULES)", to: "local v = case_violation(rules_of('L|p|1||' .. h.product))",
		bug:   "a redemption ignores an open case about a product of its group",
		tests: []string{"TestContractCaseHoldsTheLine"}},
	{name: "redeem-no-policy-recheck", file: "redeem.lua",
		from: "local vs = grant_violations({}, h.product, RULES, nil)", to: "local vs = {}",
		bug:   "a redemption does not re-apply the rules: an import since the check makes a double grant",
		tests: []string{"TestContractRedeemReappliesThePolicy"}},

	// rules.lua: the engine's limits and cooling-off periods
	{name: "family-off-by-one", file: "rules.lua",
		from: "if count + 1 > l.max then", to: "if count > l.max then",
		bug:   "a family limit lets one more product of the family through",
		tests: []string{"TestContractFamilyLimit", "TestRuleEngineDifferential"}},
	{name: "family-ignores-hold", file: "rules.lua",
		from: "    if h and l.set[h.product] then count = count + 1 end\n", to: "",
		bug:   "a family limit does not count the live hold: an import beside a live hold fills the family past its limit",
		tests: []string{"TestContractFamilyLimit", "TestRuleEngineDifferential"}},
	{name: "family-ignores-kind", file: "rules.lua",
		from: "  elseif l.scope == 'f' then", to: "  elseif l.scope == 'F' then",
		bug:   "the engine does not know a family limit (it errors instead of applying it)",
		tests: []string{"TestContractFamilyLimit"}},
	{name: "cooling-boundary", file: "rules.lua",
		from: "NOW < e + c.period", to: "NOW <= e + c.period",
		bug:   "a cooling-off period still refuses at its very end",
		tests: []string{"TestContractCoolingOff"}},
	{name: "cooling-first-end", file: "rules.lua",
		from: "(not last_at or e > last_at)", to: "(not last_at or e < last_at)",
		bug:   "a cooling-off refusal names the product that ended first, and an end date earlier than the one in force",
		tests: []string{"TestRuleEngineDifferential"}},
	{name: "cooling-at-check-only", file: "rules.lua",
		from:  "  for _, c in ipairs(rules.cooling) do rule_cooling_off(vs, c) end\n",
		to:    "  if h then for _, c in ipairs(rules.cooling) do rule_cooling_off(vs, c) end end\n",
		bug:   "cooling-off is applied only beside a live hold: a check or a redemption after an end passes",
		tests: []string{"TestContractCoolingOff"}},
	{name: "meta-expiry-shortened", file: "prelude.lua",
		from:  "  if redis.call('PTTL', K_META) < keep then redis.call('PEXPIRE', K_META, keep) end\n",
		to:    "  redis.call('PEXPIRE', K_META, keep)\n",
		bug:   "a tombstone or an import cuts meta's life short: with a day of audit it ends before a hold placed within the day",
		tests: []string{"TestMetaExpiryIsNeverShortened"}},
	{name: "long-hold-outlives-meta", file: "prelude.lua",
		from:  "math.max(AUDIT_RETENTION + 2 * META_RENEW, tonumber(ttl_str) + AUDIT_RETENTION)",
		to:    "AUDIT_RETENTION + 2 * META_RENEW",
		bug:   "a hold longer than the retention and two days outlives meta, and its shadow with it",
		tests: []string{"TestLongHoldKeepsItsMeta"}},
	{name: "ended-expiry-shortened", file: "prelude.lua",
		from:  "  if redis.call('PTTL', K_ENDED) < keep then redis.call('PEXPIRE', K_ENDED, keep) end\n",
		to:    "  redis.call('PEXPIRE', K_ENDED, keep)\n",
		bug:   "a release asking a shorter keep cuts short how long earlier ends are remembered",
		tests: []string{"TestEndedKeptForTheLongestKeep"}},
	{name: "release-forgets-end", file: "release.lua",
		from: "ended_put(product, keep_ended)\n", to: "",
		bug:   "a release does not record when the product ended: no cooling-off ever applies",
		tests: []string{"TestContractCoolingOff"}},
	// The replay, abandonment and OTP-limit rules of "Exclusivity across
	// systems" and "Hardening".
	{name: "redeem-replays-released", file: "redeem.lua",
		from: "if c.status == 'redeemed' then return reply{kind = KIND.error, reason = REASON.grant_released, detail = id} end\n", to: "",
		bug:   "a redemption replays a grant that was released since",
		tests: []string{"TestContractRedemptionSemantics"}},
	{name: "redeem-replay-any-code", file: "redeem.lua",
		from: "if code and proof.otp ~= otp_digest(id, code) then", to: "if false then",
		bug:   "an OTP replay answers 200 without the code that redeemed the check",
		tests: []string{"TestContractRedemptionSemantics"}},
	{name: "redeem-replay-any-client", file: "redeem.lua",
		from: "if g.redeemed_by ~= actor then", to: "if false then",
		bug:   "another redeemer's replay gets the grant instead of already_redeemed",
		tests: []string{"TestContractRedemptionSemantics"}},
	{name: "redeem-otp-limit-per-hold", file: "redeem_otp.lua",
		from: "if cfails >= otp_budget then", to: "if false then",
		bug:   "wrong codes are limited per hold only: check, guess, cancel, repeat",
		tests: []string{"TestContractOTPLimitAcrossHolds"}},
	{name: "check-ignores-tombstone", file: "check.lua",
		from: "if m.asked['t:' .. id] then return reply{kind = KIND.error, reason = REASON.check_abandoned} end\n", to: "",
		bug:   "a check script Redis runs after arbiter gave it up places a ghost hold",
		tests: []string{"TestContractAbandon"}},
	{name: "abandon-ignores-delivery", file: "abandon.lua",
		from: "if c.delivered then return reply{kind = KIND.ok, detail = 'delivered'} end\n", to: "",
		bug:   "abandoning cancels a hold an idempotent replay already gave its client",
		tests: []string{"TestContractAbandon"}},
}

// mutantsEnv turns TestMutants on: each mutant costs a build and a test run.
const mutantsEnv = mutation.Env

// mutantBackends are the contract backends the mutation run uses: the real
// thing and the embedded one; the cluster and ACL backends run the same
// scripts and cost seconds more.
const mutantBackends = "^(redis|miniredis)$"

// TestMutantSnippets runs always: every mutant's snippet is in its script
// exactly once and every test named to kill it exists, so the list fails
// loudly, not silently, when a script or a test changes under it.
func TestMutantSnippets(t *testing.T) {
	tests := mutation.TestFuncs(t, ".")
	names := map[string]bool{}
	for _, m := range mutants {
		if names[m.name] {
			t.Errorf("mutant %s is listed twice", m.name)
		}
		names[m.name] = true
		src, err := os.ReadFile(filepath.Join("lua", m.file))
		if err != nil {
			t.Errorf("mutant %s: %v", m.name, err)
			continue
		}
		if got, want := strings.Count(string(src), m.from), 1; got != want {
			t.Errorf("mutant %s: lua/%s contains its snippet %d times, want %d: update the mutant with the script\nsnippet: %q", m.name, m.file, got, want, m.from)
		}
		if m.from == m.to || m.bug == "" || len(m.tests) == 0 {
			t.Errorf("mutant %s: needs a change, a bug and the tests that kill it", m.name)
		}
		for _, name := range m.tests {
			if !tests[name] {
				t.Errorf("mutant %s: no test %s in this package", m.name, name)
			}
		}
	}
}

// TestMutants applies each mutant at build time (go test -overlay, which
// also replaces //go:embed'ed files; nothing in the tree is modified), runs
// the tests that should kill it, and fails listing the mutants that
// survived. A control run first proves those tests pass on the real
// scripts, so a kill is the mutant's doing. Run it with
//
//	ARBITER_MUTANTS=1 go test -v -run TestMutants ./validation/redisstore/
//
// and one mutant with -run 'TestMutants/<name>' (the control runs too).
func TestMutants(t *testing.T) {
	if os.Getenv(mutantsEnv) != "1" {
		t.Skipf("set %s=1 to run the Lua mutation run (about %d go test runs)", mutantsEnv, len(mutants)+1)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the mutation run needs the go command: %v", err)
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()

	var all []string
	for _, m := range mutants {
		all = append(all, m.tests...)
	}
	if out, ok := goTest(t, goTool, "", all); !ok {
		t.Fatalf("control: the kill tests fail on the real scripts:\n%s", out)
	}
	t.Logf("control: the %d kill tests pass on the real scripts", len(slices.Compact(slices.Sorted(slices.Values(all)))))

	var run, survived []string
	for _, m := range mutants {
		t.Run(m.name, func(t *testing.T) {
			run = append(run, m.name)
			out, ok := goTest(t, goTool, mutation.Overlay(t, filepath.Join(dir, "lua", m.file), m.from, m.to), m.tests)
			fails := mutation.Failures(out)
			switch {
			case ok:
				survived = append(survived, m.name)
				t.Errorf("SURVIVED lua/%s: %s (%s passed)", m.file, m.bug, strings.Join(m.tests, ", "))
			case len(fails) == 0:
				t.Errorf("lua/%s: go test failed without a failing test (not a kill):\n%s", m.file, out)
			default:
				t.Logf("killed lua/%s: %s; by %s", m.file, m.bug, strings.Join(fails, ", "))
			}
		})
	}
	t.Logf("mutation score: %d/%d killed in %s", len(run)-len(survived), len(run), time.Since(start).Round(time.Second))
	if len(survived) > 0 {
		t.Errorf("surviving mutants: %s", strings.Join(survived, ", "))
	}
}

// goTest runs the named contract tests of this package on mutantBackends
// (with the overlay, unless it is ""), without -race for speed, and returns
// the output and whether they passed. Tests that match nothing never pass.
func goTest(tb testing.TB, goTool, overlay string, tests []string) (string, bool) {
	tb.Helper()
	args := []string{"test", "-count=1", "-timeout=3m"}
	if overlay != "" {
		args = append(args, "-overlay="+overlay)
	}
	pattern := fmt.Sprintf("^(%s)$/%s", strings.Join(tests, "|"), mutantBackends)
	args = append(args, "-run="+pattern, ".")
	cmd := exec.Command(goTool, args...)
	cmd.Env = mutation.Environ()
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "no tests to run") {
		tb.Fatalf("go test -run %q matched no test:\n%s", pattern, out)
	}
	return string(out), err == nil
}
