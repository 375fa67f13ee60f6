-- heartbeat: registers a worker (or refreshes its registration) and keeps it alive.
-- KEYS[1] workers set  KEYS[2] worker hash  KEYS[3] worker alive key  KEYS[4] draining set
-- KEYS[5] (optional) hash of the task the worker is running
-- ARGV[1] worker id  ARGV[2] ttl of the alive key, ms  ARGV[3..] field, value pairs describing
-- the worker (host, pid, pod, started_at, version, runner), written into the worker hash
-- Returns {draining (0|1), cancel requested for KEYS[5] (0|1)}.
local wid, ttl = ARGV[1], ARGV[2]
local now = now_ms()
redis.call('SADD', KEYS[1], wid)
redis.call('HSET', KEYS[2], 'id', wid, 'heartbeat_at', now, unpack(ARGV, 3))
redis.call('SET', KEYS[3], now, 'PX', ttl)
local draining = redis.call('SISMEMBER', KEYS[4], wid)
redis.call('HSET', KEYS[2], 'draining', draining)
local cancel = 0
if KEYS[5] and redis.call('HGET', KEYS[5], 'cancel_requested') == '1' then cancel = 1 end
return {draining, cancel}
