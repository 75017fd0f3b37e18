local K_META, K_HOLD, K_GRANTS, K_CHECKS, K_AUDIT, K_BLOCK, K_RATING, K_TRIES, K_CASE, K_IDEM = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local NOW, NOW_STR, AUDIT_CAP, RETENTION, RETENTION_STR, AUDIT_RETENTION, AUDIT_RETENTION_STR = tonumber(ARGV[1]), ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[3], tonumber(ARGV[4]), ARGV[4]
local SEP = '\31'
local function check_encode(c)
  return 'c2' .. SEP .. (c.id or '') .. SEP .. (c.product or '') .. SEP .. (c.status or '') .. SEP .. (c.fence or '') .. SEP .. (c.created or '') .. SEP .. (c.expires or '') .. SEP .. (c.by or '') .. SEP .. (c.agent or '') .. SEP .. (c.secret or '') .. SEP .. (c.delivered or '') .. SEP .. (c.redeemed_by or '') .. SEP .. (c.granted or '') .. SEP .. (c.ended or '') .. SEP .. (c.ended_by or '') .. SEP .. (c.end_reason or '') .. SEP .. (c.otp or '') .. SEP .. (c.token or '')
end
local function event_encode(ev)
  return 'e2' .. SEP .. (ev.type or '') .. SEP .. (ev.at or '') .. SEP .. (ev.product or '') .. SEP .. (ev.check_id or '') .. SEP .. (ev.actor or '') .. SEP .. (ev.agent or '') .. SEP .. (ev.reason or '') .. SEP .. (ev.note or '') .. SEP .. (ev.fence or '') .. SEP .. (ev.reasons or '')
end
local function check_fields(v)
  local f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17 = string.match(v, '^c2\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31?([^\31]*)$')
  return {id = f1 ~= '' and f1 or nil, product = f2 ~= '' and f2 or nil, status = f3 ~= '' and f3 or nil, fence = f4 ~= '' and f4 or nil, created = f5 ~= '' and f5 or nil, expires = f6 ~= '' and f6 or nil, by = f7 ~= '' and f7 or nil, agent = f8 ~= '' and f8 or nil, secret = f9 ~= '' and f9 or nil, delivered = f10 ~= '' and f10 or nil, redeemed_by = f11 ~= '' and f11 or nil, granted = f12 ~= '' and f12 or nil, ended = f13 ~= '' and f13 or nil, ended_by = f14 ~= '' and f14 or nil, end_reason = f15 ~= '' and f15 or nil, otp = f16 ~= '' and f16 or nil, token = f17 ~= '' and f17 or nil}
end
local HELD = {'id', 'product', 'fence', 'created', 'expires', 'by', 'agent', 'delivered', 'token'}
local HELD_KEYS = {'h.id', 'h.product', 'h.fence', 'h.created', 'h.expires', 'h.by', 'h.agent', 'h.delivered', 'h.token'}
local function held_fields(c)
  return 'h.id', c.id or '', 'h.product', c.product or '', 'h.fence', c.fence or '', 'h.created', c.created or '', 'h.expires', c.expires or '', 'h.by', c.by or '', 'h.agent', c.agent or '', 'h.delivered', c.delivered or '', 'h.token', c.token or ''
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
--
-- Each section below owns one key's encoding: no script reads or writes a
-- key except through its section. Changing how a check (and so the hold
-- and a grant) is stored touches the "check" section here and codec.go.

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
-- check_fields(v) are generated from checkFields in codec.go (luaCodec),
-- straight-line code with no table of names, and put in front of this
-- prelude; a field is added there (and to heldFields, if a held check
-- has it).
-- Numbers are kept as written (milliseconds and fences print exactly).
-- Values in the v1 layout's JSON form ('{') are read by check_decode.

-- check_decode returns the check a value encodes (nil for none); empty
-- fields are nil. A v1 check or grant (JSON) is read as its v2 fields.
local function check_decode(v)
  if not v then return nil end
  if string.byte(v, 1) == 123 then
    local j = cjson.decode(v)
    if j.check_id then
      return {id = j.check_id, product = j.product, status = 'redeemed', fence = j.fence, granted = j.granted, redeemed_by = j.by, v1grant = true}
    end
    j.delivered = j.delivered and '1' or nil
    return j
  end
  return check_fields(v)
end

-- ## events: the audit trail (K_AUDIT state changes, K_TRIES attempts)
-- An event is one string, 'e2' and its fields joined by SEP
-- (event_encode, generated from eventFields in codec.go). State changes
-- and attempts that changed nothing (refused, otp_failed) are kept apart,
-- each capped, so no number of refusals can evict the record of a grant;
-- state changes expire AUDIT_RETENTION after the newest, attempts
-- AUDIT_RETENTION after the oldest kept (their list begins again then).
-- events_append appends events, oldest first, all of one kind.
local function events_append(...)
  local evs = {...}
  local key, cap = K_AUDIT, AUDIT_CAP
  if evs[1].type == 'refused' or evs[1].type == 'otp_failed' then key, cap = K_TRIES, TRIES_CAP end
  for i, ev in ipairs(evs) do
    ev.at = ev.at or NOW_STR
    if ev.reasons then ev.reasons = table.concat(ev.reasons, ',') end
    evs[i] = event_encode(ev)
  end
  local n = redis.call('LPUSH', key, unpack(evs))
  if n > cap then
    redis.call('LTRIM', key, 0, cap - 1)
  end
  -- Attempts are noise next to state changes: their list expires
  -- AUDIT_RETENTION after it began, which saves a refusal a command.
  if key == K_AUDIT or n == #evs then redis.call('PEXPIRE', key, AUDIT_RETENTION_STR) end
end

-- checked is the event of a hold's placing. It is appended when the hold
-- ends, with the event that ends it (one write instead of two); until then
-- the audit script reads it from the live hold.
local function checked(c)
  return {type = 'checked', at = c.created, product = c.product, check_id = c.id, actor = c.by, agent = c.agent, fence = c.fence}
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
    local all = redis.call('HGETALL', K_CHECKS)
    for i = 1, #all, 2 do
      local old = check_decode(all[i + 1])
      if old.status ~= 'held' and tonumber(old.ended or 0) + RETENTION < NOW then redis.call('HDEL', K_CHECKS, all[i]) end
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
  if string.byte(raw, 1) == 123 then return cjson.decode(raw).product end
  return check_product(raw)
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
  if g and g.status ~= 'imported' and not g.v1grant then return g end
  return record_get(id)
end

-- ## meta: K_META, a hash: fence (the newest fence), last (newest check
-- id), open ('1' while its hold may be live) and h.<field> (that hold's
-- check, see hold), last:<product> (newest check of each product),
-- fails (wrong codes on the live hold), otp_fails and otp_since (wrong
-- codes of the customer in the current window), t:<id> (tombstones, see
-- abandon). Every value is short, so meta stays a listpack: a hash with
-- one value over hash-max-listpack-value (64 bytes by default) becomes a
-- hash table for good, three times the bytes. It expires AUDIT_RETENTION
-- after the newest hold.
--
-- meta_read reads open, lastv, last, fence and ttl_at, and the fields its
-- arguments name, by name in asked: meta_read('t:x').asked['t:x'].
local function meta_read(...)
  local r = redis.call('HMGET', K_META, 'open', 'lastv', 'last', 'fence', 'ttl_at', ...)
  local asked = {}
  for i, field in ipairs({...}) do asked[field] = r[5 + i] end
  return {open = r[1], lastv = r[2], last = r[3], fence = tonumber(r[4]), ttl_at = tonumber(r[5]), ttl_at_str = r[5],
    asked = asked}
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
-- legacy_hold reads a v1 hold (a hash) and its check.
local function legacy_hold()
  local h = redis.call('HMGET', K_HOLD, 'check_id', 'product', 'fence', 'secret', 'fails', 'expires', 'by')
  local c = record_get(h[1]) or {id = h[1], product = h[2], fence = h[3], expires = h[6], by = h[7], status = 'held'}
  c.secret, c.legacy, c.fails = h[4], true, tonumber(h[5])
  return c
end

local function hold_read()
  local v = redis.pcall('GET', K_HOLD)
  if type(v) == 'table' and v.err then return legacy_hold() end
  return check_decode(v)
end

-- While its hold may be live, meta keeps what settle needs of the check
-- once Redis has dropped the hold on its own: the check's fields but the
-- secret (meta outlives the hold), each in a field h.<name> of its own,
-- short, so that meta stays a listpack. HELD (the names), HELD_KEYS (the
-- meta fields) and held_fields(c) (the HSET's list) are generated from
-- heldFields in codec.go, which lists every field a held check can have.
-- Versions before kept one encoded copy in lastv instead, which settle
-- still reads.

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
  redis.call('HDEL', K_META, 'open', 'lastv', unpack(HELD_KEYS))
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
end

-- hold_update rewrites the live hold (its TTL unchanged). A hold placed
-- by an earlier version gets its shadow in place of its copy (lastv).
local function hold_update(c)
  if c.legacy then
    c.secret = nil
    return record_put(c)
  end
  redis.call('SET', K_HOLD, check_encode(c), 'KEEPTTL')
  redis.call('HSET', K_META, 'lastv', '', held_fields(c))
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
  if c.legacy then events_append(ev) else events_append(checked(c), ev) end
  return enc
end

-- settle records the expiry of a hold that Redis dropped on its own (TTL):
-- the check says "expired" and the audit gets its events, dated at the
-- expiry. Every script calls it first, with the live hold it read (none
-- to settle then) or meta, so no reader sees a stale "held".
local function settle(m)
  if m.open ~= '1' then return end
  local c
  if m.lastv and m.lastv ~= '' then
    c = check_decode(m.lastv)
  else
    c = shadow_read()
  end
  if not c then
    -- A v1 hold: its check is a record already, its checked event audited.
    c = record_get(m.last)
    if not c then
      local l = redis.call('HMGET', K_META, 'last_product', 'last_expires', 'last_fence')
      c = {id = m.last, product = l[1], expires = l[2], fence = l[3]}
    end
    c.legacy = true
  end
  shadow_drop()
  if c.status == 'held' then
    c.status, c.ended, c.ended_by = 'expired', c.expires, 'arbiter'
    record_put(c)
  end
  local ev = {at = tonumber(c.expires), type = 'expired', product = c.product, check_id = c.id, actor = 'arbiter', fence = c.fence}
  if c.legacy then events_append(ev) else events_append(checked(c), ev) end
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

-- ## rules: the policy applied to the grants, the block, the rating
local function split(csv)
  local set = {}
  for p in string.gmatch(csv, '[^,]+') do set[p] = true end
  return set
end

local function by_granted(a, b)
  if tonumber(a.granted) == tonumber(b.granted) then return a.id < b.id end
  return tonumber(a.granted) < tonumber(b.granted)
end

-- grant_violations applies a product's rule to the customer's grants,
-- appending to vs: already_holds_product, then conflicting_product (oldest
-- grant first).
local function grant_violations(vs, product, max, conflicts_csv)
  local same, other = {}, {}
  local grants = redis.call('HVALS', K_GRANTS)
  -- Most customers hold nothing: the list is split only for a grant.
  local conflicts = grants[1] and split(conflicts_csv)
  for _, raw in ipairs(grants) do
    local p = grant_product(raw)
    if p == product then
      table.insert(same, check_decode(raw))
    elseif conflicts[p] then
      table.insert(other, check_decode(raw))
    end
  end
  if #same >= max then
    table.sort(same, by_granted)
    table.insert(vs, {reason = 'already_holds_product', product = product, check_id = same[1].id, since = tonumber(same[1].granted)})
  end
  table.sort(other, by_granted)
  for _, g in ipairs(other) do
    table.insert(vs, {reason = 'conflicting_product', product = g.product, check_id = g.id, since = tonumber(g.granted)})
  end
  return vs
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
-- product of the case, or of one that shares an exclusive group with one
-- of them (the product's conflicts), until an admin resolves it.
local function case_raw() return redis.call('GET', K_CASE) end
local function case_put(enc) redis.call('SET', K_CASE, enc) end
local function case_drop() redis.call('DEL', K_CASE) end

-- case_violation returns the case_open violation of product, whose rule
-- excludes the products in conflicts_csv, while the customer's open case
-- concerns it; nil otherwise.
local function case_violation(product, conflicts_csv)
  local raw = case_raw()
  if not raw then return nil end
  local c = cjson.decode(raw)
  if type(c.products) ~= 'table' then return nil end
  local conflicts = split(conflicts_csv)
  for _, p in ipairs(c.products) do
    if p == product or conflicts[p] then
      return {reason = 'case_open', products = c.products, since = c.opened, note = c.detail}
    end
  end
  return nil
end

-- evaluate applies every rule of a check to the customer and its live
-- hold h, returning the failed ones in a fixed order: customer_blocked,
-- case_open, rating_too_low, already_holds_product, conflicting_product,
-- hold_exists.
-- The rating rule (min_rating > 0) uses score_arg: '' reads the cached
-- score, a number is a fresh score from the bureau (cached here for
-- rating_ttl ms), 'skip' passes the rule unevaluated. The bureau is asked
-- only when its answer can change the decision: when the cache is cold and
-- every other rule passes, evaluate returns nil and 'need_rating', having
-- written nothing. The third result is the rating rule's state: none (no
-- min_rating), skip (bureau unavailable, policy allows), unknown (cold
-- cache, not worth a bureau call because other rules fail), pass or fail.
local function evaluate(h, product, max, conflicts_csv, min_rating, score_arg, rating_ttl)
  local vs = {}
  local b = block_read()
  if b then
    b.reason = 'customer_blocked'
    table.insert(vs, b)
  end
  local case_open = case_violation(product, conflicts_csv)
  if case_open then table.insert(vs, case_open) end
  local rating_at = #vs + 1
  grant_violations(vs, product, max, conflicts_csv)
  if h then
    table.insert(vs, {reason = 'hold_exists', product = h.product, check_id = h.id, ['until'] = tonumber(h.expires), by = h.by})
  end
  if min_rating == 0 then return vs, nil, 'none' end
  if score_arg == 'skip' then return vs, nil, 'skip' end
  local score
  if score_arg ~= '' then
    score = tonumber(score_arg)
    redis.call('SET', K_RATING, score, 'PX', rating_ttl)
  else
    score = tonumber(redis.call('GET', K_RATING))
    if not score then
      if #vs == 0 then return nil, 'need_rating' end
      return vs, nil, 'unknown'
    end
  end
  if score < min_rating then
    table.insert(vs, rating_at, {reason = 'rating_too_low', product = product, required = min_rating, score = score})
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
