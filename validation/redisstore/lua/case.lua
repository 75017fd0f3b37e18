-- case: open or resolve the customer's reconciliation case (a double
-- holding found across the product systems). The case lives under the
-- customer's hash tag so that its audit event is written atomically with it;
-- the index of open cases (another slot) is kept by the caller.
-- Arguments and reply: caseArgs, caseReply; the case (a string, JSON) is
-- the key after the customer's.
local K_CASE = KEYS[#KEYS]
live_hold()
local old = redis.call('GET', K_CASE)
if op == 'open' then
  local c = cjson.decode(case)
  if old then c.opened = cjson.decode(old).opened end
  local enc = cjson.encode(c)
  redis.call('SET', K_CASE, enc)
  if old then return reply{kind = 'ok', case = enc, outcome = 'refreshed'} end
  events_append({type = 'case_opened', actor = actor, note = c.detail})
  return reply{kind = 'ok', case = enc, outcome = 'opened'}
end
if not old then return reply{kind = 'error', reason = 'not_found'} end
redis.call('DEL', K_CASE)
events_append({type = 'case_resolved', actor = actor, note = note})
return reply{kind = 'ok', case = old, outcome = 'resolved'}
