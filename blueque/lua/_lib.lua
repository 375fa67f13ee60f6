-- Shared prelude, prepended verbatim to every Blueque script when it is registered.
-- It defines helpers only; it touches no key by itself.
--
-- Every key a script touches is either in KEYS or, when the script discovers it while running
-- (a task id found in a list, a worker id found in a set), derived from PREFIX: the part of
-- KEYS[1] up to and including the queue's hash tag, e.g. "blueque:{emails}:". Derived keys
-- therefore hash to the same Redis Cluster slot as KEYS[1].

local PREFIX = string.match(KEYS[1], '^(.-}:)')
if not PREFIX then
  return redis.error_reply('ERR blueque: KEYS[1] has no {queue} hash tag: ' .. KEYS[1])
end

-- Per-queue settings: the config hash overrides these defaults field by field.
local DEFAULTS = {
  max_attempts = 3,        -- worker-lost requeues before a task fails
  keep_finished = 10000,   -- finished tasks kept per index (complete, failed, cancelled)
  finished_ttl_s = 604800, -- finished tasks older than this are deleted (7 days)
  retry_max = 0,           -- automatic retries of a task that raised (0: off)
  retry_delay_s = 10,      -- delay before the first automatic retry
  retry_backoff = 2,       -- each further retry waits this many times longer
}
local TRIM_BATCH = 100     -- bounds the work one script spends on retention

-- The server clock, read once per script: one time for every field a transition writes.
local NOW_MS, NOW_EXACT_MS
local function read_clock()
  local t = redis.call('TIME')
  NOW_EXACT_MS = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
  NOW_MS = math.floor(NOW_EXACT_MS)
end
local function now_ms()
  if not NOW_MS then read_clock() end
  return NOW_MS
end
-- Milliseconds with a microsecond fraction: scores of the finished indexes, so that tasks
-- finished within one millisecond still sort by when they finished.
local function now_exact_ms()
  if not NOW_EXACT_MS then read_clock() end
  return NOW_EXACT_MS
end

local function task_key(id) return PREFIX .. 'task:' .. id end
local function worker_key(wid) return PREFIX .. 'worker:' .. wid end
local function worker_tasks_key(wid) return PREFIX .. 'worker:' .. wid .. ':tasks' end
local function worker_alive_key(wid) return PREFIX .. 'worker:' .. wid .. ':alive' end

local function config(config_key, field)
  local v = redis.call('HGET', config_key, field)
  if v then return tonumber(v) end
  return DEFAULTS[field]
end

-- One event per transition, on the queue's sharded channel (same slot as the queue). The
-- JSON is concatenated, not encoded: event names and states are fixed words, and task and
-- worker ids are restricted to [A-Za-z0-9._:-], which need no escaping.
local function emit(events_key, event, id, state, worker)
  local msg = '{"event":"' .. event .. '","ts":' .. string.format('%d', now_ms())
  if id then msg = msg .. ',"task":"' .. id .. '"' end
  if state then msg = msg .. ',"state":"' .. state .. '"' end
  if worker then msg = msg .. ',"worker":"' .. worker .. '"' end
  redis.call('SPUBLISH', events_key, msg .. '}')
end

-- Deletes finished tasks past the queue's retention from one finished index.
local function trim_finished(index_key, config_key, now)
  local ttl_ms = config(config_key, 'finished_ttl_s') * 1000
  local old = redis.call('ZRANGEBYSCORE', index_key, '-inf', now - ttl_ms, 'LIMIT', 0, TRIM_BATCH)
  for _, id in ipairs(old) do
    redis.call('DEL', task_key(id))
    redis.call('ZREM', index_key, id)
  end
  local excess = redis.call('ZCARD', index_key) - config(config_key, 'keep_finished')
  if excess > 0 then
    if excess > TRIM_BATCH then excess = TRIM_BATCH end
    for _, id in ipairs(redis.call('ZRANGE', index_key, 0, excess - 1)) do
      redis.call('DEL', task_key(id))
    end
    redis.call('ZREMRANGEBYRANK', index_key, 0, excess - 1)
  end
end

-- Moves a task that is not in any list or set into a finished index.
local function finish_into(k, index_key, id, state, now, fields)
  redis.call('HSET', task_key(id), 'state', state, 'finished_at', now, unpack(fields))
  redis.call('ZADD', index_key, string.format('%.3f', now_exact_ms()), id)
  redis.call('HINCRBY', k.stats, 'live', -1)
  trim_finished(index_key, k.config, now)
end

-- Gives back every task in one worker's in-progress list and forgets the worker.
-- A task that was begun costs an attempt; past max_attempts it fails with `reason`.
-- A task that was only reserved (claimed, never begun) goes back at no cost.
-- k: {tasks, worker, alive, workers, draining, pending, failed, cancelled, stats, events,
--     config}
local function requeue_worker(k, wid, reason)
  local now = now_ms()
  local requeued, failed = 0, 0
  local max_attempts = config(k.config, 'max_attempts')
  local ids = redis.call('LRANGE', k.tasks, 0, -1)
  -- From the tail so that LPUSH keeps the list's order at the head of pending.
  for i = #ids, 1, -1 do
    local id = ids[i]
    local tk = task_key(id)
    local state, attempts, cancel = unpack(redis.call('HMGET', tk, 'state', 'attempts',
      'cancel_requested'))
    if cancel == '1' and (state == 'running' or state == 'pending') then
      -- Whoever asked for the cancel gets it: the task does not run again.
      if state == 'running' then redis.call('HINCRBY', k.stats, 'running', -1) end
      finish_into(k, k.cancelled, id, 'cancelled', now, {})
      redis.call('HINCRBY', k.stats, 'cancelled', 1)
      emit(k.events, 'cancelled', id, 'cancelled', wid)
    elseif state == 'running' then
      redis.call('HINCRBY', k.stats, 'running', -1)
      if tonumber(attempts or '0') >= max_attempts then
        local err = cjson.encode({type = 'WorkerLost', message = reason .. ' (worker ' .. wid ..
          ', attempt ' .. attempts .. ' of ' .. max_attempts .. ')'})
        finish_into(k, k.failed, id, 'failed', now, {'error', err})
        redis.call('HINCRBY', k.stats, 'failed', 1)
        emit(k.events, 'failed', id, 'failed', wid)
        failed = failed + 1
      else
        redis.call('HSET', tk, 'state', 'pending', 'queued_at', now, 'last_error',
          cjson.encode({type = 'WorkerLost', message = reason .. ' (worker ' .. wid .. ')'}))
        redis.call('LPUSH', k.pending, id)
        redis.call('HINCRBY', k.stats, 'requeued', 1)
        emit(k.events, 'requeued', id, 'pending', wid)
        requeued = requeued + 1
      end
    elseif state == 'pending' then
      redis.call('LPUSH', k.pending, id)
      emit(k.events, 'requeued', id, 'pending', wid)
      requeued = requeued + 1
    end
    -- Any other state (a deleted hash, a finished task) has nothing to give back.
  end
  redis.call('DEL', k.tasks, k.worker, k.alive)
  redis.call('SREM', k.workers, wid)
  redis.call('SREM', k.draining, wid)
  emit(k.events, 'worker_removed', nil, nil, wid)
  return {requeued, failed}
end

