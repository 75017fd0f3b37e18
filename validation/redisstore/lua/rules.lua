-- The rule engine: one evaluator for every kind of rule, applied at a
-- check, its dry run (eligibility), a redemption and an import, inside
-- their one script. The policy version in force compiles, in Go, each
-- product's rules (validation.Rule); rulesArg (rules.go) writes them as one
-- argument, rules, which rules_of reads. Its reference in Go is
-- validation.Rule.Evaluate; the differential test holds the two to the
-- same answers on random policies and histories.
--
-- The rules argument: entries separated by ';', their fields by '|'
-- (product and rule names are lowercase letters, digits and _):
--   L|<scope>|<max>|<name>|<p1,p2,...>  a limit (validation.LimitKind):
--                                       scope p (the product's max), x (its
--                                       exclusive groups: the products in
--                                       conflict), f (a family)
--   C|<period ms>|<name>|<p1,p2,...>    a cooling-off rule: the products
--                                       whose end starts the period
--   R|<min>                             the minimum rating
--
-- Each kind has one section below: rule_limit, rule_cooling_off, and the
-- rating in evaluate. A new kind is a new entry letter, parsed in
-- rules_of, and its section (docs/architecture.md, "Adding a kind of
-- rule").

local function set_of(list)
  local set = {}
  for _, p in ipairs(list) do set[p] = true end
  return set
end

local function list_of(csv)
  local list = {}
  for p in string.gmatch(csv, '[^,]+') do list[#list + 1] = p end
  return list
end

-- rules_of reads the rules argument: {limits, cooling, min_rating,
-- related}, related being the set of every product a limit names (the
-- product's own among them): what an open case must concern to hold the
-- product's line, and the only grants the limits read. What it read is
-- kept, read-only, by the argument: the function library keeps its
-- locals from one call to the next, so a check reads its product's rules
-- once per policy version, not once per call (a script starts each call
-- with the cache empty). A policy has a few arguments, one per product
-- and version; RULES_CACHE_MAX bounds them whatever the callers send.
local rules_cache, rules_cached, RULES_CACHE_MAX = {}, 0, 256
local function rules_of(arg)
  local cached = rules_cache[arg]
  if cached then return cached end
  local r = {limits = {}, cooling = {}, min_rating = 0, related = {}}
  for entry in string.gmatch(arg, '[^;]+') do
    local t = {}
    for field in string.gmatch(entry .. '|', '([^|]*)|') do t[#t + 1] = field end
    if t[1] == 'L' then
      local products = list_of(t[5])
      table.insert(r.limits, {scope = t[2], max = tonumber(t[3]), name = t[4], set = set_of(products)})
      for _, p in ipairs(products) do r.related[p] = true end
    elseif t[1] == 'C' then
      table.insert(r.cooling, {period = tonumber(t[2]), name = t[3], after = list_of(t[4])})
    elseif t[1] == 'R' then
      r.min_rating = tonumber(t[2])
    else
      error('arbiter: unknown rule entry ' .. entry)
    end
  end
  if rules_cached >= RULES_CACHE_MAX then rules_cache, rules_cached = {}, 0 end
  rules_cache[arg], rules_cached = r, rules_cached + 1
  return r
end

-- ## the case rule: an open reconciliation case (K_CASE) holds the line
-- of the products it concerns and of every product sharing a limit with
-- one of them: case_violation returns the case_open violation while the
-- customer's open case names a product of rules.related; nil otherwise.
local function case_violation(rules)
  local raw = case_raw()
  if not raw then return nil end
  local c = cjson.decode(raw)
  if type(c.products) ~= 'table' then return nil end
  for _, p in ipairs(c.products) do
    if rules.related[p] then
      return violation(REASON.case_open, {products = c.products, since = c.opened, note = c.detail})
    end
  end
  return nil
end

-- ## limits: at most max products of a set (validation/rule_limit.go).
-- in: the grants of the set, oldest first; h: the live hold, counted by a
-- family (nil at a redemption, whose hold is the product asked for).
local function rule_limit(vs, l, product, grants, h)
  local held = {}
  for _, g in ipairs(grants) do
    if l.set[g.product] then held[#held + 1] = g end
  end
  if l.scope == 'p' then
    if #held > 0 and #held + 1 > l.max then
      table.insert(vs, violation(REASON.already_holds_product, {product = product, check_id = held[1].id, since = tonumber(held[1].granted)}))
    end
  elseif l.scope == 'x' then
    for _, g in ipairs(held) do
      table.insert(vs, violation(REASON.conflicting_product, {product = g.product, check_id = g.id, since = tonumber(g.granted)}))
    end
  elseif l.scope == 'f' then
    local count = #held
    if h and l.set[h.product] then count = count + 1 end
    if count + 1 > l.max then
      local list = {}
      for i, g in ipairs(held) do list[i] = {product = g.product, check_id = g.id, since = tonumber(g.granted)} end
      if count > #held then
        list[#list + 1] = {product = h.product, check_id = h.id, since = tonumber(h.created), ['until'] = tonumber(h.expires)}
      end
      table.insert(vs, violation(REASON.family_limit, {rule = l.name, limit = l.max, held = list}))
    end
  else
    error('arbiter: unknown limit scope ' .. tostring(l.scope))
  end
end

-- ## cooling-off: no product within period ms after a product of after
-- ended (K_ENDED; validation/rule_cooling.go). The violation names the
-- product that ended last (the first in after on a tie).
local function rule_cooling_off(vs, c)
  local at = redis.call('HMGET', K_ENDED, unpack(c.after))
  local last, last_at
  for i, p in ipairs(c.after) do
    local e = tonumber(at[i])
    if e and NOW < e + c.period and (not last_at or e > last_at) then last, last_at = p, e end
  end
  if last then
    table.insert(vs, violation(REASON.cooling_off, {rule = c.name, product = last, since = last_at, ['until'] = last_at + c.period}))
  end
end

-- grant_violations appends the violations of the rules that a redemption
-- and an import apply again to the ledger: the limits, then the cooling-off
-- periods. Only the grants of related products are decoded.
local function grant_violations(vs, product, rules, h)
  local grants = {}
  local all = redis.call('HGETALL', K_GRANTS)
  for i = 1, #all, 2 do
    if rules.related[grant_product(all[i + 1])] then grants[#grants + 1] = grant_decode(all[i], all[i + 1]) end
  end
  table.sort(grants, by_granted)
  for _, l in ipairs(rules.limits) do rule_limit(vs, l, product, grants, h) end
  for _, c in ipairs(rules.cooling) do rule_cooling_off(vs, c) end
  return vs
end

-- evaluate applies every rule of a check to the customer and its live
-- hold h, returning the failed ones in a fixed order: customer_blocked,
-- case_open, rating_too_low, the limits' (already_holds_product,
-- conflicting_product, family_limit), cooling_off, hold_exists.
-- The rating rule (min_rating > 0) uses score_arg: '' reads the cached
-- score, a number is a fresh score from the bureau (cached here for
-- rating_ttl ms), 'skip' passes the rule unevaluated. The bureau is asked
-- only when its answer can change the decision: when the cache is cold and
-- every other rule passes, evaluate returns nil and 'need_rating', having
-- written nothing. The third result is the rating rule's state: none (no
-- min_rating), skip (bureau unavailable, policy allows), unknown (cold
-- cache, not worth a bureau call because other rules fail), pass or fail.
local function evaluate(h, product, rules, score_arg, rating_ttl)
  local vs = {}
  local b = block_read()
  if b then table.insert(vs, violation(REASON.customer_blocked, b)) end
  local case_open = case_violation(rules)
  if case_open then table.insert(vs, case_open) end
  local rating_at = #vs + 1
  grant_violations(vs, product, rules, h)
  if h then
    table.insert(vs, violation(REASON.hold_exists, {product = h.product, check_id = h.id, ['until'] = tonumber(h.expires), by = h.by}))
  end
  local min_rating = rules.min_rating
  if min_rating == 0 then return vs, nil, 'none' end
  if score_arg == 'skip' then return vs, nil, 'skip' end
  local score
  if score_arg ~= '' then
    score = tonumber(score_arg)
    redis.call('SET', K_RATING, score, 'PX', rating_ttl)
  else
    score = tonumber(redis.call('GET', K_RATING))
    if not score then
      if #vs == 0 then return nil, KIND.need_rating end
      return vs, nil, 'unknown'
    end
  end
  if score < min_rating then
    table.insert(vs, rating_at, violation(REASON.rating_too_low, {product = product, required = min_rating, score = score}))
    return vs, nil, 'fail'
  end
  return vs, nil, 'pass'
end

-- reasons lists the reason codes of violations, for the audit trail.
local function reasons(vs)
  local out = {}
  for i, v in ipairs(vs) do out[i] = v.reason end
  return out
end
