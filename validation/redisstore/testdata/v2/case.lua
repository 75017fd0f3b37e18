local op, case, actor, note = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local function reply(t) return {t.kind or false, t.reason or false, t.case or false, t.outcome or false} end
-- case: open or resolve the customer's reconciliation case (a double
-- holding found across the product systems). The case lives under the
-- customer's hash tag (K_CASE, see the prelude's "case" section) so that
-- its audit event is written atomically with it, and so that the check and
-- redeem scripts, which refuse while it is open, read it in their own
-- step; the index of open cases (another slot) is kept by the caller.
-- Arguments and reply: caseArgs, caseReply.
live_hold()
local old = case_raw()
if op == 'open' then
  local c = cjson.decode(case)
  if old then c.opened = cjson.decode(old).opened end
  local enc = cjson.encode(c)
  case_put(enc)
  if old then return reply{kind = 'ok', case = enc, outcome = 'refreshed'} end
  events_append({type = 'case_opened', actor = actor, note = c.detail})
  return reply{kind = 'ok', case = enc, outcome = 'opened'}
end
if not old then return reply{kind = 'error', reason = 'not_found'} end
case_drop()
events_append({type = 'case_resolved', actor = actor, note = note})
return reply{kind = 'ok', case = old, outcome = 'resolved'}

end
local r = main(KEYS, ARGV)
return {EXPIRED, r}
