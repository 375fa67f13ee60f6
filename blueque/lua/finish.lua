-- finish: records the outcome of a running task, fenced by worker and attempt.
-- KEYS[1] worker's in-progress list  KEYS[2] worker hash  KEYS[3] stats hash
-- KEYS[4] events channel  KEYS[5] task hash  KEYS[6] complete zset  KEYS[7] failed zset
-- KEYS[8] cancelled zset  KEYS[9] config hash  KEYS[10] scheduled zset
-- ARGV[1] worker id  ARGV[2] task id  ARGV[3] attempt (from begin)
-- ARGV[4] outcome: complete | failed | cancelled
-- ARGV[5] payload: the result (JSON) for complete, the error (JSON object) otherwise
-- A 'failed' outcome for a task whose cancel was requested is recorded as 'cancelled'.
-- Returns the state the task is now in: complete, failed, cancelled or scheduled (an
-- automatic retry of a failed task), or 'stale' when the task is no longer this worker's at
-- this attempt (it was requeued): then nothing is written but the stats 'stale' counter.
-- Repeating a finish whose reply was lost returns the same state and changes nothing
-- (also 'scheduled', for a failure that became an automatic retry).
-- cycle (when cycle calls it; nil otherwise): a table in which this finish leaves the
-- `running -= 1` and the clearing of the worker hash to the begin that follows (only
-- checking `running`), and sets `handed` when it took the task off the worker.
local tasks, worker, stats, events, tk = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local cfg, scheduled = KEYS[9], KEYS[10]
local wid, id, attempt, outcome, payload = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local index
if outcome == 'complete' then index = KEYS[6]
elseif outcome == 'failed' then index = KEYS[7]
elseif outcome == 'cancelled' then index = KEYS[8]
else return redis.error_reply('ERR blueque: unknown outcome ' .. tostring(outcome)) end
local state, attempts, retries, holder, cancel, started_at = unpack(redis.call('HMGET', tk,
  'state', 'attempts', 'retries', 'worker', 'cancel_requested', 'started_at'))
-- A failure after a cancel was requested (typically the task's own reaction to the SIGTERM
-- that cancel sent) ends the task cancelled, with that error, and is never retried.
if outcome == 'failed' and cancel == '1' then outcome, index = 'cancelled', KEYS[8] end
if state == outcome and holder == wid and attempts == attempt and
    redis.call('ZSCORE', index, id) then
  -- This worker's finish already ran (its reply was lost): answer the same, count nothing.
  return state
end
if outcome == 'failed' and state == 'scheduled' and holder == wid and attempts == attempt and
    redis.call('ZSCORE', scheduled, id) then
  -- The same, for a failure that became an automatic retry.
  return state
end
if state ~= 'running' or attempts ~= attempt or holder ~= wid or
    not redis.call('LPOS', tasks, id) then
  local err = count(stats, 'stale', '1')
  if err then return err end
  emit(events, 'stale', id, state, wid)
  return 'stale'
end

-- Everything this finish needs, read and checked before its first write.
local settings, bad_config = read_settings(cfg, outcome == 'failed' and RETRY_SETTINGS or
  RETENTION)
if bad_config then return bad_config end
local retries_used, bad_retries = task_int(tk, 'retries', retries)
if bad_retries then return bad_retries end
local now = now_ms()
local retry_at
if outcome == 'failed' and retries_used < settings.retry_max then
  local delay_ms = 0
  if settings.retry_delay_s > 0 then
    delay_ms = settings.retry_delay_s * 1000 * settings.retry_backoff ^ retries_used
  end
  retry_at = math.min(now + math.floor(delay_ms), MAX_TIME_MS)  -- a delay that overflows too
end

-- The counters first (see count): then nothing below can fail.
local running = '-1'
if cycle then running = '0' end
local err
if retry_at then
  err = count(stats, 'running', running, 'retried', '1')
else
  err = count(stats, 'running', running, 'live', '-1', FINISHED_TOTALS[outcome], '1')
end
if err then return err end
redis.call('LREM', tasks, '1', id)
if cycle then
  cycle.handed = true
else
  redis.call('HSET', worker, 'task', '', 'task_started_at', '')
end

if retry_at then
  redis.call('HSET', tk, 'state', 'scheduled', 'last_error', payload,
    'retries', int_text(retries_used + 1), 'due_at', ms_text(retry_at))
  redis.call('HDEL', tk, 'pid')
  redis.call('ZADD', scheduled, ms_text(retry_at), id)
  emit(events, 'retry_scheduled', id, 'scheduled', wid)
  return 'scheduled'
end

local field = 'error'
if outcome == 'complete' then field = 'result' end
finish_into({stats = stats, retention = settings, counted = true}, index, id, outcome,
  {field, payload})
emit_finished(events, id, outcome, wid, attempts, started_at, field, payload)
return outcome
