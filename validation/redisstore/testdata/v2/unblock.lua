local actor = ARGV[5]
local function reply(t) return {t.kind or false, t.reason or false, t.detail or false, t.check or false} end
-- unblock: take the customer off the blocklist. Arguments and reply:
-- actorArgs, checkOpReply.
live_hold()
if redis.call('DEL', K_BLOCK) == 0 then return reply{kind = 'error', reason = 'not_blocked'} end
events_append({type = 'unblocked', actor = actor})
return reply{kind = 'ok'}

end
local r = main(KEYS, ARGV)
return {EXPIRED, r}
