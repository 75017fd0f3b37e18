-- Stores a new branch session (store.go). Not wrapped in the prelude:
-- a session is one key of its own, outside every customer's keys.
-- KEYS[1] arb:session:<sha-256 of the cookie's id>
-- ARGV    value, now_ms, idle_ms, expires_ms
local now, idle, expires = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'seen', now, 'exp', expires)
-- The key dies at the idle time or the expiry, whichever comes first.
redis.call('PEXPIRE', KEYS[1], math.max(1, math.min(idle, expires - now)))
return 1
