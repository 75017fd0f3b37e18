-- Takes back one attempt signin_fail.lua reserved, when it turned out not
-- to be a failure (a success from an address, or no password compared).
-- KEYS[1] arb:signin:user:<username> or arb:signin:addr:<address>
-- Reply   the count left (0 when there was none).
local n = tonumber(redis.call('HGET', KEYS[1], 'n'))
if not n or n <= 0 then return 0 end
return redis.call('HINCRBY', KEYS[1], 'n', -1)
