-- stats: every per-queue figure in one read, from sizes and counters (no scans).
-- KEYS[1] pending list  KEYS[2] scheduled zset  KEYS[3] complete zset  KEYS[4] failed zset
-- KEYS[5] cancelled zset  KEYS[6] stats hash  KEYS[7] workers set  KEYS[8] draining set
-- Returns {now_ms, pending, scheduled, complete, failed, cancelled, workers, draining,
--          queued_at of the task at the head of pending or -1, stats hash as a flat list}.
-- draining counts registered workers only: a drain mark outlives its worker (until undrain).
-- reserved = live - pending - scheduled - running (tasks claimed but not yet begun).
local head = redis.call('LINDEX', KEYS[1], 0)
local head_queued_at = -1
if head then head_queued_at = tonumber(redis.call('HGET', task_key(head), 'queued_at') or -1) end
local workers, draining = redis.call('SCARD', KEYS[7]), 0
if workers > 0 and redis.call('SCARD', KEYS[8]) > 0 then
  draining = redis.call('SINTERCARD', 2, KEYS[8], KEYS[7])
end
return {now_ms(), redis.call('LLEN', KEYS[1]), redis.call('ZCARD', KEYS[2]),
  redis.call('ZCARD', KEYS[3]), redis.call('ZCARD', KEYS[4]), redis.call('ZCARD', KEYS[5]),
  workers, draining, head_queued_at, redis.call('HGETALL', KEYS[6])}
