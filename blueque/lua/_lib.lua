-- Shared helpers of every Blueque script. Each script's text is the body of a function
-- (KEYS, ARGV) that `run` below calls: as one function of the library that FUNCTION LOAD
-- registers once per server (FCALL), or after this text in the one script EVAL sends
-- (blueque/scripts.py). So nothing here may depend on one call's keys or time except
-- through `run`, which sets them afresh for each call.
--
-- Every key a script touches is either in KEYS or, when the script discovers it while running
-- (a task id found in a list, a worker id found in a set), derived from PREFIX: the part of
-- KEYS[1] up to and including the queue's hash tag, e.g. "blueque:{emails}:". Derived keys
-- therefore hash to the same Redis Cluster slot as KEYS[1].
--
-- Lua does not roll back: a script that fails half-way leaves its first writes in place. So
-- every script reads and checks everything it needs (its arguments, the config and counters
-- it uses) before its first write, and answers a bad value with an error reply that names the
-- key and field, having changed nothing. (finish and begin check their counters by counting
-- first, and take the increments back when one fails: see `count`.)

-- The queue's prefix of this call's KEYS[1], set by `run`.
local PREFIX

-- Per-queue settings: the config hash overrides these defaults field by field. They are
-- SCHEMA's defaults (blueque/config.py); tests/unit/test_config.py checks that they agree.
local DEFAULTS = {
  max_attempts = 3,        -- times a begun task may lose its worker; the last loss fails it
  keep_finished = 10000,   -- finished tasks kept per index (complete, failed, cancelled)
  finished_ttl_s = 604800, -- finished tasks older than this are deleted (7 days)
  retry_max = 0,           -- automatic retries of a task that raised (0: off)
  retry_delay_s = 10,      -- delay before the first automatic retry
  retry_backoff = 2,       -- each further retry waits this many times longer
}
-- The lowest value each setting accepts, and which ones must be whole numbers.
local LOWEST = {max_attempts = 1, keep_finished = 1, finished_ttl_s = 1, retry_max = 0,
  retry_delay_s = 0, retry_backoff = 1}
local WHOLE = {max_attempts = true, keep_finished = true, finished_ttl_s = true,
  retry_max = true}
local RETENTION = {'finished_ttl_s', 'keep_finished'}
local RETRY_SETTINGS = {'finished_ttl_s', 'keep_finished', 'retry_max', 'retry_delay_s',
  'retry_backoff'}
local TRIM_BATCH = 100     -- bounds the work one script spends on retention
local TRIM_BATCH_TEXT = '100'
-- Latest time a script writes (9999-12-31T23:59:59.999Z): every due time is capped here, so
-- it stays a whole number of ms that any client can turn into a date.
local MAX_TIME_MS = 253402300799999

local function bad(key, field, value, why)
  return redis.error_reply('ERR blueque: ' .. key .. ' field ' .. field .. ' is ' ..
    string.format('%q', tostring(value)) .. ': ' .. why)
end

-- A finite decimal number, as Python's str() writes one ('3', '0.5', '1e-05'); Lua's
-- tonumber alone would also read 'nan', 'inf' and hex.
local function finite(v)
  if type(v) ~= 'string' then return nil end
  local mantissa, exponent = string.match(v, '^%s*[-+]?([%d.]+)([eE]?[-+]?%d*)%s*$')
  if not mantissa or not string.match(mantissa, '^%d*%.?%d*$') or
      not string.match(mantissa, '%d') or
      (exponent ~= '' and not string.match(exponent, '^[eE][-+]?%d+$')) then
    return nil
  end
  local n = tonumber(v)
  if not n or n ~= n or n == math.huge or n == -math.huge then return nil end
  return n
end

local function whole(v)
  -- The common case first, for a fraction of finite()'s cost: the digits of a positive
  -- number below 2^53, as every client writes times, counts and attempts.
  if type(v) == 'string' and #v < 16 and string.find(v, '^[1-9]%d*$') then
    return tonumber(v)
  end
  local n = finite(v)
  if n and n == math.floor(n) and math.abs(n) < 2^53 then return n end
  return nil
end

-- The effective values of some settings, checked: returns a table, or nil and an error reply.
local function read_settings(config_key, names)
  local raw = redis.call('HMGET', config_key, unpack(names))
  local out = {}
  for i, name in ipairs(names) do
    local v = raw[i]
    if v then
      local n
      if WHOLE[name] then n = whole(v) else n = finite(v) end
      if not n then
        return nil, bad(config_key, name, v, WHOLE[name] and 'not a whole number' or
          'not a finite number')
      end
      if n < LOWEST[name] then
        return nil, bad(config_key, name, v, 'less than ' .. LOWEST[name])
      end
      out[name] = n
    else
      out[name] = DEFAULTS[name]
    end
  end
  return out
end

-- Every counter of the stats hash that a script may increment must be an integer as HINCRBY
-- reads one (digits, an optional minus sign, at most 18 digits), or an HINCRBY would fail
-- half-way. Each script checks the counters it names (not the whole hash: reading every
-- counter cost more than the rest of a begin), or counts first (`count`, below). `values`:
-- theirs, as HMGET read them.
local function check_counters(stats_key, names, values)
  for i, name in ipairs(names) do
    local v = values[i]
    if v and (not string.match(v, '^-?%d+$') or #v > (string.byte(v) == 45 and 19 or 18)) then
      return bad(stats_key, name, v, 'not an integer')
    end
  end
  return nil
end

-- Reads and checks counters: nil, or an error reply.
local function check_stats(stats_key, names)
  return check_counters(stats_key, names, redis.call('HMGET', stats_key, unpack(names)))
end

-- The error of a call that redis.pcall answered with `reply` (a table with `err`): for
-- WRONGTYPE, one that names the key and what it holds, else Redis's own.
local function call_error(key, expected, reply)
  if string.sub(reply.err, 1, 9) ~= 'WRONGTYPE' then return redis.error_reply(reply.err) end
  return redis.error_reply('ERR blueque: ' .. key .. ' holds a ' ..
    redis.call('TYPE', key)['ok'] .. ', not a ' .. expected)
end

-- The error reply of a counter that HINCRBY refused (`reply`, from redis.pcall).
local function count_error(stats_key, name, reply)
  if string.sub(reply.err, 1, 9) == 'WRONGTYPE' then return call_error(stats_key, 'hash', reply) end
  local why = 'not an integer'
  if string.find(reply.err, 'overflow') then why = 'too large to count' end
  return bad(stats_key, name, redis.call('HGET', stats_key, name), why)
end

local UNCOUNT = {['1'] = '-1', ['-1'] = '1', ['0'] = '0'}

-- Adds to up to three counters (name, increment as text: '1', '-1' or '0'), as the first
-- writes of the script that calls it (finish and begin): instead of reading and checking the
-- counters ahead (an HMGET costs more per field than the HINCRBY), each HINCRBY is a pcall,
-- and when one fails (a value that is not an integer, an overflow, a stats key of another
-- type) the increments made so far are taken back: nil, or the error reply, with the hash
-- as it was (a counter that was absent is then 0). An increment of '0' checks a counter
-- that a later write of the same script changes.
local function count(stats_key, n1, by1, n2, by2, n3, by3)
  local reply = redis.pcall('HINCRBY', stats_key, n1, by1)
  if type(reply) == 'table' then return count_error(stats_key, n1, reply) end
  if not n2 then return nil end
  reply = redis.pcall('HINCRBY', stats_key, n2, by2)
  if type(reply) == 'table' then
    redis.call('HINCRBY', stats_key, n1, UNCOUNT[by1])
    return count_error(stats_key, n2, reply)
  end
  if not n3 then return nil end
  reply = redis.pcall('HINCRBY', stats_key, n3, by3)
  if type(reply) == 'table' then
    redis.call('HINCRBY', stats_key, n2, UNCOUNT[by2])
    redis.call('HINCRBY', stats_key, n1, UNCOUNT[by1])
    return count_error(stats_key, n3, reply)
  end
  return nil
end

-- The counters each script may increment, for check_stats.
local ENQUEUE_COUNTERS = {'enqueued', 'live'}
local REQUEUE_COUNTERS = {'running', 'live', 'failed', 'cancelled', 'requeued'}
-- The total each finished state counts.
local FINISHED_TOTALS = {complete = 'completed', failed = 'failed', cancelled = 'cancelled'}

-- A numeric field of a task hash: its value (0 when absent), or nil and an error reply.
local function task_int(tk, field, v)
  if not v then return 0 end
  local n = whole(v)
  if not n then return nil, bad(tk, field, v, 'not an integer') end
  return n
end

-- The server clock, read once per call: one time for every field a transition writes.
-- Reset by `run` before each call. Its texts are cut from TIME's seconds and microseconds
-- rather than formatted from numbers (Redis 7.0 would format a number argument with
-- printf's %.17g, which costs more than the command; string.format less, but still more).
local NOW_MS, NOW_TEXT, NOW_US
local function read_clock()
  local t = redis.call('TIME')
  NOW_US = t[2]
  if #NOW_US < 6 then NOW_US = string.rep('0', 6 - #NOW_US) .. NOW_US end
  NOW_TEXT = t[1] .. string.sub(NOW_US, 1, 3)
  NOW_MS = tonumber(NOW_TEXT)
end
local function now_ms()
  if not NOW_MS then read_clock() end
  return NOW_MS
end
-- now_ms() as text.
local function now_text()
  if not NOW_TEXT then read_clock() end
  return NOW_TEXT
end
-- Milliseconds with a microsecond fraction, as text: scores of the finished indexes, so that
-- tasks finished within one millisecond still sort by when they finished.
local function now_exact_text()
  if not NOW_US then read_clock() end
  return NOW_TEXT .. '.' .. string.sub(NOW_US, 4)
end
-- A whole number (a time, a count) as the integer text every client reads (Lua would write
-- 1e+15 for large numbers).
local function int_text(n) return string.format('%d', n) end
local ms_text = int_text

-- Sends the ids (or score-id pairs) of `list` to `key` with RPUSH or ZADD, `step` at a time
-- (unpack's stack limit), in order. `first`: this is the script's first write, sent as a
-- pcall: a key of another type fails it before anything was written, and the error names
-- the key. Returns that error, or nil.
local function push_all(command, key, kind, list, step, first)
  for from = 1, #list, step do
    local last = math.min(from + step - 1, #list)
    if first and from == 1 then
      local reply = redis.pcall(command, key, unpack(list, from, last))
      if type(reply) == 'table' and reply.err then return call_error(key, kind, reply) end
    else
      redis.call(command, key, unpack(list, from, last))
    end
  end
  return nil
end

local function task_key(id) return PREFIX .. 'task:' .. id end
local function worker_key(wid) return PREFIX .. 'worker:' .. wid end
local function worker_tasks_key(wid) return PREFIX .. 'worker:' .. wid .. ':tasks' end
local function worker_alive_key(wid) return PREFIX .. 'worker:' .. wid .. ':alive' end

-- One event per transition, on the queue's sharded channel (same slot as the queue). The
-- JSON is concatenated, not encoded: event names and states are fixed words, and task and
-- worker ids are restricted to [A-Za-z0-9._:-], which need no escaping.
-- `more`: JSON text of further members, written as they are (finish's; see emit_finished).
local function emit(events_key, event, id, state, worker, more)
  -- One concatenation: each intermediate string would be another allocation, hash and
  -- collection, which cost more than the SPUBLISH.
  redis.call('SPUBLISH', events_key, '{"event":"' .. event .. '","ts":' .. now_text() ..
    (id and ',"task":"' or '') .. (id or '') .. (id and '"' or '') ..
    (state and ',"state":"' or '') .. (state or '') .. (state and '"' or '') ..
    (worker and ',"worker":"' or '') .. (worker or '') .. (worker and '"' or '') ..
    (more or '') .. '}')
end

-- A stored whole number as JSON: its digits, or null when it is none.
local function json_int(v)
  if type(v) == 'string' and #v < 16 and string.find(v, '^[1-9]%d*$') then return v end
  local n = whole(v)
  if n then return int_text(n) end
  return 'null'
end

-- The most bytes of a result or error an event carries: past it (or for text that is not
-- ASCII, which subscribers in any language decode alike) only its size.
local EVENT_PAYLOAD_MAX = 1024

-- The event of a task that finish finished: besides `emit`'s members, what a waiter needs to
-- know the task's hash without reading it: attempts and started_at (begin's, which it may
-- not have seen), the payload's size in bytes, and the payload itself (the `result` or
-- `error` field, as the JSON text the hash holds) when it is small. finished_at is `ts`.
local function emit_finished(events_key, id, state, worker, attempts, started_at, field,
    payload)
  local more = ',"attempts":' .. json_int(attempts) .. ',"started_at":' ..
    json_int(started_at) .. ',"size":' .. #payload
  if #payload <= EVENT_PAYLOAD_MAX and not string.find(payload, '[\128-\255]') then
    more = more .. ',"' .. field .. '":' .. cjson.encode(payload)
  end
  emit(events_key, state, id, state, worker, more)
end

-- Deletes finished tasks past the queue's retention from one finished index.
-- retention: read_settings(config, RETENTION)
local function trim_finished(index_key, retention, now)
  local ttl_ms = retention.finished_ttl_s * 1000
  local cutoff = ms_text(now - ttl_ms)
  -- Counted first: nothing is that old on most calls, and ZCOUNT costs less than the range.
  if redis.call('ZCOUNT', index_key, '-inf', cutoff) > 0 then
    local old = redis.call('ZRANGEBYSCORE', index_key, '-inf', cutoff, 'LIMIT', '0',
      TRIM_BATCH_TEXT)
    for _, id in ipairs(old) do
      redis.call('DEL', task_key(id))
      redis.call('ZREM', index_key, id)
    end
  end
  local excess = redis.call('ZCARD', index_key) - retention.keep_finished
  if excess > 0 then
    if excess > TRIM_BATCH then excess = TRIM_BATCH end
    for _, id in ipairs(redis.call('ZRANGE', index_key, '0', int_text(excess - 1))) do
      redis.call('DEL', task_key(id))
    end
    redis.call('ZREMRANGEBYRANK', index_key, '0', int_text(excess - 1))
  end
end

-- Waiting for a task (script await): a client that waits sets the task's `waited` field,
-- and whatever finishes or deletes the task then writes the task's done stream, on which the
-- client blocks (XREAD). The stream holds one entry, so every waiter reads it; it expires,
-- so one that nobody reads (a waiter that gave up) is gone soon.
local NOTIFY_TTL_MS = 60000
-- The most bytes of field values a notification copies from the task hash; past it the
-- waiter reads the hash itself.
local NOTIFY_MAX_BYTES = 65536
-- The states in which a task may still finish: await registers a waiter only for these.
local UNFINISHED = {scheduled = true, pending = true, running = true}

local function done_key(tk) return tk .. ':done' end

-- Replaces the done stream of the task hash `tk` by one entry: `notify task` followed by
-- every field of the hash as it is now, or `notify read` when they are too big to copy, or
-- `notify missing` when the task does not exist.
local function notify(tk)
  local fields = redis.call('HGETALL', tk)
  local entry = {'notify', 'missing'}
  if #fields > 0 then
    local size = 0
    for i = 2, #fields, 2 do size = size + #fields[i] end
    if size > NOTIFY_MAX_BYTES then
      entry = {'notify', 'read'}
    else
      entry = {'notify', 'task'}
      for i = 1, #fields do entry[i + 2] = fields[i] end
    end
  end
  local done = done_key(tk)
  redis.call('DEL', done)
  redis.call('XADD', done, '*', unpack(entry))
  redis.call('PEXPIRE', done, NOTIFY_TTL_MS)
end

-- Moves a task that is not in any list or set into a finished index, at this call's time,
-- and wakes whoever waits for it.
-- k: {stats, retention, counted}; counted: the caller has counted live -= 1 already (count)
local function finish_into(k, index_key, id, state, fields)
  local tk = task_key(id)
  redis.call('HSET', tk, 'state', state, 'finished_at', now_text(), unpack(fields))
  redis.call('HDEL', tk, 'pid')
  if redis.call('HDEL', tk, 'waited') == 1 then notify(tk) end
  redis.call('ZADD', index_key, now_exact_text(), id)
  if not k.counted then redis.call('HINCRBY', k.stats, 'live', '-1') end
  trim_finished(index_key, k.retention, now_ms())
end

-- What requeue_worker will do with each task of a worker's in-progress list, read and checked
-- before anything is written: a list of {id, state, losses, cancel}, or nil and an error reply.
-- A task running under another worker's id is a stray copy here: its state reads 'stray'.
local function read_held(tasks_key, wid)
  local held = {}
  for _, id in ipairs(redis.call('LRANGE', tasks_key, 0, -1)) do
    local tk = task_key(id)
    local state, holder, losses, cancel = unpack(redis.call('HMGET', tk, 'state', 'worker',
      'losses', 'cancel_requested'))
    local n, err = task_int(tk, 'losses', losses)
    if err then return nil, err end
    if state == 'running' and holder ~= wid then state = 'stray' end
    held[#held + 1] = {id = id, state = state, losses = n, cancel = cancel == '1'}
  end
  return held
end

-- Gives back every task of one worker's in-progress list (`held`, from read_held) and forgets
-- the worker. A task that was begun (running) lost its worker: that counts one loss; at
-- max_attempts losses it fails with `reason`. A task that was only reserved (claimed, never
-- begun) goes back at no cost. Both go back to the head of pending, in the list's order.
-- The drain mark stays (a drain survives the worker's death, re-registration and restart),
-- unless `exiting`: the worker's own clean exit.
-- k: {tasks, worker, alive, workers, draining, pending, failed, cancelled, stats, events,
--     settings (max_attempts and RETENTION), retention (the same table)}
local function requeue_worker(k, wid, reason, held, exiting)
  local now = now_ms()
  local requeued, failed = 0, 0
  local max_attempts = k.settings.max_attempts
  -- From the tail so that LPUSH keeps the list's order at the head of pending.
  for i = #held, 1, -1 do
    local t = held[i]
    local id, tk = t.id, task_key(t.id)
    if t.cancel and (t.state == 'running' or t.state == 'pending') then
      -- Whoever asked for the cancel gets it: the task does not run again.
      if t.state == 'running' then redis.call('HINCRBY', k.stats, 'running', '-1') end
      finish_into(k, k.cancelled, id, 'cancelled', {})
      redis.call('HINCRBY', k.stats, 'cancelled', '1')
      emit(k.events, 'cancelled', id, 'cancelled', wid)
    elseif t.state == 'running' then
      redis.call('HINCRBY', k.stats, 'running', '-1')
      local losses = t.losses + 1
      local lost = reason .. ' (worker ' .. wid .. '; lost ' .. losses .. ' of max_attempts ' ..
        max_attempts .. ')'
      if losses >= max_attempts then
        redis.call('HSET', tk, 'losses', losses)
        finish_into(k, k.failed, id, 'failed',
          {'error', cjson.encode({type = 'WorkerLost', message = lost})})
        redis.call('HINCRBY', k.stats, 'failed', '1')
        emit(k.events, 'failed', id, 'failed', wid)
        failed = failed + 1
      else
        redis.call('HSET', tk, 'state', 'pending', 'queued_at', now, 'losses', losses,
          'last_error', cjson.encode({type = 'WorkerLost', message = lost}))
        redis.call('HDEL', tk, 'pid')
        redis.call('LPUSH', k.pending, id)
        redis.call('HINCRBY', k.stats, 'requeued', '1')
        emit(k.events, 'requeued', id, 'pending', wid)
        requeued = requeued + 1
      end
    elseif t.state == 'pending' then
      redis.call('LPUSH', k.pending, id)
      redis.call('HINCRBY', k.stats, 'requeued', '1')
      emit(k.events, 'requeued', id, 'pending', wid)
      requeued = requeued + 1
    end
    -- Any other state (a deleted hash, a finished task, a stray copy of a task running
    -- elsewhere) has nothing to give back: the id only leaves this list.
  end
  redis.call('DEL', k.tasks, k.worker, k.alive)
  redis.call('SREM', k.workers, wid)
  if exiting then redis.call('SREM', k.draining, wid) end
  emit(k.events, 'worker_removed', nil, nil, wid)
  return {requeued, failed}
end

-- The settings requeue_worker needs.
local REQUEUE_SETTINGS = {'max_attempts', 'finished_ttl_s', 'keep_finished'}

-- Runs one script's body for one call: this call's prefix, a clock not read yet. The prefix
-- is derived again only when KEYS[1] differs from the last call's (a worker or a producer
-- calls with the same one again and again).
local PREFIX_OF
local function run(body, keys, args)
  local first = keys[1]
  if first ~= PREFIX_OF or not first then
    PREFIX = string.match(first or '', '^(.-}:)')
    if not PREFIX then
      PREFIX_OF = nil
      return redis.error_reply('ERR blueque: KEYS[1] has no {queue} hash tag: ' ..
        tostring(first))
    end
    PREFIX_OF = first
  end
  NOW_MS, NOW_TEXT, NOW_US = nil, nil, nil
  return body(keys, args)
end
