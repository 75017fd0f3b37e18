-- abandon: a check whose creator never got the answer (the reply was lost,
-- so the check script may or may not have run) must not lock the customer
-- for the hold's TTL. ARGV[4] check id, [5] actor.
-- * The script ran and its hold is live: cancel it (reason unknown_outcome),
--   unless an idempotent replay delivered the check since (then its client
--   has it and may redeem it).
-- * The script has not run (yet): leave a tombstone, the check recorded as
--   cancelled, so that if Redis runs it late it places nothing.
-- * Otherwise (redeemed, cancelled, expired): nothing to do.
-- Returns {'ok', 'cancelled' | 'tombstone' | 'delivered' | 'ended'}
local id, actor = ARGV[4], ARGV[5]
settle()
local c = get_check(id)
if not c then
  put_check({id = id, status = 'cancelled', created = NOW, ended = NOW, ended_by = actor, end_reason = 'unknown_outcome'})
  -- Keep the tombstone at least the retention (2x: never shorter than the
  -- hold TTL + retention a check sets), and let it go with the hash.
  redis.call('PEXPIRE', K_CHECKS, 2 * RETENTION)
  return {'ok', 'tombstone'}
end
if redis.call('HGET', K_HOLD, 'check_id') ~= id then return {'ok', 'ended'} end
if c.delivered then return {'ok', 'delivered'} end
redis.call('DEL', K_HOLD)
end_check(c, 'cancelled', actor, 'unknown_outcome')
audit({type = 'cancelled', product = c.product, check_id = id, actor = actor, reason = 'unknown_outcome', fence = c.fence})
return {'ok', 'cancelled'}
