-- begin: marks a claimed task running, or refuses. Runs right after the worker's
-- BLMOVE pending -> its in-progress list (in the same pipeline, when ARGV[2] is empty).
-- KEYS[1] worker's in-progress list  KEYS[2] worker hash  KEYS[3] draining set
-- KEYS[4] pending list  KEYS[5] stats hash  KEYS[6] events channel  KEYS[7] cancelled zset
-- KEYS[8] config hash  KEYS[9] workers set
-- KEYS[10] task hash (only when ARGV[2] names the task)
-- ARGV[1] worker id  ARGV[2] task id, or empty for the task at the head of the worker's list
-- ARGV[3] pid of the process that runs the task
-- Returns {'ok', attempt, parameters, id} when the task is now running at that attempt (also
-- when this worker's earlier begin of it ran but the reply was lost), or:
--   {'gone', id}      the task is not in this worker's list (already requeued): a stale
--                     worker; nothing changes but the stats 'stale' counter and a 'stale' event
--   {'missing', id}   the task hash no longer exists (deleted): it was dropped from the list
--   {'dropped', id}   the task is not waiting (its hash says running elsewhere, or finished):
--                     it was dropped from this worker's list; where it is stays as it was
--   {'cancelled', id} cancel was requested while it was reserved: it is now cancelled
--   {'draining', id}  the worker is draining: the task went back to the head of pending, no
--                     attempt counted; the worker must claim nothing until undrained
--   {'unregistered', id}  the worker is not in the workers set (it was presumed dead and
--                     reaped): the task went back to the head of pending, no attempt counted;
--                     the worker must heartbeat (register again) before it claims
--   {'empty', ''}     ARGV[2] was empty and the worker's list is empty (the claim timed out)
-- cycle (when cycle calls it; nil otherwise): the table its finish filled, with `id`, the
-- task cycle's LMOVE just put at the head of the worker's list (so ARGV[2] is empty and the
-- list is not read). When finish `handed` it `running -= 1`, the begin that runs the task
-- leaves `running` as it is; it sets `begun` then, so that cycle knows.
local tasks, worker, draining, pending, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local events, cancelled, cfg, workers = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local wid, id, pid = ARGV[1], ARGV[2], ARGV[3]
local tk = KEYS[10]

local named = id ~= ''
if cycle then
  id = cycle.id
  tk = task_key(id)
elseif not named then
  id = redis.call('LINDEX', tasks, '0')
  if not id then return {'empty', ''} end
  tk = task_key(id)
end
-- Each answer's counters are its first writes (see count).
if named and not redis.call('LPOS', tasks, id) then
  local state = redis.call('HGET', tk, 'state')
  local err = count(stats, 'stale', '1')
  if err then return err end
  emit(events, 'stale', id, state or nil, wid)
  return {'gone', id}
end
local state, cancel, params, holder, attempts = unpack(redis.call('HMGET', tk, 'state',
  'cancel_requested', 'parameters', 'worker', 'attempts'))
if state == 'running' and holder == wid then
  -- This worker's begin already ran (its reply was lost): answer the same, count nothing.
  return {'ok', tonumber(attempts), params, id}
end
if not state then
  redis.call('LREM', tasks, '1', id)
  return {'missing', id}
end
if state ~= 'pending' then
  -- Only a waiting task can begin: this id is running elsewhere or finished, so this list
  -- held a copy (a repeated id, a second worker under one id). Its real place is untouched.
  local err = count(stats, 'dropped', '1')
  if err then return err end
  redis.call('LREM', tasks, '1', id)
  emit(events, 'dropped', id, state, wid)
  return {'dropped', id}
end
if cancel == '1' then
  -- Before the drain check: a cancel that answered 'requested' is applied, not sent back.
  local retention, bad_config = read_settings(cfg, RETENTION)
  if bad_config then return bad_config end
  local err = count(stats, 'live', '-1', 'cancelled', '1')
  if err then return err end
  redis.call('LREM', tasks, '1', id)
  finish_into({stats = stats, retention = retention, counted = true}, cancelled, id,
    'cancelled', {})
  emit(events, 'cancelled', id, 'cancelled', wid)
  return {'cancelled', id}
end
local refusal
if redis.call('SISMEMBER', draining, wid) == 1 then
  refusal = 'draining'
elseif redis.call('SISMEMBER', workers, wid) == 0 then
  refusal = 'unregistered'
end
if refusal then
  local err = count(stats, 'refused', '1')
  if err then return err end
  redis.call('LREM', tasks, '1', id)
  redis.call('LPUSH', pending, id)
  emit(events, 'refused', id, 'pending', wid)
  return {refusal, id}
end
local before, bad_attempts = task_int(tk, 'attempts', attempts)
if bad_attempts then return bad_attempts end
local err
if cycle and cycle.handed then
  err = count(stats, 'started', '1')  -- running: the finished task's count passes to this one
else
  err = count(stats, 'running', '1', 'started', '1')
end
if err then return err end
local attempt = before + 1
redis.call('HSET', tk, 'attempts', int_text(attempt), 'state', 'running', 'worker', wid,
  'pid', pid, 'started_at', now_text())
redis.call('HSET', worker, 'task', id, 'task_started_at', now_text())
if cycle then cycle.begun = true end
emit(events, 'started', id, 'running', wid)
return {'ok', attempt, params, id}
