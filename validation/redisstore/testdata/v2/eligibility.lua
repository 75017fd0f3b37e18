local product, max, conflicts, min_rating, score_arg, rating_ttl = ARGV[5], tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8]), ARGV[9], tonumber(ARGV[10])
local function reply(t) return {t.kind or false, t.violations or false, t.rating or false} end
-- eligibility: the dry run of a check. It evaluates exactly the rules a
-- check would (the same evaluate function), places nothing and audits
-- nothing; a fresh bureau score is cached as a check would cache it.
-- Arguments and reply: eligibilityArgs, eligibilityReply.
local h = live_hold()
local vs, need, rstate = evaluate(h, product, max, conflicts, min_rating, score_arg, rating_ttl)
if need then return reply{kind = need} end
if #vs == 0 then return reply{kind = 'ok', violations = '[]', rating = rstate} end
return reply{kind = 'ok', violations = cjson.encode(vs), rating = rstate}

end
local r = main(KEYS, ARGV)
return {EXPIRED, r}
