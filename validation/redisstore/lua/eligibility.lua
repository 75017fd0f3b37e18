-- eligibility: the dry run of a check. It evaluates exactly the rules a
-- check would (the same evaluate function), places nothing and audits
-- nothing; a fresh bureau score is cached as a check would cache it.
-- Arguments and reply: eligibilityArgs, eligibilityReply.
local h = live_hold()
local vs, need, rstate = evaluate(h, product, rules_of(rules), score_arg, rating_ttl)
if need then return reply{kind = KIND.need_rating} end
if #vs == 0 then return reply{kind = KIND.ok, violations = '[]', rating = rstate} end
return reply{kind = KIND.ok, violations = cjson.encode(vs), rating = rstate}
