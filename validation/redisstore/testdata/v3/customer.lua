local function reply(t) return {t.hold or false, t.block or false, t.grants or false} end
-- customer: the live hold, the block, every grant. Reply: customerReply.
local h = live_hold()
local b = block_read()
return reply{hold = h and check_encode(h), block = b and cjson.encode(b), grants = redis.call('HVALS', K_GRANTS)}

end
local r = main(KEYS, ARGV)
return {EXPIRED, r}
