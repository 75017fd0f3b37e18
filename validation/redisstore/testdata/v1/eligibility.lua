-- eligibility: the dry run of a check. It evaluates exactly the rules a
-- check would (the same evaluate function), places nothing and audits
-- nothing; a fresh bureau score is cached as a check would cache it.
-- ARGV[4] product, [5] max, [6] conflicts, [7] min rating, [8] score, [9] rating ttl (ms)
-- Returns {'ok', violations or '[]', rating state} | {'need_rating'}
settle()
local vs, need, rstate = evaluate(ARGV[4], tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[9]))
if need then return {need} end
if #vs == 0 then return {'ok', '[]', rstate} end
return {'ok', cjson.encode(vs), rstate}
