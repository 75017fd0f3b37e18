local product, id, actor, rules, version, token = ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local function reply(t) return {t.kind or false, t.reason or false, t.detail or false, t.attempts_left or false, t.grant or false, t.violations or false} end
if outbox_full() then return reply{kind = KIND.error, reason = REASON.outbox_full} end
-- The redemption rules both redeem scripts share (redeem_token.lua,
-- redeem_otp.lua): what a redemption of a check that is not the live hold
-- gets, and turning the live hold into a grant. The rules of the version in
-- force (rules, read once here) are applied again to the ledger (limits and
-- cooling-off, rules.lua), so no path (import, release, policy change) can
-- make a redemption break the policy.
local RULES = rules_of(rules)

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
  if not id then return reply{kind = KIND.error, reason = REASON.hold_expired, detail = 'unknown'} end
  local raw = redis.call('HGET', K_GRANTS, id)
  if raw then
    local g = check_decode(raw)
    if product and g.product ~= product then return reply{kind = KIND.error, reason = REASON.hold_expired, detail = 'unknown'} end
    if accept and not accept(g) then return reply{kind = KIND.error, reason = REASON.token_invalid, detail = 'secret'} end
    if g.redeemed_by ~= actor then return reply{kind = KIND.error, reason = REASON.already_redeemed, detail = g.redeemed_by} end
    if code and g.otp ~= otp_digest(id, code) then return reply{kind = KIND.error, reason = REASON.otp_invalid, detail = 'replay'} end
    return reply{kind = KIND.replay, grant = raw}
  end
  local c = record_get(id)
  if not c or (product and c.product ~= product) then return reply{kind = KIND.error, reason = REASON.hold_expired, detail = 'unknown'} end
  if accept and not accept(c) then return reply{kind = KIND.error, reason = REASON.token_invalid, detail = 'secret'} end
  if c.status == 'redeemed' then return reply{kind = KIND.error, reason = REASON.grant_released, detail = id} end
  if c.end_reason == 'otp_locked' then return reply{kind = KIND.error, reason = REASON.otp_locked, detail = 'locked'} end
  return reply{kind = KIND.error, reason = REASON.hold_expired, detail = c.status}
end

-- case_refusal refuses the redemption of the live hold h while the
-- customer's open case concerns its product (case_violation, the check's
-- rule): a hold placed before the case opened must not become a grant
-- while it is open. The hold is kept as it was, so the same redemption
-- succeeds once an admin resolves the case within the hold's TTL; the
-- attempt is audited. nil when no case is in the way.
local function case_refusal(h, actor)
  local v = case_violation(RULES)
  if not v then return nil end
  events_append({type = 'refused', product = h.product, check_id = h.id, actor = actor, fence = h.fence, reason = v.reason, reasons = {v.reason},
    version = version})
  return reply{kind = KIND.refused, violations = cjson.encode({v})}
end

-- grant turns the live hold h into a grant, unless the rule now refuses it.
local function grant(h, actor, otp)
  local vs = grant_violations({}, h.product, RULES, nil)
  if #vs > 0 then
    hold_finish(h, 'cancelled', actor, {type = 'cancelled', reason = vs[1].reason, version = version})
    return reply{kind = KIND.refused, violations = cjson.encode(vs)}
  end
  h.redeemed_by, h.granted, h.otp = actor, NOW_STR, otp
  -- The version it is granted under, kept only when it is not the one it
  -- was checked under (a grant reads its version as the check's then).
  if version ~= h.version then h.granted_version = version end
  return reply{kind = KIND.granted, grant = hold_finish(h, 'redeemed', actor, {type = 'redeemed', version = version})}
end

-- redeem_token: turn the live hold of check id into a grant. Arguments and
-- reply: redeemTokenArgs, redeemReply (contract.go).
-- The caller verified the approval token's audience, issuer and expiry, but
-- not its signature when the token carries the check's secret: token is
-- then the secret's digest, which must be the one the check keeps (only
-- arbiter ever saw the secret before it signed the token, so a token with
-- the right one is arbiter's). token is '' for a token without a secret,
-- whose signature the caller verified: that is only accepted for a check
-- keeping no digest (placed before checks kept one), so removing the claim
-- from a newer token gains nothing.
local function token_ok(c) return (c.token or '') == token end
local h = live_hold()
if not h or h.id ~= id then return ended(id, actor, nil, nil, token_ok) end
if not token_ok(h) then return reply{kind = KIND.error, reason = REASON.token_invalid, detail = 'secret'} end
if h.product ~= product then return reply{kind = KIND.error, reason = REASON.token_invalid, detail = 'product'} end
local refused = case_refusal(h, actor)
if refused then return refused end
return grant(h, actor)

end
local r = main(KEYS, ARGV)
return {EXPIRED, r}
