-- heartbeat: registers a worker (or refreshes its registration) and keeps it alive.
-- KEYS[1] workers set  KEYS[2] worker hash  KEYS[3] worker alive key  KEYS[4] draining set
-- KEYS[5] (optional) hash of the task the worker is running
-- ARGV[1] worker id  ARGV[2] ttl of the alive key, ms (a whole number >= 1), also written to
-- the worker hash as heartbeat_ttl_ms: reapers wait that long after an outage
-- ARGV[3..] field, value pairs describing the worker (host, pid, pod, started_at, runner,
-- protocol), written into the worker hash
-- Returns {draining (0|1), cancel requested for KEYS[5] (0|1)}. A worker id that was drained
-- stays drained through any number of re-registrations (the mark is in the draining set).
local wid, ttl = ARGV[1], whole(ARGV[2])
if not ttl or ttl < 1 then
  return redis.error_reply('ERR blueque: heartbeat ttl must be a whole number of ms >= 1')
end
if #ARGV % 2 ~= 0 then
  return redis.error_reply('ERR blueque: heartbeat fields must come in field, value pairs')
end
local now = now_ms()
local draining = redis.call('SISMEMBER', KEYS[4], wid)
redis.call('SADD', KEYS[1], wid)
redis.call('HSET', KEYS[2], 'id', wid, 'heartbeat_at', now, 'heartbeat_ttl_ms', ttl,
  'draining', draining, unpack(ARGV, 3))
redis.call('SET', KEYS[3], now, 'PX', ttl)
local cancel = 0
if KEYS[5] and redis.call('HGET', KEYS[5], 'cancel_requested') == '1' then cancel = 1 end
return {draining, cancel}
