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
-- exclude control characters). The live hold, an ended check and a
-- reply's grant are all this encoding, so a check never changes shape as
-- it moves (meta shadows the live hold field by field, see hold; the
-- ledger keeps a shorter grant, see grants). check_encode(c) and
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
-- A redeemed check is recorded as well as granted (see grants), and
-- recorded again when its grant is released.
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

-- ## grants: the ledger (K_GRANTS: check id -> the grant)
-- A grant stays for ever, so the ledger keeps only what is read for ever:
-- 'g1' and the fields of storedGrant in codec.go (grant_encode,
-- grant_fields; product, granted, lag = granted - fence, redeemer,
-- imported, the policy version with 'sha256:' written ':'), short enough
-- that the hash stays a listpack (see meta). What only a replay of the
-- redemption (the OTP and token digests) or a read of the check (placed,
-- expires, placer, agent) needs is in the check's record, which the
-- redemption writes too (records: readable for RETENTION). That is with
-- COMPACT_GRANTS ('1'); without, the ledger keeps the whole check ('c2')
-- and no record, as the previous release wrote and can read (so that
-- release and this one can serve side by side, see operations.md). Both
-- encodings are read whatever COMPACT_GRANTS says; any other value raises
-- RETIRED, never reads as no grant.

-- grant_decode returns grant raw (of check id) as a check, or nil; a g1
-- grant's has compact set (it lacks what only the record keeps).
local function grant_decode(id, raw)
  if not raw then return nil end
  if string.sub(raw, 1, 3) == 'c2' .. SEP then return check_fields(raw) end
  local g = grant_fields(raw)
  local version = g.version
  if version and string.byte(version, 1) == 58 then version = 'sha256' .. version end
  local status = g.imported and 'imported' or 'redeemed'
  return {id = id, product = g.product, status = status, fence = string.format('%d', tonumber(g.granted) - tonumber(g.lag)),
    granted = g.granted, redeemed_by = g.redeemed_by, version = version,
    ended = status == 'redeemed' and g.granted or nil, ended_by = status == 'redeemed' and g.redeemed_by or nil, compact = true}
end

-- grant_compact is the ledger's value of check c, granted.
local function grant_compact(c)
  local version = c.granted_version or c.version
  if version and string.sub(version, 1, 7) == 'sha256:' then version = string.sub(version, 7) end
  return grant_encode({product = c.product, granted = c.granted, lag = string.format('%d', tonumber(c.granted) - tonumber(c.fence)),
    redeemed_by = c.redeemed_by, imported = c.status == 'imported' and '1' or nil, version = version})
end

local function grant_get(id)
  return grant_decode(id, redis.call('HGET', K_GRANTS, id))
end

-- grants_all returns every grant as a check, in no order.
local function grants_all()
  local all, out = redis.call('HGETALL', K_GRANTS), {}
  for i = 1, #all, 2 do out[#out + 1] = grant_decode(all[i], all[i + 1]) end
  return out
end

-- grant_product reads only a grant's product, so rules never decode the
-- grants they do not concern.
local function grant_product(raw)
  return grant_product_of(raw) or check_product(raw) or error(RETIRED)
end

-- grant_put writes c, granted, to the ledger (g1 with COMPACT_GRANTS,
-- else whole) and returns it encoded whole, as replies carry it.
local function grant_put(c)
  c.secret = nil
  local enc = check_encode(c)
  redis.call('HSET', K_GRANTS, c.id, COMPACT_GRANTS == '1' and grant_compact(c) or enc)
  return enc
end

-- check_find returns an ended check by id: a whole grant, else its record,
-- else its g1 grant (what the ledger keeps). Imported grants were never
-- checks. The record is read first where it is likeliest to be there
-- (COMPACT_GRANTS: every redemption writes one), the ledger first where
-- it is whole, so that each mode reads what it wrote with one HGET.
local function check_find(id)
  local c = COMPACT_GRANTS == '1' and record_get(id)
  if c then return c end
  local g = grant_get(id)
  if g and g.status ~= 'imported' and not g.compact then return g end
  if COMPACT_GRANTS ~= '1' then c = record_get(id) end
  if c then return c end
  if g and g.status ~= 'imported' then return g end
  return nil
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

-- meta_keep gives meta at least keep ms more to live and never less than
-- it has: a tombstone or an import, which ask AUDIT_RETENTION, must not
-- cut short the life a hold gave it (AUDIT_RETENTION + up to two days,
-- which meta_ttl counts on not to renew it for a day).
local function meta_keep(keep)
  if redis.call('PTTL', K_META) < keep then redis.call('PEXPIRE', K_META, keep) end
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
  -- A hold longer than two days (a policy may ask it) keeps meta to its
  -- end and AUDIT_RETENTION past it, as a shorter one does.
  if renew then redis.call('PEXPIRE', K_META, math.max(AUDIT_RETENTION + 2 * META_RENEW, tonumber(ttl_str) + AUDIT_RETENTION)) end
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
  -- A g1 grant's record keeps, for RETENTION, what the ledger does not:
  -- what a replay of the redemption proves and what a read of the check
  -- shows. A whole grant keeps it itself and is not recorded.
  local enc
  if status == 'redeemed' then enc = grant_put(c) end
  if status ~= 'redeemed' or COMPACT_GRANTS == '1' then record_put(c) end
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
