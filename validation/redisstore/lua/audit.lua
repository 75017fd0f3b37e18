-- audit: the newest ARGV[4] events.
settle()
return redis.call('LRANGE', K_AUDIT, 0, tonumber(ARGV[4]) - 1)
