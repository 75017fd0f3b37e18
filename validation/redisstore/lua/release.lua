-- release: end one of the customer's grants of a product: the one of check
-- want when given (exact compensation), else the most recent. A released
-- check stays readable as a record (status redeemed) for the retention,
-- so that a replay of its redemption is told grant_released.
-- Arguments and reply: releaseArgs, grantReply.
live_hold()
local latest
local all = redis.call('HGETALL', K_GRANTS)
for i = 1, #all, 2 do
  if grant_product(all[i + 1]) == product and (want == '' or all[i] == want) then
    local g = grant_decode(all[i], all[i + 1])
    if not latest or by_granted(latest, g) then latest = g end
  end
end
if not latest then return reply{kind = KIND.error, reason = REASON.grant_not_found} end
redis.call('HDEL', K_GRANTS, latest.id)
ended_put(product, keep_ended)
local enc = check_encode(latest)
if latest.status == 'redeemed' then record_put(latest) end
events_append({type = 'released', product = product, check_id = latest.id, actor = actor, fence = latest.fence})
return reply{kind = KIND.ok, grant = enc}
