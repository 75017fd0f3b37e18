local product, max, conflicts, id, actor, granted = ARGV[5], tonumber(ARGV[6]), ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10])
local function reply(t) return {t.kind or false, t.reason or false, t.grant or false, t.violations or false} end
-- import: record a grant that exists in a product system, if the rule allows
-- it next to the grants. It takes a fence like a hold does, so fences stay
-- monotonic per customer. A live hold is not touched: its redemption
-- re-applies the rule and fails if the import now conflicts.
-- Arguments and reply: importArgs, grantReply.
local h, m = live_hold()
local vs = grant_violations({}, product, max, conflicts)
if #vs > 0 then return reply{kind = 'refused', violations = cjson.encode(vs)} end
m = m or meta_read()
local g = {id = id, product = product, status = 'imported', fence = next_fence(m), granted = granted, redeemed_by = actor}
redis.call('HSET', K_META, 'fence', g.fence)
redis.call('PEXPIRE', K_META, AUDIT_RETENTION)
local enc = grant_put(g)
events_append({type = 'imported', product = product, check_id = id, actor = actor, fence = g.fence})
return reply{kind = 'ok', grant = enc}

end
local r = main(KEYS, ARGV)
return {EXPIRED, r}
