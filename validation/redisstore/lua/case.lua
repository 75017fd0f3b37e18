-- case: open or resolve the customer's reconciliation case (a double
-- holding found across the product systems). The case lives under the
-- customer's hash tag so that its audit event is written atomically with it;
-- the index of open cases (another slot) is kept by the caller.
-- KEYS[10] the case (string, JSON).
-- ARGV[4] 'open' | 'resolve'; open: [5] case JSON, [6] actor;
-- resolve: [5] actor, [6] note.
-- Returns {'ok', case JSON, 'opened' | 'refreshed' | 'resolved'} | {'error', 'not_found'}
local K_CASE = KEYS[10]
local op = ARGV[4]
settle()
local old = redis.call('GET', K_CASE)
if op == 'open' then
  local c = cjson.decode(ARGV[5])
  if old then c.opened = cjson.decode(old).opened end
  local enc = cjson.encode(c)
  redis.call('SET', K_CASE, enc)
  if old then return {'ok', enc, 'refreshed'} end
  audit({type = 'case_opened', actor = ARGV[6], note = c.detail})
  return {'ok', enc, 'opened'}
end
if not old then return {'error', 'not_found'} end
redis.call('DEL', K_CASE)
audit({type = 'case_resolved', actor = ARGV[5], note = ARGV[6]})
return {'ok', old, 'resolved'}
