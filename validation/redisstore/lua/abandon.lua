-- abandon: a check whose creator never got the answer (the reply was lost,
-- so the check script may or may not have run) must not lock the customer
-- for the hold's TTL. Arguments and reply: abandonArgs, checkOpReply.
-- * The script ran and its hold is live: cancel it (reason unknown_outcome),
--   unless an idempotent replay delivered the check since (then its client
--   has it and may redeem it).
-- * The script has not run (yet): leave a tombstone (t:<id> in meta, which
--   the check script reads anyway, and the check recorded as cancelled), so
--   that if Redis runs it late it places nothing.
-- * Otherwise (redeemed, cancelled, expired): nothing to do.
local h = live_hold()
local c = (h and h.id == id and h) or check_find(id)
if not c then
  record_put({id = id, status = 'cancelled', created = NOW, ended = NOW, ended_by = actor, end_reason = 'unknown_outcome'})
  redis.call('HSET', K_META, 't:' .. id, '1')
  meta_keep(AUDIT_RETENTION)
  return reply{kind = KIND.ok, detail = 'tombstone'}
end
if c ~= h then return reply{kind = KIND.ok, detail = 'ended'} end
if c.delivered then return reply{kind = KIND.ok, detail = 'delivered'} end
hold_finish(h, 'cancelled', actor, {type = 'cancelled', reason = 'unknown_outcome'})
return reply{kind = KIND.ok, detail = 'cancelled'}
