local reason, until_ms, actor = ARGV[5], tonumber(ARGV[6]), ARGV[7]
local function reply(t) return {t.kind or false, t.reason or false, t.detail or false, t.check or false} end
-- block: put the customer on the blocklist. A live hold is cancelled (its
-- check ends with reason customer_blocked); grants are not touched.
-- Arguments and reply: blockArgs, checkOpReply (check: the cancelled one).
local h = live_hold()
redis.call('DEL', K_BLOCK)
redis.call('HSET', K_BLOCK, 'reason', reason, 'until', until_ms, 'by', actor, 'at', NOW)
if until_ms > 0 then redis.call('PEXPIREAT', K_BLOCK, until_ms) end
events_append({type = 'blocked', actor = actor, note = reason})
if not h then return reply{kind = 'ok'} end
hold_finish(h, 'cancelled', actor, {type = 'cancelled', reason = 'customer_blocked'})
return reply{kind = 'ok', check = check_encode(h)}

end
local r = main(KEYS, ARGV)
return {EXPIRED, r}
