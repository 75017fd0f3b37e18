-- redeem_token: turn the live hold of check id into a grant (the caller
-- verified the approval token naming it). Arguments and reply:
-- redeemTokenArgs, redeemReply (store.go).
local h = live_hold()
if not h or h.id ~= id then return ended(id, actor) end
if h.product ~= product then return reply{kind = 'error', reason = 'token_invalid', detail = 'product'} end
return grant(h, actor)
