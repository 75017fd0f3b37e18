-- cancel: end a live hold. ARGV[4] check id, [5] actor, [6] products the
-- actor may cancel (csv) or '*', [7] the agent acting through the actor,
-- [8] the client whose own checks the actor may cancel too, or ''.
-- Returns {'ok', check} | {'error', reason, status}
local id, actor, allowed, agent, placer = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
settle()
local c = get_check(id)
if not c then return {'error', 'check_not_found', ''} end
if allowed ~= '*' and not split(allowed)[c.product] and (placer == '' or c.by ~= placer) then return {'error', 'forbidden', c.product} end
if redis.call('HGET', K_HOLD, 'check_id') ~= id then return {'error', 'check_not_held', c.status} end
redis.call('DEL', K_HOLD)
end_check(c, 'cancelled', actor, 'cancelled')
audit({type = 'cancelled', product = c.product, check_id = id, actor = actor, agent = agent, reason = 'cancelled', fence = c.fence})
return {'ok', cjson.encode(c)}
