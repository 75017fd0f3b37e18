-- audit: every kept event: {state changes, attempts}, each newest first
-- (the store merges them, filters and limits).
settle()
return {redis.call('LRANGE', K_AUDIT, 0, -1), redis.call('LRANGE', K_TRIES, 0, -1)}
