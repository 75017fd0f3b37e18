-- import: record a grant that exists in a product system, if the rule allows
-- it next to the grants. It takes a fence like a hold does, so fences stay
-- monotonic per customer. A live hold is not touched: its redemption
-- re-applies the rule and fails if the import now conflicts.
-- ARGV[4] product, [5] max, [6] conflicts, [7] check id, [8] actor, [9] granted at (ms)
-- Returns {'ok', grant} | {'refused', violations}
local product, max, conflicts, id, actor, granted = ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9])
settle()
local vs = grant_violations({}, product, max, conflicts)
if #vs > 0 then return {'refused', cjson.encode(vs)} end
local fence = redis.call('HINCRBY', K_META, 'fence', 1)
local g = {check_id = id, product = product, fence = fence, granted = granted, by = actor}
local enc = cjson.encode(g)
redis.call('HSET', K_GRANTS, id, enc)
audit({type = 'imported', product = product, check_id = id, actor = actor, fence = fence})
return {'ok', enc}
