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
