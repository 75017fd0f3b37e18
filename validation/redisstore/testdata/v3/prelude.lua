local K_META, K_HOLD, K_GRANTS, K_CHECKS, K_AUDIT, K_BLOCK, K_RATING, K_TRIES, K_CASE, K_ENDED, K_OUTBOX, K_EXPIRING, K_IDEM = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local NOW, NOW_STR, AUDIT_CAP, RETENTION, RETENTION_STR, AUDIT_RETENTION, AUDIT_RETENTION_STR, OUTBOX_CAP = tonumber(ARGV[1]), ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[3], tonumber(ARGV[4]), ARGV[4], tonumber(ARGV[5])
local KIND = {ok = 'ok', held = 'held', granted = 'granted', replay = 'replay', refused = 'refused', need_rating = 'need_rating', error = 'error'}
local REASON = {customer_blocked = 'customer_blocked', case_open = 'case_open', rating_too_low = 'rating_too_low', already_holds_product = 'already_holds_product', conflicting_product = 'conflicting_product', family_limit = 'family_limit', cooling_off = 'cooling_off', hold_exists = 'hold_exists', hold_expired = 'hold_expired', already_redeemed = 'already_redeemed', otp_locked = 'otp_locked', otp_rate_limited = 'otp_rate_limited', grant_released = 'grant_released', otp_invalid = 'otp_invalid', token_invalid = 'token_invalid', check_not_held = 'check_not_held', check_not_found = 'check_not_found', forbidden = 'forbidden', idempotency_key_reused = 'idempotency_key_reused', check_abandoned = 'check_abandoned', grant_not_found = 'grant_not_found', not_found = 'not_found', outbox_full = 'outbox_full'}
local function violation(reason, v)
  v.reason = reason
  return v
end
local SEP = '\31'
local RETIRED = 'arbiter: value in a retired encoding; run arbiter migrate'
local function check_encode(c)
  return 'c2' .. SEP .. (c.id or '') .. SEP .. (c.product or '') .. SEP .. (c.status or '') .. SEP .. (c.fence or '') .. SEP .. (c.created or '') .. SEP .. (c.expires or '') .. SEP .. (c.by or '') .. SEP .. (c.agent or '') .. SEP .. (c.secret or '') .. SEP .. (c.delivered or '') .. SEP .. (c.redeemed_by or '') .. SEP .. (c.granted or '') .. SEP .. (c.ended or '') .. SEP .. (c.ended_by or '') .. SEP .. (c.end_reason or '') .. SEP .. (c.otp or '') .. SEP .. (c.token or '') .. SEP .. (c.version or '') .. SEP .. (c.granted_version or '')
end
local function event_encode(ev)
  return 'e2' .. SEP .. (ev.type or '') .. SEP .. (ev.at or '') .. SEP .. (ev.product or '') .. SEP .. (ev.check_id or '') .. SEP .. (ev.actor or '') .. SEP .. (ev.agent or '') .. SEP .. (ev.reason or '') .. SEP .. (ev.note or '') .. SEP .. (ev.fence or '') .. SEP .. (ev.reasons or '') .. SEP .. (ev.version or '')
end
local function check_fields(v)
  local f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18, f19 = string.match(v, '^c2\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31?([^\31]*)\31?([^\31]*)\31?([^\31]*)')
  if not f1 then error(RETIRED) end
  return {id = f1 ~= '' and f1 or nil, product = f2 ~= '' and f2 or nil, status = f3 ~= '' and f3 or nil, fence = f4 ~= '' and f4 or nil, created = f5 ~= '' and f5 or nil, expires = f6 ~= '' and f6 or nil, by = f7 ~= '' and f7 or nil, agent = f8 ~= '' and f8 or nil, secret = f9 ~= '' and f9 or nil, delivered = f10 ~= '' and f10 or nil, redeemed_by = f11 ~= '' and f11 or nil, granted = f12 ~= '' and f12 or nil, ended = f13 ~= '' and f13 or nil, ended_by = f14 ~= '' and f14 or nil, end_reason = f15 ~= '' and f15 or nil, otp = f16 ~= '' and f16 or nil, token = f17 ~= '' and f17 or nil, version = f18 ~= '' and f18 or nil, granted_version = f19 ~= '' and f19 or nil}
end
local HELD = {'id', 'product', 'fence', 'created', 'expires', 'by', 'agent', 'delivered', 'token', 'version'}
local HELD_KEYS = {'h.id', 'h.product', 'h.fence', 'h.created', 'h.expires', 'h.by', 'h.agent', 'h.delivered', 'h.token', 'h.version'}
local function held_fields(c)
  return 'h.id', c.id or '', 'h.product', c.product or '', 'h.fence', c.fence or '', 'h.created', c.created or '', 'h.expires', c.expires or '', 'h.by', c.by or '', 'h.agent', c.agent or '', 'h.delivered', c.delivered or '', 'h.token', c.token or '', 'h.version', c.version or ''
end
local function check_product(v)
  return string.match(v, '^c2\31[^\31]*\31([^\31]*)')
end
-- The data model, shared by every arbiter script. script() in scripts.go
-- puts in front of it the generated lines that name KEYS (K_META, K_HOLD,
-- ...: every key of one customer, under its hash tag, so each script runs
-- unchanged on Redis Cluster) and the common ARGV (NOW, AUDIT_CAP,
-- RETENTION, AUDIT_RETENTION); a script's own ARGV are named the same way
-- from its Go argument struct (contract.go). The key layout is in docs/architecture.md.
-- What a reply may say is declared in contract.go too, and generated in
-- front of this prelude: KIND.<kind>, REASON.<reason> and violation(reason,
-- v); a script writes no kind, error reason or violation any other way.
--
-- Each section below owns one key's encoding: no script reads or writes a
-- key except through its section. Changing how a check (and so the hold
-- and a grant) is stored touches storedCheck in codec.go.

-- EXPIRED becomes 1 when settle records an expiry; every reply carries it
-- (scripts.go wraps each script's body), so arbiter can count expiries.
local EXPIRED = 0
local TRIES_CAP = 100

-- ## check: one encoding for a check wherever it lives
-- A check is one string: 'c2' and its fields joined by SEP ('\31'; no
-- field may contain it: ids, products and client names cannot, agents
-- exclude control characters). The live hold, an ended check and a grant
-- are all this encoding, so a check never changes shape as it moves (meta
-- shadows the live hold field by field, see hold). check_encode(c) and
-- check_fields(v) are generated from storedCheck in codec.go (luaCodec),
-- straight-line code with no table of names, and put in front of this
-- prelude; a field is added there (tagged held, if a held check has
-- it).
-- Numbers are kept as written (milliseconds and fences print exactly).
-- Every value is in this one encoding: arbiter migrate rewrote what earlier
-- releases wrote before this one was deployed. check_fields and
-- grant_product raise RETIRED (generated too) on a value it missed, rather
-- than read it as no check (and so as no grant, which would let a rule
-- pass).

-- check_decode returns the check a value encodes (nil for none); empty
-- fields are nil.
local function check_decode(v)
  if not v then return nil end
  return check_fields(v)
end

-- ## outbox: the durable record's way out (K_OUTBOX, a stream in the
-- customer's slot, shared by every customer of that slot; K_EXPIRING, the
-- slot's expiry index). With OUTBOX_CAP above 0 (an archive is
-- configured), every event of a decision is also appended to the outbox in
-- the same step, with the customer's next sequence number (meta's seq),
-- and every live hold is in the expiry index, scored by its expiry, so a
-- sweeper settles the holds nobody touches (sweep.lua). The exporter
-- (validation.Exporter) moves the outbox to the archive and only then
-- trims it. The layout of a slot's keys is in outbox.go.

-- customer_id is the customer the script runs for (K_META is
-- 'arb:{' .. customer .. '}:meta'). It is not cached: the function
-- library keeps locals from call to call.
local function customer_id() return string.sub(K_META, 6, -7) end

-- outbox_full says whether the slot's outbox reached OUTBOX_CAP: every
-- script that decides calls it before its first write (luaGuard in
-- scripts.go) and refuses with outbox_full, so that no decision is ever
-- made without its record, nor its record dropped. A recorded expiry is
-- not a decision: settle appends it past the cap, at most once per hold
-- that was already live.
local function outbox_full() return OUTBOX_CAP > 0 and redis.call('XLEN', K_OUTBOX) >= OUTBOX_CAP end

-- outbox_push appends encoded events, oldest first, with the customer's
-- next sequence numbers. A customer without one (meta expired, or never
-- written) starts from the clock, past every number given before (see
-- validation.Record.Seq); meta written here for the first time expires like
-- a hold's.
local function outbox_push(encs)
  if OUTBOX_CAP <= 0 then return end
  local n = #encs
  local seq = redis.call('HINCRBY', K_META, 'seq', n)
  if seq == n then
    seq = NOW + n - 1
    redis.call('HSET', K_META, 'seq', string.format('%d', seq))
    if redis.call('PTTL', K_META) < 0 then redis.call('PEXPIRE', K_META, AUDIT_RETENTION + 2 * 86400000) end
  end
  local customer = customer_id()
  for i, enc in ipairs(encs) do
    redis.call('XADD', K_OUTBOX, '*', 'c', customer, 's', string.format('%d', seq - n + i), 'e', enc)
  end
end

-- expiring_put and expiring_drop keep the customer's live hold in the
-- slot's expiry index.
local function expiring_put(expires)
  if OUTBOX_CAP > 0 then redis.call('ZADD', K_EXPIRING, expires, customer_id()) end
end
local function expiring_drop()
  if OUTBOX_CAP > 0 then redis.call('ZREM', K_EXPIRING, customer_id()) end
end

-- ## events: the audit trail (K_AUDIT state changes, K_TRIES attempts)
-- An event is one string, 'e2' and its fields joined by SEP
-- (event_encode, generated from storedEvent in codec.go). State changes
-- and attempts that changed nothing (refused, otp_failed) are kept apart,
-- each capped, so no number of refusals can evict the record of a grant;
-- state changes expire AUDIT_RETENTION after the newest, attempts
-- AUDIT_RETENTION after the oldest kept (their list begins again then).
-- event_encodes encodes events in place.
local function event_encodes(evs)
  for i, ev in ipairs(evs) do
    ev.at = ev.at or NOW_STR
    if ev.reasons then ev.reasons = table.concat(ev.reasons, ',') end
    evs[i] = event_encode(ev)
  end
  return evs
end

-- audit_push appends encoded events, oldest first, all of one kind
-- (attempt says which) to the audit.
local function audit_push(encs, attempt)
  local key, cap = K_AUDIT, AUDIT_CAP
  if attempt then key, cap = K_TRIES, TRIES_CAP end
  local n = redis.call('LPUSH', key, unpack(encs))
  if n > cap then
    redis.call('LTRIM', key, 0, cap - 1)
  end
  -- Attempts are noise next to state changes: their list expires
  -- AUDIT_RETENTION after it began, which saves a refusal a command.
  if key == K_AUDIT or n == #encs then redis.call('PEXPIRE', key, AUDIT_RETENTION_STR) end
end

-- events_append records events, oldest first, all of one kind: in the
-- audit and in the outbox.
local function events_append(...)
  local evs = {...}
  local attempt = evs[1].type == 'refused' or evs[1].type == 'otp_failed'
  local encs = event_encodes(evs)
  audit_push(encs, attempt)
  outbox_push(encs)
end

-- checked is the event of a hold's placing. It is appended when the hold
-- ends, with the event that ends it (one write instead of two); until then
-- the audit script reads it from the live hold.
local function checked(c)
  return {type = 'checked', at = c.created, product = c.product, check_id = c.id, actor = c.by, agent = c.agent, fence = c.fence,
    version = c.version}
end

-- ## records: ended checks (K_CHECKS), readable for RETENTION
-- A redeemed check is its grant instead (see grants); it becomes a record
-- only when the grant is released.
local RECORDS_PRUNE_AT = 64

-- record_get returns the record of check id, unless it ended longer than
-- RETENTION ago (it is pruned later, see record_put).
local function record_get(id)
  local c = check_decode(redis.call('HGET', K_CHECKS, id))
  if c and c.status ~= 'held' and tonumber(c.ended or 0) + RETENTION < NOW then return nil end
  return c
end

local function record_put(c)
  c.secret = nil
  if redis.call('HSET', K_CHECKS, c.id, check_encode(c)) == 1 and redis.call('HLEN', K_CHECKS) % RECORDS_PRUNE_AT == 0 then
    -- Bounded: a busy customer's hash never expires, so drop what ended
    -- longer than RETENTION ago, each time the hash has grown by
    -- RECORDS_PRUNE_AT records (so the scan costs O(1) per record written).
    -- The script has written by now, so a record in a retired encoding
    -- (one arbiter migrate missed) is left for the migration, not raised
    -- on: an error here would end the script half-way.
    local all = redis.call('HGETALL', K_CHECKS)
    for i = 1, #all, 2 do
      local ok, old = pcall(check_decode, all[i + 1])
      if ok and old.status ~= 'held' and tonumber(old.ended or 0) + RETENTION < NOW then redis.call('HDEL', K_CHECKS, all[i]) end
    end
  end
  redis.call('PEXPIRE', K_CHECKS, RETENTION_STR)
end

-- ## grants: the ledger (K_GRANTS: check id -> the redeemed check)
local function grant_get(id)
  return check_decode(redis.call('HGET', K_GRANTS, id))
end

-- grant_product reads only a grant's product, so rules never decode the
-- grants they do not concern.
local function grant_product(raw)
  return check_product(raw) or error(RETIRED)
end

local function grant_put(c)
  c.secret = nil
  local enc = check_encode(c)
  redis.call('HSET', K_GRANTS, c.id, enc)
  return enc
end

-- check_find returns an ended check by id: its grant, or its record.
-- Imported grants were never checks.
local function check_find(id)
  local g = grant_get(id)
  if g and g.status ~= 'imported' then return g end
  return record_get(id)
end

-- ## meta: K_META, a hash: fence (the newest fence), last (newest check
-- id), open ('1' while its hold may be live) and h.<field> (that hold's
-- check, see hold), last:<product> (newest check of each product),
-- fails (wrong codes on the live hold), otp_fails and otp_since (wrong
-- codes of the customer in the current window), t:<id> (tombstones, see
-- abandon), seq (the customer's last record number, with an outbox: see
-- outbox_push, which also gives meta its expiry when it writes it first).
-- Every value is short, so meta stays a listpack: a hash with
-- one value over hash-max-listpack-value (64 bytes by default) becomes a
-- hash table for good, three times the bytes. It expires AUDIT_RETENTION
-- after the newest hold.
--
-- meta_read reads open, last, fence and ttl_at, and the fields its
-- arguments name, by name in asked: meta_read('t:x').asked['t:x'].
local function meta_read(...)
  local r = redis.call('HMGET', K_META, 'open', 'last', 'fence', 'ttl_at', ...)
  local asked = {}
  for i, field in ipairs({...}) do asked[field] = r[4 + i] end
  return {open = r[1], last = r[2], fence = tonumber(r[3]), ttl_at = tonumber(r[4]), ttl_at_str = r[4], asked = asked}
end

-- meta_ttl says whether a hold of hold_ttl ms renews meta's expiry, which
-- happens at most once a day (ttl_at: when it last did), so that most holds
-- cost no PEXPIRE: meta then lives at least AUDIT_RETENTION after every
-- hold of less than a day.
local META_RENEW = 86400000
local function meta_ttl(m, hold_ttl)
  return not (m.ttl_at and NOW >= m.ttl_at and NOW < m.ttl_at + META_RENEW and hold_ttl < META_RENEW)
end

-- next_fence: fences never decrease. Within meta's life each is one more
-- than the last; a customer whose meta expired (no hold for
-- AUDIT_RETENTION) starts again from the clock, which has passed every
-- fence issued before: a fence is at most the time it was issued plus the
-- holds placed in the same millisecond.
local function next_fence(m)
  return math.max((m.fence or 0) + 1, NOW)
end

-- ## hold: the live hold (K_HOLD: the check, status held, PX = its TTL)
local function hold_read()
  return check_decode(redis.call('GET', K_HOLD))
end

-- While its hold may be live, meta keeps what settle needs of the check
-- once Redis has dropped the hold on its own: the check's fields but the
-- secret (meta outlives the hold), each in a field h.<name> of its own,
-- short, so that meta stays a listpack. HELD (the names), HELD_KEYS (the
-- meta fields) and held_fields(c) (the HSET's list) are generated from
-- storedCheck's held fields in codec.go: every field a held check can have.

-- shadow_read returns the check meta's h.<name> fields describe, or nil.
local function shadow_read()
  local r = redis.call('HMGET', K_META, unpack(HELD_KEYS))
  if not r[1] then return nil end
  local c = {status = 'held'}
  for i, f in ipairs(HELD) do
    if r[i] and r[i] ~= '' then c[f] = r[i] end
  end
  return c
end

-- shadow_drop is the HDEL that ends the newest check's open state.
local function shadow_drop()
  redis.call('HDEL', K_META, 'open', unpack(HELD_KEYS))
end

-- hold_place writes the hold, for ttl_str ms, and makes it the newest check
-- in meta.
local function hold_place(c, ttl_str, m)
  redis.call('SET', K_HOLD, check_encode(c), 'PX', ttl_str)
  -- ttl_at is written either way (unchanged unless renewed), so that one
  -- HSET ends in held_fields.
  local renew = meta_ttl(m, tonumber(ttl_str))
  redis.call('HSET', K_META, 'fence', c.fence, 'last', c.id, 'open', '1', 'last:' .. c.product, c.id, 'fails', '0',
    'ttl_at', renew and NOW_STR or m.ttl_at_str, held_fields(c))
  if renew then redis.call('PEXPIRE', K_META, AUDIT_RETENTION + 2 * META_RENEW) end
  -- The outbox gets the check's decision now; the audit when it ends.
  expiring_put(c.expires)
  outbox_push(event_encodes({checked(c)}))
end

-- hold_update rewrites the live hold (its TTL unchanged).
local function hold_update(c)
  redis.call('SET', K_HOLD, check_encode(c), 'KEEPTTL')
  redis.call('HSET', K_META, held_fields(c))
end

-- hold_finish ends the live hold c: status redeemed makes it a grant
-- (returned encoded), any other an ended record; the audit gets its
-- checked event and ev, the event that ended it.
local function hold_finish(c, status, actor, ev)
  redis.call('DEL', K_HOLD)
  shadow_drop()
  c.status, c.ended, c.ended_by = status, NOW_STR, actor
  if ev.reason and status ~= 'redeemed' then c.end_reason = ev.reason end
  ev.product, ev.check_id, ev.actor, ev.fence = c.product, c.id, actor, c.fence
  local enc
  if status == 'redeemed' then enc = grant_put(c) else record_put(c) end
  -- The checked event went to the outbox when the hold was placed.
  local encs = event_encodes({checked(c), ev})
  audit_push(encs)
  outbox_push({encs[2]})
  expiring_drop()
  return enc
end

-- settle records the expiry of a hold that Redis dropped on its own (TTL):
-- the check says "expired" and the audit gets its events, dated at the
-- expiry. Every script calls it first, with the live hold it read (none
-- to settle then) or meta, so no reader sees a stale "held".
local function settle(m)
  if m.open ~= '1' then return end
  local c = shadow_read()
  -- Open without a shadow: meta as a release before the migration left it.
  if not c then error(RETIRED) end
  shadow_drop()
  c.status, c.ended, c.ended_by = 'expired', c.expires, 'arbiter'
  record_put(c)
  local encs = event_encodes({checked(c), {at = tonumber(c.expires), type = 'expired', product = c.product, check_id = c.id,
    actor = 'arbiter', fence = c.fence}})
  audit_push(encs)
  outbox_push({encs[2]})
  expiring_drop()
  EXPIRED = 1
end

-- live_hold reads the hold and settles the newest check when it is gone;
-- it returns the hold (or nil) and meta (read only when there is no hold,
-- with the fields its arguments name in meta.asked).
local function live_hold(...)
  local h = hold_read()
  if h then return h, nil end
  local m = meta_read(...)
  settle(m)
  return nil, m
end

-- split reads a comma-separated list as a set.
local function split(csv)
  local set = {}
  for p in string.gmatch(csv, '[^,]+') do set[p] = true end
  return set
end

-- by_granted orders checks by when they were granted (then by id):
-- oldest first, as every rule lists grants and release picks the newest.
local function by_granted(a, b)
  if tonumber(a.granted) == tonumber(b.granted) then return a.id < b.id end
  return tonumber(a.granted) < tonumber(b.granted)
end

-- block_read returns the live block entry, or nil.
local function block_read()
  local b = redis.call('HMGET', K_BLOCK, 'reason', 'until', 'by', 'at')
  if b[1] and (tonumber(b[2]) == 0 or tonumber(b[2]) > NOW) then
    return {note = b[1], ['until'] = tonumber(b[2]), by = b[3], since = tonumber(b[4])}
  end
  return nil
end

-- ## case: K_CASE, the customer's open reconciliation case (JSON; opened
-- and resolved by case.lua): a double holding found across the product
-- systems. While it is open it holds the line: no check or redemption of a
-- product of the case, or of one that shares a limit (an exclusive group,
-- a family) with one of them (the case rule in rules.lua), until an admin
-- resolves it.
local function case_raw() return redis.call('GET', K_CASE) end
local function case_put(enc) redis.call('SET', K_CASE, enc) end
local function case_drop() redis.call('DEL', K_CASE) end

-- ## ended: K_ENDED, when each of the customer's products last ended (a
-- hash: product -> ms), what the cooling-off rules read (rules.lua).
-- release.lua writes it; it lives keep ms after the newest end, keep
-- being the policy's longest cooling-off period (and at least
-- validation.MinKeepEnded), so it holds at most one field per product. An
-- expiry is only ever pushed back, never brought forward: a release with
-- a shorter keep (an instance with an older policy file, during a
-- rollout) must not make the customer's earlier ends forgotten early.
local function ended_put(product, keep)
  redis.call('HSET', K_ENDED, product, NOW_STR)
  if redis.call('PTTL', K_ENDED) < keep then redis.call('PEXPIRE', K_ENDED, keep) end
end

-- The rule engine: one evaluator for every kind of rule, applied at a
-- check, its dry run (eligibility), a redemption and an import, inside
-- their one script. The policy version in force compiles, in Go, each
-- product's rules (validation.Rule); rulesArg (rules.go) writes them as one
-- argument, rules, which rules_of reads. Its reference in Go is
-- validation.Rule.Evaluate; the differential test holds the two to the
-- same answers on random policies and histories.
--
-- The rules argument: entries separated by ';', their fields by '|'
-- (product and rule names are lowercase letters, digits and _):
--   L|<scope>|<max>|<name>|<p1,p2,...>  a limit (validation.LimitKind):
--                                       scope p (the product's max), x (its
--                                       exclusive groups: the products in
--                                       conflict), f (a family)
--   C|<period ms>|<name>|<p1,p2,...>    a cooling-off rule: the products
--                                       whose end starts the period
--   R|<min>                             the minimum rating
--
-- Each kind has one section below: rule_limit, rule_cooling_off, and the
-- rating in evaluate. A new kind is a new entry letter, parsed in
-- rules_of, and its section (docs/architecture.md, "Adding a kind of
-- rule").

local function set_of(list)
  local set = {}
  for _, p in ipairs(list) do set[p] = true end
  return set
end

local function list_of(csv)
  local list = {}
  for p in string.gmatch(csv, '[^,]+') do list[#list + 1] = p end
  return list
end

-- rules_of reads the rules argument: {limits, cooling, min_rating,
-- related}, related being the set of every product a limit names (the
-- product's own among them): what an open case must concern to hold the
-- product's line, and the only grants the limits read. What it read is
-- kept, read-only, by the argument: the function library keeps its
-- locals from one call to the next, so a check reads its product's rules
-- once per policy version, not once per call (a script starts each call
-- with the cache empty). A policy has a few arguments, one per product
-- and version; RULES_CACHE_MAX bounds them whatever the callers send.
local rules_cache, rules_cached, RULES_CACHE_MAX = {}, 0, 256
local function rules_of(arg)
  local cached = rules_cache[arg]
  if cached then return cached end
  local r = {limits = {}, cooling = {}, min_rating = 0, related = {}}
  for entry in string.gmatch(arg, '[^;]+') do
    local t = {}
    for field in string.gmatch(entry .. '|', '([^|]*)|') do t[#t + 1] = field end
    if t[1] == 'L' then
      local products = list_of(t[5])
      table.insert(r.limits, {scope = t[2], max = tonumber(t[3]), name = t[4], set = set_of(products)})
      for _, p in ipairs(products) do r.related[p] = true end
    elseif t[1] == 'C' then
      table.insert(r.cooling, {period = tonumber(t[2]), name = t[3], after = list_of(t[4])})
    elseif t[1] == 'R' then
      r.min_rating = tonumber(t[2])
    else
      error('arbiter: unknown rule entry ' .. entry)
    end
  end
  if rules_cached >= RULES_CACHE_MAX then rules_cache, rules_cached = {}, 0 end
  rules_cache[arg], rules_cached = r, rules_cached + 1
  return r
end

-- ## the case rule: an open reconciliation case (K_CASE) holds the line
-- of the products it concerns and of every product sharing a limit with
-- one of them: case_violation returns the case_open violation while the
-- customer's open case names a product of rules.related; nil otherwise.
local function case_violation(rules)
  local raw = case_raw()
  if not raw then return nil end
  local c = cjson.decode(raw)
  if type(c.products) ~= 'table' then return nil end
  for _, p in ipairs(c.products) do
    if rules.related[p] then
      return violation(REASON.case_open, {products = c.products, since = c.opened, note = c.detail})
    end
  end
  return nil
end

-- ## limits: at most max products of a set (validation/rule_limit.go).
-- in: the grants of the set, oldest first; h: the live hold, counted by a
-- family (nil at a redemption, whose hold is the product asked for).
local function rule_limit(vs, l, product, grants, h)
  local held = {}
  for _, g in ipairs(grants) do
    if l.set[g.product] then held[#held + 1] = g end
  end
  if l.scope == 'p' then
    if #held > 0 and #held + 1 > l.max then
      table.insert(vs, violation(REASON.already_holds_product, {product = product, check_id = held[1].id, since = tonumber(held[1].granted)}))
    end
  elseif l.scope == 'x' then
    for _, g in ipairs(held) do
      table.insert(vs, violation(REASON.conflicting_product, {product = g.product, check_id = g.id, since = tonumber(g.granted)}))
    end
  elseif l.scope == 'f' then
    local count = #held
    if h and l.set[h.product] then count = count + 1 end
    if count + 1 > l.max then
      local list = {}
      for i, g in ipairs(held) do list[i] = {product = g.product, check_id = g.id, since = tonumber(g.granted)} end
      if count > #held then
        list[#list + 1] = {product = h.product, check_id = h.id, since = tonumber(h.created), ['until'] = tonumber(h.expires)}
      end
      table.insert(vs, violation(REASON.family_limit, {rule = l.name, limit = l.max, held = list}))
    end
  else
    error('arbiter: unknown limit scope ' .. tostring(l.scope))
  end
end

-- ## cooling-off: no product within period ms after a product of after
-- ended (K_ENDED; validation/rule_cooling.go). The violation names the
-- product that ended last (the first in after on a tie).
local function rule_cooling_off(vs, c)
  local at = redis.call('HMGET', K_ENDED, unpack(c.after))
  local last, last_at
  for i, p in ipairs(c.after) do
    local e = tonumber(at[i])
    if e and NOW < e + c.period and (not last_at or e > last_at) then last, last_at = p, e end
  end
  if last then
    table.insert(vs, violation(REASON.cooling_off, {rule = c.name, product = last, since = last_at, ['until'] = last_at + c.period}))
  end
end

-- grant_violations appends the violations of the rules that a redemption
-- and an import apply again to the ledger: the limits, then the cooling-off
-- periods. Only the grants of related products are decoded.
local function grant_violations(vs, product, rules, h)
  local grants = {}
  for _, raw in ipairs(redis.call('HVALS', K_GRANTS)) do
    if rules.related[grant_product(raw)] then grants[#grants + 1] = check_decode(raw) end
  end
  table.sort(grants, by_granted)
  for _, l in ipairs(rules.limits) do rule_limit(vs, l, product, grants, h) end
  for _, c in ipairs(rules.cooling) do rule_cooling_off(vs, c) end
  return vs
end

-- evaluate applies every rule of a check to the customer and its live
-- hold h, returning the failed ones in a fixed order: customer_blocked,
-- case_open, rating_too_low, the limits' (already_holds_product,
-- conflicting_product, family_limit), cooling_off, hold_exists.
-- The rating rule (min_rating > 0) uses score_arg: '' reads the cached
-- score, a number is a fresh score from the bureau (cached here for
-- rating_ttl ms), 'skip' passes the rule unevaluated. The bureau is asked
-- only when its answer can change the decision: when the cache is cold and
-- every other rule passes, evaluate returns nil and 'need_rating', having
-- written nothing. The third result is the rating rule's state: none (no
-- min_rating), skip (bureau unavailable, policy allows), unknown (cold
-- cache, not worth a bureau call because other rules fail), pass or fail.
local function evaluate(h, product, rules, score_arg, rating_ttl)
  local vs = {}
  local b = block_read()
  if b then table.insert(vs, violation(REASON.customer_blocked, b)) end
  local case_open = case_violation(rules)
  if case_open then table.insert(vs, case_open) end
  local rating_at = #vs + 1
  grant_violations(vs, product, rules, h)
  if h then
    table.insert(vs, violation(REASON.hold_exists, {product = h.product, check_id = h.id, ['until'] = tonumber(h.expires), by = h.by}))
  end
  local min_rating = rules.min_rating
  if min_rating == 0 then return vs, nil, 'none' end
  if score_arg == 'skip' then return vs, nil, 'skip' end
  local score
  if score_arg ~= '' then
    score = tonumber(score_arg)
    redis.call('SET', K_RATING, score, 'PX', rating_ttl)
  else
    score = tonumber(redis.call('GET', K_RATING))
    if not score then
      if #vs == 0 then return nil, KIND.need_rating end
      return vs, nil, 'unknown'
    end
  end
  if score < min_rating then
    table.insert(vs, rating_at, violation(REASON.rating_too_low, {product = product, required = min_rating, score = score}))
    return vs, nil, 'fail'
  end
  return vs, nil, 'pass'
end

-- reasons lists the reason codes of violations, for the audit trail.
local function reasons(vs)
  local out = {}
  for i, v in ipairs(vs) do out[i] = v.reason end
  return out
end

local function main(KEYS, ARGV)
