-- import: record a grant that exists in a product system, if the rules
-- that a redemption applies again (limits, cooling-off) allow it next to
-- the ledger; a family limit counts the live hold. It takes a fence like a
-- hold does, so fences stay monotonic per customer. A live hold is not
-- touched: its redemption re-applies the rules and fails if the import now
-- conflicts.
-- Arguments and reply: importArgs, grantReply.
local h, m = live_hold()
local vs = grant_violations({}, product, rules_of(rules), h)
if #vs > 0 then return reply{kind = KIND.refused, violations = cjson.encode(vs)} end
m = m or meta_read()
local g = {id = id, product = product, status = 'imported', fence = next_fence(m), granted = granted, redeemed_by = actor,
  granted_version = version}
redis.call('HSET', K_META, 'fence', g.fence)
meta_keep(AUDIT_RETENTION)
local enc = grant_put(g)
events_append({type = 'imported', product = product, check_id = id, actor = actor, fence = g.fence, version = version})
return reply{kind = KIND.ok, grant = enc}
