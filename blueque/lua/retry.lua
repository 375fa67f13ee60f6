-- retry: puts a failed or cancelled task back at the tail of pending, with fresh budgets
-- (losses and retries back to 0); its error moves to last_error, so a retried task that then
-- completes shows no error. `attempts` is kept: it only grows (but for a release), so it
-- stays a fencing token that no earlier attempt can match.
-- KEYS[1] failed zset  KEYS[2] cancelled zset  KEYS[3] pending list  KEYS[4] stats hash
-- KEYS[5] events channel  KEYS[6] task hash
-- ARGV[1] task id
-- The task's done stream (script await), which told of the finish, is deleted.
-- Returns 'requeued' when it went back to pending, the task's state when it is not failed or
-- cancelled (nothing changed), or 'missing'.
local failed, cancelled, pending, stats, events, tk = KEYS[1], KEYS[2], KEYS[3], KEYS[4],
  KEYS[5], KEYS[6]
local id = ARGV[1]
local state, err = unpack(redis.call('HMGET', tk, 'state', 'error'))
if not state then return 'missing' end
local index
if state == 'failed' then index = failed elseif state == 'cancelled' then index = cancelled end
if not index then return state end
local bad_stats = check_stats(stats, {'live', 'retried'})
if bad_stats then return bad_stats end
redis.call('ZREM', index, id)
if err then redis.call('HSET', tk, 'last_error', err) end
redis.call('HSET', tk, 'state', 'pending', 'queued_at', now_ms(), 'losses', 0, 'retries', 0)
redis.call('HDEL', tk, 'cancel_requested', 'finished_at', 'result', 'error', 'pid')
redis.call('DEL', done_key(tk))  -- a waiter must not read the earlier finish
redis.call('RPUSH', pending, id)
redis.call('HINCRBY', stats, 'live', '1')
redis.call('HINCRBY', stats, 'retried', '1')
emit(events, 'retried', id, 'pending')
return 'requeued'
