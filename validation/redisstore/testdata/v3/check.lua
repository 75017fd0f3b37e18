local product, rules, version, id, secret, token, ttl, ttl_str, actor, agent, req_hash, idem_ttl, idem_ttl_str, score_arg, rating_ttl = ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], tonumber(ARGV[12]), ARGV[12], ARGV[13], ARGV[14], ARGV[15], tonumber(ARGV[16]), ARGV[16], ARGV[17], tonumber(ARGV[18])
local function reply(t) return {t.kind or false, t.reason or false, t.fence or false, t.check or false, t.violations or false} end
if outbox_full() then return reply{kind = KIND.error, reason = REASON.outbox_full} end
-- check: apply the policy and, only if the customer is free, place a hold.
-- Arguments and reply: checkArgs, checkReply (contract.go).
-- Idempotency records exist only for placed holds: a refusal has no side
-- effect to protect, so a retry under the same key decides again (a hold
-- cancelled since no longer refuses it). A key is scoped to its client
-- (in the key's hash) and to the customer (the record lives under the
-- customer's hash tag, the only place one script can reach on a cluster).
local h, m = live_hold('t:' .. id)

if K_IDEM then
  local prev = redis.call('GET', K_IDEM)
  local p = prev and cjson.decode(prev)
  -- A record without check_id is a refusal's, as releases before the
  -- migration wrote them.
  local c = p and ((h and h.id == p.check_id and h) or check_find(p.check_id or error(RETIRED)))
  -- A check arbiter gave up as lost (abandon.lua) was never delivered: its
  -- client's retry decides again instead of getting a dead check back.
  if c and c.end_reason == 'unknown_outcome' then p = nil end
  if p then
    if p.req ~= req_hash then return reply{kind = KIND.error, reason = REASON.idempotency_key_reused} end
    if not c then return reply{kind = KIND.error, reason = REASON.check_not_found} end
    -- The client has its check now: an abandon of it (see abandon.lua)
    -- must not cancel it.
    if c == h and not h.delivered then
      h.delivered = '1'
      hold_update(h)
    end
    if c ~= h then c.secret = nil end
    return reply{kind = KIND.replay, check = check_encode(c)}
  end
end

local vs, need = evaluate(h, product, rules_of(rules), score_arg, rating_ttl)
if need then return reply{kind = KIND.need_rating} end
if #vs > 0 then
  events_append({type = 'refused', product = product, actor = actor, agent = agent, reason = vs[1].reason, reasons = reasons(vs),
    version = version})
  return reply{kind = KIND.refused, violations = cjson.encode(vs)}
end

-- A tombstone: arbiter gave this check up as lost before Redis ran it.
if m.asked['t:' .. id] then return reply{kind = KIND.error, reason = REASON.check_abandoned} end

-- Its numbers are strings from here on, as a stored check's are: each is
-- written three times (the hold, meta's shadow, the reply) and turned into
-- a string once.
local c = {id = id, product = product, status = 'held', fence = tostring(next_fence(m)), created = NOW_STR,
  expires = tostring(NOW + ttl), by = actor, agent = agent, secret = secret, token = token, version = version}
hold_place(c, ttl_str, m)
if K_IDEM then
  redis.call('SET', K_IDEM, cjson.encode({req = req_hash, check_id = id}), 'PX', idem_ttl_str)
end
return reply{kind = KIND.held, fence = c.fence}

end
local r = main(KEYS, ARGV)
return {EXPIRED, r}
