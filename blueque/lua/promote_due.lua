-- promote_due: moves scheduled tasks whose time has come to the tail of pending, and applies
-- finished-task retention on idle queues. Safe to run from many schedulers at once: each due
-- task is moved exactly once.
-- KEYS[1] scheduled zset  KEYS[2] pending list  KEYS[3] stats hash  KEYS[4] events channel
-- KEYS[5] config hash  KEYS[6] complete zset  KEYS[7] failed zset  KEYS[8] cancelled zset
-- ARGV[1] most tasks to promote in this call (a whole number >= 1)
-- Returns {promoted, due time in ms of the next scheduled task or -1}.
local scheduled, pending, stats, events, cfg = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local limit = whole(ARGV[1])
if not limit or limit < 1 then
  return redis.error_reply('ERR blueque: promote_due limit must be a whole number >= 1')
end
local err = check_stats(stats, {'promoted'})
if err then return err end
local retention, bad_config = read_settings(cfg, RETENTION)
if bad_config then return bad_config end
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(due) do
  redis.call('ZREM', scheduled, id)
  redis.call('HSET', task_key(id), 'state', 'pending', 'queued_at', now)
  redis.call('RPUSH', pending, id)
  emit(events, 'promoted', id, 'pending')
end
if #due > 0 then redis.call('HINCRBY', stats, 'promoted', #due) end
for i = 6, 8 do trim_finished(KEYS[i], retention, now) end
local next_due = redis.call('ZRANGE', scheduled, 0, 0, 'WITHSCORES')
if next_due[2] then return {#due, tonumber(next_due[2])} end
return {#due, -1}
