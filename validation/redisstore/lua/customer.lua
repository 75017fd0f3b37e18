-- customer: the live hold, the block, every grant. Reply: customerReply.
local h = live_hold()
local b = block_read()
local grants = grants_all()
for i, g in ipairs(grants) do grants[i] = check_encode(g) end
return reply{hold = h and check_encode(h), block = b and cjson.encode(b), grants = grants}
