local id, actor, allowed, agent, placer = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local function reply(t) return {t.kind or false, t.reason or false, t.detail or false, t.check or false} end
-- cancel: end a live hold. Arguments and reply: cancelArgs, checkOpReply
-- (contract.go). allowed: the products the actor may cancel (csv) or '*';
-- placer: the client whose own checks the actor may cancel too, or ''.
local h = live_hold()
local c = (h and h.id == id and h) or check_find(id)
if not c then return reply{kind = 'error', reason = 'check_not_found'} end
if allowed ~= '*' and not split(allowed)[c.product] and (placer == '' or c.by ~= placer) then return reply{kind = 'error', reason = 'forbidden', detail = c.product} end
if c ~= h then return reply{kind = 'error', reason = 'check_not_held', detail = c.status} end
hold_finish(h, 'cancelled', actor, {type = 'cancelled', agent = agent, reason = 'cancelled'})
return reply{kind = 'ok', check = check_encode(h)}

end
local r = main(KEYS, ARGV)
return {EXPIRED, r}
