-- unblock: take the customer off the blocklist. ARGV[4] actor.
-- Returns {'ok'} | {'error', 'not_blocked'}
settle()
if redis.call('DEL', K_BLOCK) == 0 then return {'error', 'not_blocked'} end
audit({type = 'unblocked', actor = ARGV[4]})
return {'ok'}
