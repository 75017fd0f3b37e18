-- customer: the live hold's check (or ''), the block (or ''), then every grant.
settle()
local out = {'', ''}
local id = redis.call('HGET', K_HOLD, 'check_id')
if id then
  local raw = redis.call('HGET', K_CHECKS, id)
  if raw then out[1] = raw end
end
local b = redis.call('HMGET', K_BLOCK, 'reason', 'until', 'by', 'at')
if b[1] and (tonumber(b[2]) == 0 or tonumber(b[2]) > NOW) then
  out[2] = cjson.encode({note = b[1], ['until'] = tonumber(b[2]), by = b[3], since = tonumber(b[4])})
end
for _, g in ipairs(redis.call('HVALS', K_GRANTS)) do table.insert(out, g) end
return out
