-- Counts a failed branch sign-in under one username or one address, for
-- every arbiter instance at once (sessions.go).
-- KEYS[1] arb:signin:user:<username> or arb:signin:addr:<address>
-- ARGV    now_ms, window_ms
-- Reply   {count, until_ms}: failures in the window and the window's end.
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local untilms = tonumber(redis.call('HGET', KEYS[1], 'until'))
if not untilms or now >= untilms then
  -- The first failure opens the window; the TTL ends it.
  untilms = now + window
  redis.call('HSET', KEYS[1], 'n', 1, 'until', untilms)
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, untilms}
end
return {redis.call('HINCRBY', KEYS[1], 'n', 1), untilms}
