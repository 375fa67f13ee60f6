-- release: gives back a task this worker began but never started running (a stop came while
-- the claim that brought it was under way): back to the head of pending at no cost, as if
-- the begin had not happened. Fenced like finish.
-- KEYS[1] worker's in-progress list  KEYS[2] worker hash  KEYS[3] pending list
-- KEYS[4] stats hash  KEYS[5] events channel  KEYS[6] task hash  KEYS[7] cancelled zset
-- KEYS[8] config hash
-- ARGV[1] worker id  ARGV[2] task id  ARGV[3] attempt (from begin)
-- Returns 'released' (pending again), or 'cancelled' (its cancel was requested meanwhile: it
-- is now cancelled), attempts back to what they were before that begin either way; or
-- 'stale' when the task is not running at this attempt in this worker's list (nothing
-- changes).
local tasks, worker, pending, stats, events, tk = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5],
  KEYS[6]
local cancelled, cfg = KEYS[7], KEYS[8]
local wid, id, attempt = ARGV[1], ARGV[2], ARGV[3]

local state, attempts, holder, cancel = unpack(redis.call('HMGET', tk, 'state', 'attempts',
  'worker', 'cancel_requested'))
if state ~= 'running' or attempts ~= attempt or holder ~= wid or
    not redis.call('LPOS', tasks, id) then
  return 'stale'
end
local err = check_stats(stats, {'running', 'live', 'cancelled', 'released'})
if err then return err end
local retention, bad_config = read_settings(cfg, RETENTION)
if bad_config then return bad_config end

redis.call('LREM', tasks, 1, id)
redis.call('HSET', worker, 'task', '', 'task_started_at', '')
redis.call('HINCRBY', stats, 'running', '-1')
redis.call('HINCRBY', tk, 'attempts', '-1')
if cancel == '1' then
  finish_into({stats = stats, retention = retention}, cancelled, id, 'cancelled', {})
  redis.call('HINCRBY', stats, 'cancelled', '1')
  emit(events, 'cancelled', id, 'cancelled', wid)
  return 'cancelled'
end
redis.call('HSET', tk, 'state', 'pending')
redis.call('HDEL', tk, 'pid')
redis.call('LPUSH', pending, id)
redis.call('HINCRBY', stats, 'released', '1')
emit(events, 'released', id, 'pending', wid)
return 'released'
