-- block: put the customer on the blocklist. A live hold is cancelled (its
-- check ends with reason customer_blocked); grants are not touched.
-- ARGV[4] reason, [5] until (ms, 0: indefinitely), [6] actor
-- Returns {'ok', the cancelled check's JSON or ''}
local reason, until_ms, actor = ARGV[4], tonumber(ARGV[5]), ARGV[6]
settle()
redis.call('DEL', K_BLOCK)
redis.call('HSET', K_BLOCK, 'reason', reason, 'until', until_ms, 'by', actor, 'at', NOW)
if until_ms > 0 then redis.call('PEXPIREAT', K_BLOCK, until_ms) end
audit({type = 'blocked', actor = actor, note = reason})
local id = redis.call('HGET', K_HOLD, 'check_id')
if not id then return {'ok', ''} end
local c = get_check(id)
redis.call('DEL', K_HOLD)
end_check(c, 'cancelled', actor, 'customer_blocked')
audit({type = 'cancelled', product = c.product, check_id = id, actor = actor, reason = 'customer_blocked', fence = c.fence})
return {'ok', cjson.encode(c)}
