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
if cfails >= otp_budget then return reply{kind = KIND.error, reason = REASON.otp_rate_limited, detail = tostring(since + otp_window - NOW)} end
-- Count the attempt before verifying it (a smart card's PIN counter): if
-- this write fails, as when a full Redis refuses a script's first write,
-- the code is never verified, so no failure can make wrong codes free to
-- try. A right code ends the hold, count and all.
local fails = redis.call('HINCRBY', K_META, 'fails', '1')
if not totp_ok(h.secret, code, math.floor(NOW / 1000), period, skew) then
  cfails = cfails + 1
  redis.call('HSET', K_META, 'otp_fails', cfails, 'otp_since', since)
  if cfails == otp_budget then
    events_append({type = 'otp_rate_limited', product = product, actor = actor})
  end
  if fails >= max_attempts then
    hold_finish(h, 'cancelled', actor, {type = 'cancelled', reason = 'otp_locked'})
    return reply{kind = KIND.error, reason = REASON.otp_locked, detail = 'locked'}
  end
  events_append({type = 'otp_failed', product = product, check_id = h.id, actor = actor, fence = h.fence})
  return reply{kind = KIND.error, reason = REASON.otp_invalid, detail = 'wrong code', attempts_left = max_attempts - fails}
end
return grant(h, actor, otp_digest(h.id, code))
