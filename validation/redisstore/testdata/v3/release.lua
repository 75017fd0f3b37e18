local product, actor, want, keep_ended = ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9])
local function reply(t) return {t.kind or false, t.reason or false, t.grant or false, t.violations or false} end
if outbox_full() then return reply{kind = KIND.error, reason = REASON.outbox_full} end
-- release: end one of the customer's grants of a product: the one of check
-- want when given (exact compensation), else the most recent. A released
-- check stays readable as a record (status redeemed) for the retention,
-- so that a replay of its redemption is told grant_released.
-- Arguments and reply: releaseArgs, grantReply.
live_hold()
local latest
for _, raw in ipairs(redis.call('HVALS', K_GRANTS)) do
  if grant_product(raw) == product then
    local g = check_decode(raw)
    if (want == '' or g.id == want) and (not latest or by_granted(latest, g)) then latest = g end
  end
end
if not latest then return reply{kind = KIND.error, reason = REASON.grant_not_found} end
redis.call('HDEL', K_GRANTS, latest.id)
ended_put(product, keep_ended)
local enc = check_encode(latest)
if latest.status == 'redeemed' then record_put(latest) end
events_append({type = 'released', product = product, check_id = latest.id, actor = actor, fence = latest.fence})
return reply{kind = KIND.ok, grant = enc}

end
local r = main(KEYS, ARGV)
return {EXPIRED, r}
