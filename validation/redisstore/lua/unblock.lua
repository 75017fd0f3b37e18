-- unblock: take the customer off the blocklist. Arguments and reply:
-- actorArgs, checkOpReply.
live_hold()
if redis.call('DEL', K_BLOCK) == 0 then return reply{kind = KIND.error, reason = REASON.not_found} end
events_append({type = 'unblocked', actor = actor})
return reply{kind = KIND.ok}
