-- customer: the live hold's check (or '') followed by every grant.
settle()
local out = {''}
local id = redis.call('HGET', K_HOLD, 'check_id')
if id then
  local raw = redis.call('HGET', K_CHECKS, id)
  if raw then out[1] = raw end
end
for _, g in ipairs(redis.call('HVALS', K_GRANTS)) do table.insert(out, g) end
return out
