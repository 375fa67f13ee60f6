-- enqueue: creates tasks, due now (pending) or later (scheduled).
-- KEYS[1] pending list     KEYS[2] scheduled zset   KEYS[3] stats hash   KEYS[4] events channel
-- KEYS[5..] task hashes, one per task, in ARGV order
-- ARGV: id, parameters (JSON text), delay_ms (a whole number; <= 0: due now), repeated once
-- per task
-- Returns the number of tasks created. Creates all or none: fails, creating none, if an id
-- already exists, is repeated in the batch, or does not match its key, or a delay is not a
-- whole number, or a key it writes holds another type (error 'blueque: <key> holds ...') or
-- a counter is not an integer: failing half-way would leave tasks in no list.
--
-- Written for one task per call, the common case: no TYPE reads ahead. The stats hash is
-- read anyway (its counters), by a pcall that names it when it is no hash; the first write,
-- to pending (or to scheduled when no task is due now), is a pcall too, which fails before
-- anything was written when that key is of another type. Only a batch that writes both
-- checks the second one's type ahead.
local pending, scheduled, stats, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local n = #ARGV / 3
if n ~= math.floor(n) or #KEYS - 4 ~= n then
  return redis.error_reply('ERR blueque: enqueue needs one key and three arguments per task')
end
local counts = redis.pcall('HMGET', stats, 'enqueued', 'live')
if counts.err then return call_error(stats, 'hash', counts) end
local err = check_counters(stats, ENQUEUE_COUNTERS, counts)
if err then return err end
local now = now_ms()
local seen, due_at, due, later = n > 1 and {} or nil, {}, {}, {}
for i = 1, n do
  local id, delay = ARGV[3 * i - 2], ARGV[3 * i]
  if KEYS[4 + i] ~= task_key(id) then
    return redis.error_reply('ERR blueque: key ' .. KEYS[4 + i] .. ' is not the hash of task ' ..
      id)
  end
  if seen then
    if seen[id] then
      return redis.error_reply('ERR blueque: task id repeated in one enqueue: ' .. id)
    end
    seen[id] = true
  end
  if redis.call('EXISTS', KEYS[4 + i]) == 1 then
    return redis.error_reply('ERR blueque: task id already exists: ' .. id)
  end
  local d = delay == '0' and 0 or whole(delay)  -- ('0': what clients send for "now")
  if not d then
    return redis.error_reply('ERR blueque: delay of task ' .. id .. ' is not a whole number' ..
      ' of ms: ' .. string.format('%q', delay))
  end
  if d > 0 then
    due_at[i] = ms_text(math.min(now + d, MAX_TIME_MS))
    later[#later + 1] = due_at[i]
    later[#later + 1] = id
  else
    due_at[i] = false
    due[#due + 1] = id
  end
end
-- The first write is pending's RPUSH (scheduled's ZADD when no task is due now), as a pcall;
-- a batch that writes both checks scheduled ahead.
if #due > 0 and #later > 0 then
  local kind = redis.call('TYPE', scheduled)['ok']
  if kind ~= 'none' and kind ~= 'zset' then
    return redis.error_reply('ERR blueque: ' .. scheduled .. ' holds a ' .. kind .. ', not a zset')
  end
end
err = push_all('RPUSH', pending, 'list', due, 1000, true)
  or push_all('ZADD', scheduled, 'zset', later, 2000, #due == 0)
if err then return err end
for i = 1, n do
  local id, params = ARGV[3 * i - 2], ARGV[3 * i - 1]
  if due_at[i] then
    redis.call('HSET', KEYS[4 + i], 'id', id, 'state', 'scheduled', 'parameters', params,
      'enqueued_at', now_text(), 'due_at', due_at[i], 'attempts', '0')
    emit(events, 'scheduled', id, 'scheduled')
  else
    redis.call('HSET', KEYS[4 + i], 'id', id, 'state', 'pending', 'parameters', params,
      'enqueued_at', now_text(), 'queued_at', now_text(), 'attempts', '0')
    emit(events, 'enqueued', id, 'pending')
  end
end
-- Text, not a Lua number: Redis formats a number argument with printf's %.17g.
local added = n == 1 and '1' or int_text(n)
redis.call('HINCRBY', stats, 'enqueued', added)
redis.call('HINCRBY', stats, 'live', added)
return n
