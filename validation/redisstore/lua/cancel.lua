-- cancel: end a live hold. Arguments and reply: cancelArgs, checkOpReply
-- (contract.go). allowed: the products the actor may cancel (csv) or '*';
-- placer: the client whose own checks the actor may cancel too, or ''.
local h = live_hold()
local c = (h and h.id == id and h) or check_find(id)
if not c then return reply{kind = KIND.error, reason = REASON.check_not_found} end
if allowed ~= '*' and not split(allowed)[c.product] and (placer == '' or c.by ~= placer) then return reply{kind = KIND.error, reason = REASON.forbidden, detail = c.product} end
if c ~= h then return reply{kind = KIND.error, reason = REASON.check_not_held, detail = c.status} end
hold_finish(h, 'cancelled', actor, {type = 'cancelled', agent = agent, reason = 'cancelled'})
return reply{kind = KIND.ok, check = check_encode(h)}
