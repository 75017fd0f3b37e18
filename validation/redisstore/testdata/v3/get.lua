local id = ARGV[6]
local function reply(t) return {t.kind or false, t.reason or false, t.detail or false, t.check or false} end
-- get: one check by id, with the hold's secret while it is live.
-- Arguments and reply: idArgs, checkOpReply (no check: unknown).
local h = live_hold()
local c = (h and h.id == id and h) or check_find(id)
if not c then return reply{kind = KIND.ok} end
return reply{kind = KIND.ok, check = check_encode(c)}

end
local r = main(KEYS, ARGV)
return {EXPIRED, r}
