-- Reserves a branch sign-in attempt under one username or one address, for
-- every arbiter instance at once (store.go): the attempt counts as a
-- failure before its password is compared, so parallel guesses cannot all
-- pass a check made before any of them is counted. A success takes it back
-- (signin_release.lua, or a DEL for the username).
-- KEYS[1] arb:signin:user:<username> or arb:signin:addr:<address>
-- ARGV    now_ms, window_ms, max
-- Reply   {count, until_ms, admitted}: attempts in the window, the window's
--         end, and 1 when this one was counted, 0 when count reached max.
local now, window, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'n', 'until')
local n, untilms = tonumber(h[1]), tonumber(h[2])
if not untilms or now >= untilms then
  -- The first attempt opens the window; the TTL ends it.
  untilms = now + window
  redis.call('HSET', KEYS[1], 'n', 1, 'until', untilms)
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, untilms, 1}
end
if (n or 0) >= max then return {n or 0, untilms, 0} end
return {redis.call('HINCRBY', KEYS[1], 'n', 1), untilms, 1}
