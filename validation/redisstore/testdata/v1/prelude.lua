-- Shared by every arbiter script. Every script gets the same KEYS, all under
-- one customer's hash tag, so each runs unchanged on Redis Cluster:
--   KEYS[1] meta    hash   fence, last (id of the newest check), open ("1" while its hold may be live),
--                          last_product, last_expires, last_fence
--   KEYS[2] hold    hash   check_id, product, fence, secret, fails, expires, by  (PX = hold TTL)
--   KEYS[3] grants  hash   check_id -> grant JSON
--   KEYS[4] checks  hash   check_id -> check JSON (pruned after the retention)
--   KEYS[5] log     list   check ids in creation order, for pruning
--   KEYS[6] audit   list   event JSON, newest first, capped
--   KEYS[7] block   hash   reason, until, by, at (PEXPIREAT = until, when set)
--   KEYS[8] rating  string the bureau's score, cached (PX = cache TTL)
--   KEYS[9] tries   list   attempts that changed nothing (refused, otp_failed), newest first, capped apart
--   KEYS[10] idem   string idempotency record (check script only)
-- ARGV[1] now (ms), ARGV[2] audit cap, ARGV[3] retention (ms); the rest is per script.
local K_META, K_HOLD, K_GRANTS, K_CHECKS, K_LOG, K_AUDIT = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local K_BLOCK, K_RATING, K_TRIES = KEYS[7], KEYS[8], KEYS[9]
local NOW = tonumber(ARGV[1])
-- EXPIRED becomes 1 when settle records an expiry; every reply carries it
-- (scripts.go wraps each script's body), so arbiter can count expiries.
local EXPIRED = 0
local AUDIT_CAP = tonumber(ARGV[2])
local RETENTION = tonumber(ARGV[3])

-- audit appends an event. State changes go to K_AUDIT; attempts that
-- changed nothing (a refused check, a wrong code) to K_TRIES, capped on
-- their own, so no number of refusals can evict the record of a grant.
local TRIES_CAP = 100
local function audit(ev)
  ev.at = ev.at or NOW
  local key, cap = K_AUDIT, AUDIT_CAP
  if ev.type == 'refused' or ev.type == 'otp_failed' then key, cap = K_TRIES, TRIES_CAP end
  if redis.call('LPUSH', key, cjson.encode(ev)) > cap then
    redis.call('LTRIM', key, 0, cap - 1)
  end
end

local function get_check(id)
  local raw = redis.call('HGET', K_CHECKS, id)
  if raw then return cjson.decode(raw) end
  return nil
end

-- put_check stores a check and returns its JSON.
local function put_check(c)
  local enc = cjson.encode(c)
  redis.call('HSET', K_CHECKS, c.id, enc)
  return enc
end

-- end_check closes the newest check; the hold must already be gone.
local function end_check(c, status, actor, reason)
  c.status = status
  c.ended = NOW
  c.ended_by = actor
  if reason then c.end_reason = reason end
  put_check(c)
  redis.call('HSET', K_META, 'open', '0')
end

-- settle records the expiry of a hold that Redis dropped on its own (TTL):
-- the check says "expired" and the audit trail gets an event dated at the
-- expiry. Every script calls it first, so no reader sees a stale "held".
local function settle()
  local m = redis.call('HMGET', K_META, 'last', 'open', 'last_product', 'last_expires', 'last_fence')
  if m[2] ~= '1' then return end
  if redis.call('HGET', K_HOLD, 'check_id') == m[1] then return end
  local c = get_check(m[1])
  if c and c.status == 'held' then
    c.status = 'expired'
    c.ended = c.expires
    c.ended_by = 'arbiter'
    put_check(c)
  end
  redis.call('HSET', K_META, 'open', '0')
  audit({at = tonumber(m[4]), type = 'expired', product = m[3], check_id = m[1], actor = 'arbiter', fence = tonumber(m[5])})
  EXPIRED = 1
end

local function split(csv)
  local set = {}
  for p in string.gmatch(csv, '[^,]+') do set[p] = true end
  return set
end

local function by_granted(a, b)
  if a.granted == b.granted then return a.check_id < b.check_id end
  return a.granted < b.granted
end

-- grant_violations applies a product's rule to the customer's grants,
-- appending to vs: already_holds_product, then conflicting_product (oldest
-- grant first).
local function grant_violations(vs, product, max, conflicts_csv)
  local conflicts = split(conflicts_csv)
  local same, other = {}, {}
  for _, raw in ipairs(redis.call('HVALS', K_GRANTS)) do
    local g = cjson.decode(raw)
    if g.product == product then
      table.insert(same, g)
    elseif conflicts[g.product] then
      table.insert(other, g)
    end
  end
  if #same >= max then
    table.sort(same, by_granted)
    table.insert(vs, {reason = 'already_holds_product', product = product, check_id = same[1].check_id, since = same[1].granted})
  end
  table.sort(other, by_granted)
  for _, g in ipairs(other) do
    table.insert(vs, {reason = 'conflicting_product', product = g.product, check_id = g.check_id, since = g.granted})
  end
  return vs
end

-- evaluate applies every rule of a check, returning the failed ones in a
-- fixed order: customer_blocked, rating_too_low, already_holds_product,
-- conflicting_product, hold_exists. The rating rule (min_rating > 0) uses
-- score_arg: '' reads the cached score, a number is a fresh score from the
-- bureau (cached here for rating_ttl ms), 'skip' passes the rule unevaluated.
-- The bureau is asked only when its answer can change the decision: when
-- the cache is cold and every other rule passes, evaluate returns nil and
-- 'need_rating', having written nothing. The third result is the rating
-- rule's state (see below).
local function evaluate(product, max, conflicts_csv, min_rating, score_arg, rating_ttl)
  local vs = {}
  local b = redis.call('HMGET', K_BLOCK, 'reason', 'until', 'by', 'at')
  if b[1] and (tonumber(b[2]) == 0 or tonumber(b[2]) > NOW) then
    table.insert(vs, {reason = 'customer_blocked', note = b[1], ['until'] = tonumber(b[2]), by = b[3], since = tonumber(b[4])})
  end
  local rating_at = #vs + 1
  grant_violations(vs, product, max, conflicts_csv)
  local h = redis.call('HMGET', K_HOLD, 'check_id', 'product', 'expires', 'by')
  if h[1] then
    table.insert(vs, {reason = 'hold_exists', product = h[2], check_id = h[1], ['until'] = tonumber(h[3]), by = h[4]})
  end
  -- rstate says what became of the rating rule: none (no min_rating),
  -- skip (bureau unavailable, policy allows), unknown (cold cache, not
  -- worth a bureau call because other rules fail), pass or fail.
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

local function grant_of(c)
  return {check_id = c.id, product = c.product, fence = c.fence, granted = c.granted, by = c.redeemed_by}
end
