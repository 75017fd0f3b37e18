-- release: end one of the customer's grants of a product: the one of check
-- ARGV[6] when given (exact compensation), else the most recent.
-- ARGV[4] product, [5] actor, [6] check id or ''.
-- Returns {'ok', grant} | {'error', 'grant_not_found'}
local product, actor, want = ARGV[4], ARGV[5], ARGV[6]
settle()
local latest
for _, raw in ipairs(redis.call('HVALS', K_GRANTS)) do
  local g = cjson.decode(raw)
  if g.product == product and (want == '' or g.check_id == want) and (not latest or by_granted(latest, g)) then latest = g end
end
if not latest then return {'error', 'grant_not_found'} end
redis.call('HDEL', K_GRANTS, latest.check_id)
audit({type = 'released', product = product, check_id = latest.check_id, actor = actor, fence = latest.fence})
return {'ok', cjson.encode(latest)}
