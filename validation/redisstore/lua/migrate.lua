-- migrate: rewrite one customer's values written by earlier versions in
-- the current encoding, in one atomic step, so that an instance of either
-- release reading the customer sees it whole, before or after. Arguments
-- and reply: migrateArgs, MigrateCounts (migrate.go). KEYS beyond the
-- customer's are its v1 log (KEYS[extra]) and the idempotency records
-- found by the scan (the rest). With dry_run it writes nothing and counts
-- what it would convert. A customer already current costs reads only, so
-- running it again converts nothing.
--
-- The retired encodings, which only this script still decodes:
--   * v1 checks and grants: JSON ('{'); a grant is {check_id, product,
--     fence, granted, by}, its check (when still recorded) in K_CHECKS;
--   * c2 values written before the token field, one SEP short;
--   * whole checks (c2) in the ledger, where a grant is now g1;
--   * v1 events: JSON, in K_AUDIT and K_TRIES;
--   * the v1 hold: a hash at K_HOLD (check_id, product, fence, secret,
--     fails, expires, by), its check recorded with status held and its
--     checked event already in K_AUDIT; meta then has open ('0' once
--     ended), last_product, last_expires and last_fence;
--   * meta's lastv: the live hold's check in one value, where meta now
--     keeps h.<field> (its shadow, see hold_place);
--   * v1 refusal idempotency records: JSON without check_id;
--   * the v1 log (check ids in creation order), which nothing reads.
local n = {checks = 0, grants = 0, ledger = 0, tokenless = 0, events = 0, holds = 0, lastv = 0, meta = 0, idem = 0, logs = 0}
-- Every write is guarded by live, in full (not through a helper), so that
-- deploy's ACL test sees each command this script calls.
local live = dry_run ~= '1'

-- A migrated value ends at its token when the fields added after it are
-- empty (a value without them reads them as empty), so that the instances
-- of the release before the migration, which read exactly the fields up
-- to the token, still read what the migration wrote while they serve.
local encode_all = check_encode
local function check_encode(c)
  local v = encode_all(c)
  local _, seps = string.gsub(v, SEP, '')
  while seps > fields and string.sub(v, -1) == SEP do v, seps = string.sub(v, 1, -2), seps - 1 end
  return v
end

-- v1_table turns a decoded v1 value into the fields check_encode and
-- event_encode take: true is '1', null and false are no value.
local function v1_table(j)
  local t = {}
  for k, v in pairs(j) do
    if v == true then
      t[k] = '1'
    elseif type(v) == 'number' or type(v) == 'string' then
      t[k] = v
    elseif type(v) == 'table' then
      t[k] = table.concat(v, ',')
    end
  end
  return t
end

-- old_decode returns the check a value of any version encodes and whether
-- that value is in a retired encoding. A v1 grant is read as the check it
-- records (status redeemed, or imported: see the grants below).
local function old_decode(v)
  if string.byte(v, 1) == 123 then
    local c = v1_table(cjson.decode(v))
    if c.check_id then
      c = {id = c.check_id, product = c.product, status = 'redeemed', fence = c.fence, granted = c.granted,
        redeemed_by = c.by, v1grant = true}
    end
    return c, true
  end
  local _, seps = string.gsub(v, SEP, '')
  if seps < fields then return check_fields(v .. string.rep(SEP, fields - seps)), true end
  return check_fields(v), false
end

-- The grants first. With COMPACT_GRANTS each becomes the ledger's short
-- value (g1, see the prelude's "grants" section); the ledger is written
-- anew, so that a hash a whole check made a hash table becomes a listpack
-- again. Without, a grant in a retired encoding becomes the whole check
-- (c2), as the previous release wrote it, and a whole or g1 grant stays
-- as it is. A v1 grant whose check is still recorded becomes that check,
-- redeemed. A v1 grant without one was imported, or redeemed so long ago
-- that its check was pruned: either way no redemption can be replayed
-- against it, which is what status imported says. Made g1, a redeemed
-- check still within RETENTION is recorded whole, as a redemption leaves
-- it, so that its replay still proves its code or token; an older one's
-- record goes, as does a merged one's made whole (the grant keeps it).
local compact = COMPACT_GRANTS == '1'
local merged, ledger, rewrite, recorded = {}, {}, false, false
local grants = redis.call('HGETALL', K_GRANTS)
for i = 1, #grants, 2 do
  local raw = grants[i + 1]
  ledger[#ledger + 1] = grants[i]
  local g, old
  if string.sub(raw, 1, 3) ~= 'g1' .. SEP then g, old = old_decode(raw) end
  if not g or not (old or compact) then
    ledger[#ledger + 1] = raw
  else
    if g.v1grant then
      local rec = redis.call('HGET', K_CHECKS, g.id)
      local c = rec and old_decode(rec)
      if c and c.status == 'redeemed' then
        c.granted, c.redeemed_by = c.granted or g.granted, c.redeemed_by or g.redeemed_by
        g = c
        merged[g.id] = true
      else
        g.status = 'imported'
      end
      n.grants = n.grants + 1
    elseif string.byte(raw, 1) == 123 then
      n.grants = n.grants + 1
    elseif old then
      n.tokenless = n.tokenless + 1
    else
      n.ledger = n.ledger + 1
    end
    g.v1grant, g.secret = nil, nil
    rewrite = true
    ledger[#ledger + 1] = compact and grant_compact(g) or check_encode(g)
    if compact and g.status == 'redeemed' and (tonumber(g.ended or g.granted) or 0) + RETENTION >= NOW then
      if live and (merged[g.id] or redis.call('HEXISTS', K_CHECKS, g.id) == 0) then redis.call('HSET', K_CHECKS, g.id, check_encode(g)) end
      recorded = true
    elseif merged[g.id] then
      if live then redis.call('HDEL', K_CHECKS, g.id) end
    end
  end
end
if live and rewrite then
  redis.call('DEL', K_GRANTS)
  redis.call('HSET', K_GRANTS, unpack(ledger))
end
if live and recorded then redis.call('PEXPIRE', K_CHECKS, RETENTION_STR) end

-- open_v1 is the check of a v1 hold, live or dropped by its TTL but not
-- yet settled, or nil: meta says open and has no shadow and no lastv.
local m = redis.call('HMGET', K_META, 'open', 'lastv', 'h.id', 'last', 'last_product', 'last_expires', 'last_fence')
local open_v1
-- A v1 hold is a hash: GET fails on it (the ACL grants no TYPE).
local hold = redis.pcall('GET', K_HOLD)
local v1_hold = type(hold) == 'table' and hold.err ~= nil
if v1_hold or (m[1] == '1' and not m[3] and (m[2] or '') == '') then
  local h = redis.call('HMGET', K_HOLD, 'check_id', 'product', 'fence', 'secret', 'fails', 'expires', 'by')
  local id = h[1] or m[4]
  local raw = id and redis.call('HGET', K_CHECKS, id)
  local c = raw and old_decode(raw) or {id = id, product = h[2] or m[5], fence = h[3] or m[7], expires = h[6] or m[6],
    by = h[7]}
  c.status, c.secret = 'held', h[4]
  open_v1 = c
  n.holds = n.holds + 1
  -- The hold becomes today's: one value with the same remaining TTL (SET
  -- replaces a value of any type, KEEPTTL keeps its expiry), its check
  -- shadowed in meta and not recorded, its checked event appended when it
  -- ends (so it leaves the audit list below). A dropped one is shadowed
  -- alone, and the next script settles it.
  if live then
    if v1_hold then redis.call('SET', K_HOLD, check_encode(c), 'KEEPTTL') end
    redis.call('HSET', K_META, 'open', '1', 'last', c.id, 'fails', h[5] or '0', held_fields(c))
    redis.call('HDEL', K_CHECKS, c.id)
  end
elseif hold then
  local c, old = old_decode(hold)
  if old then
    n.tokenless = n.tokenless + 1
    if live then redis.call('SET', K_HOLD, check_encode(c), 'KEEPTTL') end
  end
end

-- meta: lastv gives way to the shadow; v1's fields go.
if m[2] then
  if live and m[2] ~= '' and m[1] == '1' and not m[3] then redis.call('HSET', K_META, held_fields(old_decode(m[2]))) end
  if live then redis.call('HDEL', K_META, 'lastv') end
  n.lastv = n.lastv + 1
end
local v1_meta = redis.call('HMGET', K_META, 'last_product', 'last_expires', 'last_fence')
if v1_meta[1] or v1_meta[2] or v1_meta[3] or m[1] == '0' then
  if live then redis.call('HDEL', K_META, 'last_product', 'last_expires', 'last_fence') end
  if live and m[1] == '0' and not open_v1 then redis.call('HDEL', K_META, 'open') end
  n.meta = n.meta + 1
end

local records = redis.call('HGETALL', K_CHECKS)
for i = 1, #records, 2 do
  local skip = merged[records[i]] or (open_v1 and records[i] == open_v1.id)
  local c, old = old_decode(records[i + 1])
  if old and not skip then
    if string.byte(records[i + 1], 1) == 123 then n.checks = n.checks + 1 else n.tokenless = n.tokenless + 1 end
    c.secret = nil
    if live then redis.call('HSET', K_CHECKS, records[i], check_encode(c)) end
  end
end

-- events: JSON to e2, in place; the open v1 check's checked event goes.
for _, key in ipairs({K_AUDIT, K_TRIES}) do
  local evs, dropped = redis.call('LRANGE', key, 0, -1), false
  for i, v in ipairs(evs) do
    if string.byte(v, 1) == 123 then
      local ev = v1_table(cjson.decode(v))
      n.events = n.events + 1
      if open_v1 and ev.type == 'checked' and ev.check_id == open_v1.id then
        if live then redis.call('LSET', key, i - 1, '') end
        dropped = true
      else
        if live then redis.call('LSET', key, i - 1, event_encode(ev)) end
      end
    end
  end
  if live and dropped then redis.call('LREM', key, 0, '') end
end

if redis.call('LLEN', KEYS[extra]) > 0 then
  if live then redis.call('DEL', KEYS[extra]) end
  n.logs = n.logs + 1
end
for i = extra + 1, #KEYS do
  local raw = redis.call('GET', KEYS[i])
  if raw and string.byte(raw, 1) == 123 and not cjson.decode(raw).check_id then
    if live then redis.call('DEL', KEYS[i]) end
    n.idem = n.idem + 1
  end
end

return reply(n)
