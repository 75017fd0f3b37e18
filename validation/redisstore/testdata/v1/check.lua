-- check: apply the policy and, only if the customer is free, place a hold.
-- ARGV[4] product, [5] max, [6] conflicts (csv), [7] check id, [8] secret (hex),
-- [9] hold ttl (ms), [10] actor, [11] agent, [12] request hash, [13] idempotency ttl (ms),
-- [14] min rating (0: none), [15] score ('' cache, number fresh, 'skip'), [16] rating cache ttl (ms)
-- Returns {'held', check} | {'replay', check, secret or ''} | {'refused', violations}
--       | {'need_rating'} | {'error', reason}
-- Idempotency records exist only for placed holds: a refusal has no side
-- effect to protect, so a retry under the same key decides again (a hold
-- cancelled since no longer refuses it). Records of refusals written by
-- earlier versions are ignored the same way. A key is scoped to its client
-- (in the key's hash) and to the customer (the record lives under the
-- customer's hash tag, the only place one script can reach on a cluster).
local product, max, conflicts = ARGV[4], tonumber(ARGV[5]), ARGV[6]
local id, secret, ttl = ARGV[7], ARGV[8], tonumber(ARGV[9])
local actor, agent, req_hash, idem_ttl = ARGV[10], ARGV[11], ARGV[12], tonumber(ARGV[13])
local min_rating, score_arg, rating_ttl = tonumber(ARGV[14]), ARGV[15], tonumber(ARGV[16])
local K_IDEM = KEYS[10]

settle()

if K_IDEM then
  local prev = redis.call('GET', K_IDEM)
  local p = prev and cjson.decode(prev)
  local c = p and p.check_id and get_check(p.check_id)
  -- A check arbiter gave up as lost (abandon.lua) was never delivered: its
  -- client's retry decides again instead of getting a dead check back.
  if c and c.end_reason == 'unknown_outcome' then p = nil end
  if p and p.check_id then
    if p.req ~= req_hash then return {'error', 'idempotency_key_reused'} end
    if not c then return {'error', 'check_not_found'} end
    local s = ''
    if redis.call('HGET', K_HOLD, 'check_id') == c.id then
      s = redis.call('HGET', K_HOLD, 'secret')
      -- The client has its check now: an abandon of it (see abandon.lua)
      -- must not cancel it.
      if not c.delivered then
        c.delivered = true
        put_check(c)
      end
    end
    return {'replay', cjson.encode(c), s}
  end
end

local vs, need = evaluate(product, max, conflicts, min_rating, score_arg, rating_ttl)
if need then return {need} end
if #vs > 0 then
  local enc = cjson.encode(vs)
  audit({type = 'refused', product = product, actor = actor, agent = agent, reason = vs[1].reason, reasons = reasons(vs)})
  return {'refused', enc}
end

-- A tombstone: arbiter gave this check up as lost before Redis ran it.
if redis.call('HGET', K_CHECKS, id) then return {'error', 'check_abandoned'} end

local fence = redis.call('HINCRBY', K_META, 'fence', 1)
local expires = NOW + ttl
-- last:<product> names the newest check of each product, so an OTP replay
-- finds its check even after a check of another product was placed.
redis.call('HSET', K_META, 'last', id, 'open', '1', 'last_product', product, 'last_expires', expires, 'last_fence', fence,
  'last:' .. product, id)
redis.call('HSET', K_HOLD, 'check_id', id, 'product', product, 'fence', fence, 'secret', secret,
  'fails', 0, 'expires', expires, 'by', actor)
redis.call('PEXPIRE', K_HOLD, ttl)

local c = {id = id, product = product, status = 'held', fence = fence, created = NOW,
  expires = expires, by = actor, agent = agent}
local enc_check = put_check(c)
redis.call('RPUSH', K_LOG, id)
-- Prune checks that ended more than the retention ago (oldest first, a few
-- per call, so the cost stays constant), and let an idle customer's history
-- go on its own.
for _ = 1, 4 do
  local head = redis.call('LINDEX', K_LOG, 0)
  if not head or head == id then break end
  local old = get_check(head)
  if old and (old.status == 'held' or old.ended + RETENTION > NOW) then break end
  redis.call('LPOP', K_LOG)
  redis.call('HDEL', K_CHECKS, head)
end
redis.call('PEXPIRE', K_CHECKS, ttl + RETENTION)
redis.call('PEXPIRE', K_LOG, ttl + RETENTION)

audit({type = 'checked', product = product, check_id = id, actor = actor, agent = agent, fence = fence})
if K_IDEM then
  redis.call('SET', K_IDEM, cjson.encode({req = req_hash, check_id = id}), 'PX', idem_ttl)
end
return {'held', enc_check}
