-- redeem: turn the live hold into a grant. The hold is named by check id
-- (token) or by product and TOTP code (OTP), verified here so that an OTP
-- redemption is one round trip too. The rule is applied again to the grants,
-- so no path (import, policy change) can make a redemption break the policy.
-- ARGV[4] mode ('token'|'otp'), [5] product, [6] check id, [7] code, [8] actor,
-- [9] max, [10] conflicts (csv), [11] max attempts, [12] period (s), [13] skew,
-- [14] wrong codes allowed per customer per window, [15] window (ms)
-- Returns {'granted', grant} | {'replay', grant} | {'refused', violations}
--       | {'error', reason, detail[, attempts left]}
-- An OTP redemption stores otp_digest(check id, code) in the check, so that
-- the same client's retry with the same code can be told from a guess once
-- the hold (and its secret) is gone.
local mode, product, id, code, actor = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local max, conflicts, max_attempts = tonumber(ARGV[9]), ARGV[10], tonumber(ARGV[11])
local period, skew = tonumber(ARGV[12]), tonumber(ARGV[13])
local otp_budget, otp_window = tonumber(ARGV[14]), tonumber(ARGV[15])

settle()

-- otp_digest is all a check keeps of the code that redeemed it: enough to
-- recognise the same client's retry, nothing that would verify a new code.
local function otp_digest(check_id, otp) return redis.sha1hex(check_id .. ':' .. otp) end

-- ended answers a redemption of check c, which is not the live hold. A
-- replay is a replay of something that still exists: the same client gets
-- its grant again only while the grant is in the ledger, and over OTP only
-- with the code that redeemed it (kept as a digest in the check). A released
-- grant is never replayed, whoever asks and however.
local function ended(c)
  if not c then return {'error', 'hold_expired', 'unknown'} end
  if c.status == 'redeemed' then
    local g = redis.call('HGET', K_GRANTS, c.id)
    if not g then return {'error', 'grant_released', c.id} end
    if c.redeemed_by ~= actor then return {'error', 'already_redeemed', c.redeemed_by} end
    if mode == 'otp' and c.otp ~= otp_digest(c.id, code) then return {'error', 'otp_invalid', 'replay'} end
    return {'replay', g}
  end
  if c.end_reason == 'otp_locked' then return {'error', 'otp_locked', 'locked'} end
  return {'error', 'hold_expired', c.status}
end

local h = redis.call('HMGET', K_HOLD, 'check_id', 'product', 'secret')
if mode == 'token' then
  if h[1] ~= id then
    local c = get_check(id)
    if not c then return {'error', 'hold_expired', 'unknown'} end
    return ended(c)
  end
  if h[2] ~= product then return {'error', 'token_invalid', 'product'} end
else
  if not h[1] or h[2] ~= product then
    -- The product's newest check (last:<product>; 'last' for data written
    -- before that field existed).
    local m = redis.call('HMGET', K_META, 'last:' .. product, 'last')
    local c = get_check(m[1] or m[2] or '')
    if c and c.product ~= product then c = nil end
    return ended(c)
  end
  id = h[1]
  -- Wrong codes also count per customer, across holds (meta otp_fails
  -- since otp_since), so check, guess, cancel, repeat gains nothing.
  local m = redis.call('HMGET', K_META, 'otp_fails', 'otp_since')
  local cfails, since = tonumber(m[1]) or 0, tonumber(m[2]) or 0
  if NOW >= since + otp_window then cfails, since = 0, NOW end
  if cfails >= otp_budget then return {'error', 'otp_rate_limited', since + otp_window - NOW} end
  -- Count the attempt before verifying it (a smart card's PIN counter):
  -- if this write fails, as when a full Redis refuses a script's first
  -- write, the code is never verified, so no failure can make wrong
  -- codes free to try. A right code deletes the hold, count and all.
  local fails = redis.call('HINCRBY', K_HOLD, 'fails', 1)
  if not totp_ok(h[3], code, math.floor(NOW / 1000), period, skew) then
    cfails = cfails + 1
    redis.call('HSET', K_META, 'otp_fails', cfails, 'otp_since', since)
    if cfails == otp_budget then
      audit({type = 'otp_rate_limited', product = product, actor = actor, ['until'] = since + otp_window})
    end
    local c = get_check(id)
    if fails >= max_attempts then
      redis.call('DEL', K_HOLD)
      end_check(c, 'cancelled', actor, 'otp_locked')
      audit({type = 'cancelled', product = product, check_id = id, actor = actor, reason = 'otp_locked', fence = c.fence})
      return {'error', 'otp_locked', 'locked'}
    end
    audit({type = 'otp_failed', product = product, check_id = id, actor = actor, fence = c.fence})
    return {'error', 'otp_invalid', 'wrong code', max_attempts - fails}
  end
end

local c = get_check(id)
local vs = grant_violations({}, product, max, conflicts)
if #vs > 0 then
  redis.call('DEL', K_HOLD)
  end_check(c, 'cancelled', actor, vs[1].reason)
  audit({type = 'cancelled', product = product, check_id = id, actor = actor, reason = vs[1].reason, fence = c.fence})
  return {'refused', cjson.encode(vs)}
end

redis.call('DEL', K_HOLD)
c.redeemed_by = actor
c.granted = NOW
if mode == 'otp' then c.otp = otp_digest(id, code) end
end_check(c, 'redeemed', actor)
local g = grant_of(c)
local enc = cjson.encode(g)
redis.call('HSET', K_GRANTS, id, enc)
audit({type = 'redeemed', product = product, check_id = id, actor = actor, fence = c.fence})
return {'granted', enc}
