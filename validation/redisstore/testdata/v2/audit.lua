local function reply(t) return {t.state or false, t.tries or false, t.hold or false} end
-- audit: every kept event, each list newest first, and the live hold,
-- whose checked event is appended only when it ends (the store merges,
-- sorts, filters and limits). Reply: auditReply.
local h = live_hold()
return reply{state = redis.call('LRANGE', K_AUDIT, 0, -1), tries = redis.call('LRANGE', K_TRIES, 0, -1),
  hold = h and not h.legacy and check_encode(h)}

end
local r = main(KEYS, ARGV)
return {EXPIRED, r}
