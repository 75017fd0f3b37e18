-- Reads a branch session and restarts its idle time, in one step, so that
-- no instance can extend a session another has just found dead.
-- KEYS[1] arb:session:<sha-256 of the cookie's id>
-- ARGV    now_ms, idle_ms
-- Reply   the value, or nil when there is no live session (then deleted).
local s = redis.call('HMGET', KEYS[1], 'v', 'seen', 'exp')
if not s[1] then return false end
local now, idle = tonumber(ARGV[1]), tonumber(ARGV[2])
local seen, expires = tonumber(s[2]), tonumber(s[3])
-- The TTL enforces both limits; checking them here too makes them hold to
-- the caller's clock, and on a TTL not yet reaped.
if not seen or not expires or now - seen >= idle or now >= expires then
  redis.call('DEL', KEYS[1])
  return false
end
-- PEXPIRE first: it adds no memory, so a full Redis (maxmemory,
-- noeviction) runs it, and Redis never stops a script that has written;
-- HSET first would be refused, signing every agent out of a full Redis.
redis.call('PEXPIRE', KEYS[1], math.max(1, math.min(idle, expires - now)))
-- Never move seen backwards: instances' clocks differ by a little.
redis.call('HSET', KEYS[1], 'seen', math.max(seen, now))
return s[1]
