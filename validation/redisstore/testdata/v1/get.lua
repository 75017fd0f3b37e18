-- get: one check by id, with the hold's secret while it is live.
-- ARGV[4] check id. Returns {} when unknown, else {check, secret or ''}.
settle()
local c = get_check(ARGV[4])
if not c then return {} end
local h = redis.call('HMGET', K_HOLD, 'check_id', 'secret')
if h[1] == c.id then return {cjson.encode(c), h[2]} end
return {cjson.encode(c), ''}
