local product, code, actor, max, conflicts, max_attempts, period, skew, otp_budget, otp_window = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14])
local function reply(t) return {t.kind or false, t.reason or false, t.detail or false, t.attempts_left or false, t.grant or false, t.violations or false} end
-- totp_code(secret_hex, counter) -> 6-digit string, RFC 4226 HOTP with HMAC-SHA1 built from redis.sha1hex
-- totp_ok(secret_hex, code, unix_seconds, period, skew) -> true when code matches any counter floor(t/period)+d for d in -skew..skew

-- K xor ipad (0x36) and K xor opad (0x5c), one nibble at a time: XOR has no
-- operator here, and these lookups cost a third of an arithmetic bit loop.
-- The high-nibble tables are pre-multiplied by 16.
local totp_ipad_hi = {[0]=48, 32, 16, 0, 112, 96, 80, 64, 176, 160, 144, 128, 240, 224, 208, 192}
local totp_ipad_lo = {[0]=6, 7, 4, 5, 2, 3, 0, 1, 14, 15, 12, 13, 10, 11, 8, 9}
local totp_opad_hi = {[0]=80, 64, 112, 96, 16, 0, 48, 32, 208, 192, 240, 224, 144, 128, 176, 160}
local totp_opad_lo = {[0]=12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3}

-- totp_unhex turns validated hex of even length into the bytes it encodes.
-- It reads 8 hex digits per tonumber (a 32-bit value, exact in a double),
-- twice as fast as a gsub callback per byte; the SHA-1 digests it mostly
-- converts are 40 digits.
local function totp_unhex(h)
  local t, n, i = {}, #h, 1
  while i + 7 <= n do
    local v = tonumber(string.sub(h, i, i + 7), 16)
    local b4 = v % 256
    v = (v - b4) / 256
    local b3 = v % 256
    v = (v - b3) / 256
    local b2 = v % 256
    local k = #t
    t[k + 1], t[k + 2], t[k + 3], t[k + 4] = (v - b2) / 256, b2, b3, b4
    i = i + 8
  end
  while i < n do
    t[#t + 1] = tonumber(string.sub(h, i, i + 1), 16)
    i = i + 2
  end
  return string.char(unpack(t))
end

-- totp_pads returns K xor ipad and K xor opad, K being the key zero-padded to
-- the 64-byte SHA-1 block (hashed first when longer, per RFC 2104).
local function totp_pads(secret_hex)
  if type(secret_hex) ~= 'string' or #secret_hex == 0 or #secret_hex > 512
      or #secret_hex % 2 ~= 0 or string.find(secret_hex, '[^0-9a-fA-F]') then
    error('totp: secret must be hex of 1 to 256 bytes')
  end
  if #secret_hex > 128 then secret_hex = redis.sha1hex(totp_unhex(secret_hex)) end
  local key = totp_unhex(secret_hex)
  local ipad, opad = {}, {}
  for i = 1, #key do
    local b = string.byte(key, i)
    local lo = b % 16
    local hi = (b - lo) / 16
    ipad[i] = totp_ipad_hi[hi] + totp_ipad_lo[lo]
    opad[i] = totp_opad_hi[hi] + totp_opad_lo[lo]
  end
  -- Zero padding bytes XOR a constant are the constant itself.
  local n = 64 - #key
  return string.char(unpack(ipad)) .. string.rep(string.char(54), n),
         string.char(unpack(opad)) .. string.rep(string.char(92), n)
end

-- totp_hotp returns the 6-digit HOTP for counter, an integer in [0, 2^53].
local function totp_hotp(ipad, opad, counter)
  local c, b = counter, {}
  for i = 8, 1, -1 do
    b[i] = c % 256
    c = (c - b[i]) / 256
  end
  local msg = string.char(b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8])
  local mac = redis.sha1hex(opad .. totp_unhex(redis.sha1hex(ipad .. msg)))
  -- Dynamic truncation: the offset is the low nibble of the last byte, i.e.
  -- the last hex digit; the 4 bytes from there are 8 hex digits, a 32-bit
  -- number a double holds exactly. Dropping the top bit is % 2^31.
  local off = tonumber(string.sub(mac, 40, 40), 16)
  local p = tonumber(string.sub(mac, 2 * off + 1, 2 * off + 8), 16)
  return string.format('%06d', p % 2147483648 % 1000000)
end

local function totp_code(secret_hex, counter)
  if type(counter) ~= 'number' or counter < 0 or counter > 9007199254740992
      or counter ~= math.floor(counter) then
    error('totp: counter must be an integer in [0, 2^53]')
  end
  local ipad, opad = totp_pads(secret_hex)
  return totp_hotp(ipad, opad, counter)
end

local function totp_ok(secret_hex, code, now_s, period, skew)
  -- Only exactly 6 ASCII digits can match; anything else is refused before hashing.
  if type(code) ~= 'string' or not string.find(code, '^[0-9][0-9][0-9][0-9][0-9][0-9]$') then
    return false
  end
  -- The skew bound keeps a bad argument (say inf) from looping forever
  -- inside Redis, which would block every other client.
  if type(now_s) ~= 'number' or type(period) ~= 'number' or not (period > 0)
      or type(skew) ~= 'number' or not (skew >= 0 and skew <= 100) or skew ~= math.floor(skew) then
    error('totp: need a numeric time, a positive period and a whole skew in 0..100')
  end
  local ipad, opad = totp_pads(secret_hex)
  local base = math.floor(now_s / period)
  -- Nearest windows first: a right code usually costs one HOTP.
  for i = 0, 2 * skew do
    local d = (i % 2 == 0) and (i / 2) or (-(i + 1) / 2)
    local c = base + d
    -- Out-of-range counters (time before 1970, NaN, infinity) never match.
    if c >= 0 and c <= 9007199254740992 and totp_hotp(ipad, opad, c) == code then
      return true
    end
  end
  return false
end

-- The redemption rules both redeem scripts share (redeem_token.lua,
-- redeem_otp.lua): what a redemption of a check that is not the live hold
-- gets, and turning the live hold into a grant. The rule is applied again
-- to the grants, so no path (import, policy change) can make a redemption
-- break the policy.

-- otp_digest is all a check keeps of the code that redeemed it: enough to
-- recognise the same client's retry, nothing that would verify a new code.
local function otp_digest(check_id, otp) return redis.sha1hex(check_id .. ':' .. otp) end

-- ended answers a redemption of check id, which is not the live hold (nil:
-- unknown). A replay is a replay of something that still exists: the same
-- client gets its grant again only while the grant is in the ledger, and
-- over OTP only with the code that redeemed it (kept as a digest in the
-- grant). A released grant is never replayed, whoever asks and however.
-- product, when given, must be the check's; accept, when given, is asked
-- of the check first (a token's secret, see redeem_token.lua).
local function ended(id, actor, code, product, accept)
  if not id then return reply{kind = 'error', reason = 'hold_expired', detail = 'unknown'} end
  local raw = redis.call('HGET', K_GRANTS, id)
  if raw then
    local g = check_decode(raw)
    if product and g.product ~= product then return reply{kind = 'error', reason = 'hold_expired', detail = 'unknown'} end
    if g.v1grant then g = record_get(id) or g end -- a v1 grant's redeemer and code are in its check
    if accept and not accept(g) then return reply{kind = 'error', reason = 'token_invalid', detail = 'secret'} end
    if g.redeemed_by ~= actor then return reply{kind = 'error', reason = 'already_redeemed', detail = g.redeemed_by} end
    if code and g.otp ~= otp_digest(id, code) then return reply{kind = 'error', reason = 'otp_invalid', detail = 'replay'} end
    return reply{kind = 'replay', grant = raw}
  end
  local c = record_get(id)
  if not c or (product and c.product ~= product) then return reply{kind = 'error', reason = 'hold_expired', detail = 'unknown'} end
  if accept and not accept(c) then return reply{kind = 'error', reason = 'token_invalid', detail = 'secret'} end
  if c.status == 'redeemed' then return reply{kind = 'error', reason = 'grant_released', detail = id} end
  if c.end_reason == 'otp_locked' then return reply{kind = 'error', reason = 'otp_locked', detail = 'locked'} end
  return reply{kind = 'error', reason = 'hold_expired', detail = c.status}
end

-- case_refusal refuses the redemption of the live hold h while the
-- customer's open case concerns its product (case_violation, the check's
-- rule): a hold placed before the case opened must not become a grant
-- while it is open. The hold is kept as it was, so the same redemption
-- succeeds once an admin resolves the case within the hold's TTL; the
-- attempt is audited. nil when no case is in the way.
local function case_refusal(h, actor)
  local v = case_violation(h.product, conflicts)
  if not v then return nil end
  events_append({type = 'refused', product = h.product, check_id = h.id, actor = actor, fence = h.fence, reason = v.reason, reasons = {v.reason}})
  return reply{kind = 'refused', violations = cjson.encode({v})}
end

-- grant turns the live hold h into a grant, unless the rule now refuses it.
local function grant(h, actor, otp)
  local vs = grant_violations({}, h.product, max, conflicts)
  if #vs > 0 then
    hold_finish(h, 'cancelled', actor, {type = 'cancelled', reason = vs[1].reason})
    return reply{kind = 'refused', violations = cjson.encode(vs)}
  end
  h.redeemed_by, h.granted, h.otp = actor, NOW_STR, otp
  return reply{kind = 'granted', grant = hold_finish(h, 'redeemed', actor, {type = 'redeemed'})}
end

-- redeem_otp: turn the customer's live hold of product into a grant with
-- its TOTP code, verified here so that an OTP redemption is one round trip
-- too. Arguments and reply: redeemOTPArgs, redeemReply (contract.go).
-- A redemption stores otp_digest(check id, code) in the grant, so that the
-- same client's retry with the same code can be told from a guess once the
-- hold (and its secret) is gone.
local h, m = live_hold('last:' .. product)
if not h or h.product ~= product then
  -- The product's newest check (last:<product>; 'last' for data written
  -- before that field existed).
  m = m or meta_read('last:' .. product)
  return ended(m.asked['last:' .. product] or m.last, actor, code, product)
end
-- An open case refuses before the code is looked at: no attempt is
-- counted, the hold is kept for after the case.
local refused = case_refusal(h, actor)
if refused then return refused end
-- Wrong codes also count per customer, across holds (meta otp_fails
-- since otp_since), so check, guess, cancel, repeat gains nothing.
local mo = redis.call('HMGET', K_META, 'otp_fails', 'otp_since')
local cfails, since = tonumber(mo[1]) or 0, tonumber(mo[2]) or 0
if NOW >= since + otp_window then cfails, since = 0, NOW end
if cfails >= otp_budget then return reply{kind = 'error', reason = 'otp_rate_limited', detail = tostring(since + otp_window - NOW)} end
-- Count the attempt before verifying it (a smart card's PIN counter): if
-- this write fails, as when a full Redis refuses a script's first write,
-- the code is never verified, so no failure can make wrong codes free to
-- try. A right code ends the hold, count and all.
local fails
if h.legacy then fails = redis.call('HINCRBY', K_HOLD, 'fails', 1) else fails = redis.call('HINCRBY', K_META, 'fails', '1') end
if not totp_ok(h.secret, code, math.floor(NOW / 1000), period, skew) then
  cfails = cfails + 1
  redis.call('HSET', K_META, 'otp_fails', cfails, 'otp_since', since)
  if cfails == otp_budget then
    events_append({type = 'otp_rate_limited', product = product, actor = actor})
  end
  if fails >= max_attempts then
    hold_finish(h, 'cancelled', actor, {type = 'cancelled', reason = 'otp_locked'})
    return reply{kind = 'error', reason = 'otp_locked', detail = 'locked'}
  end
  events_append({type = 'otp_failed', product = product, check_id = h.id, actor = actor, fence = h.fence})
  return reply{kind = 'error', reason = 'otp_invalid', detail = 'wrong code', attempts_left = max_attempts - fails}
end
return grant(h, actor, otp_digest(h.id, code))

end
local r = main(KEYS, ARGV)
return {EXPIRED, r}
