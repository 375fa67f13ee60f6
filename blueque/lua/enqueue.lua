-- enqueue: creates tasks, due now (pending) or later (scheduled).
-- KEYS[1] pending list     KEYS[2] scheduled zset   KEYS[3] stats hash   KEYS[4] events channel
-- KEYS[5..] task hashes, one per task, in ARGV order
-- ARGV: id, parameters (JSON text), delay_ms (a whole number; <= 0: due now), repeated once
-- per task
-- Returns the number of tasks created. Creates all or none: fails, creating none, if an id
-- already exists, is repeated in the batch, or does not match its key, or a delay is not a
-- whole number, or a key it writes holds another type (error 'blueque: <key> holds ...') or
-- a counter is not an integer: failing half-way would leave tasks in no list.
local pending, scheduled, stats, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local n = #ARGV / 3
if n ~= math.floor(n) or #KEYS - 4 ~= n then
  return redis.error_reply('ERR blueque: enqueue needs one key and three arguments per task')
end
for _, expected in ipairs({{pending, 'list'}, {scheduled, 'zset'}, {stats, 'hash'}}) do
  local kind = redis.call('TYPE', expected[1])['ok']
  if kind ~= 'none' and kind ~= expected[2] then
    return redis.error_reply('ERR blueque: ' .. expected[1] .. ' holds a ' .. kind .. ', not a ' ..
      expected[2])
  end
end
local now = now_ms()
local seen, delays = {}, {}
for i = 1, n do
  local id, delay = ARGV[3 * i - 2], ARGV[3 * i]
  if KEYS[4 + i] ~= task_key(id) then
    return redis.error_reply('ERR blueque: key ' .. KEYS[4 + i] .. ' is not the hash of task ' ..
      id)
  end
  if seen[id] then
    return redis.error_reply('ERR blueque: task id repeated in one enqueue: ' .. id)
  end
  seen[id] = true
  if redis.call('EXISTS', KEYS[4 + i]) == 1 then
    return redis.error_reply('ERR blueque: task id already exists: ' .. id)
  end
  delays[i] = whole(delay)
  if not delays[i] then
    return redis.error_reply('ERR blueque: delay of task ' .. id .. ' is not a whole number' ..
      ' of ms: ' .. string.format('%q', delay))
  end
  if delays[i] > 0 then delays[i] = math.min(now + delays[i], MAX_TIME_MS) - now end
end
local err = check_stats(stats, {'enqueued', 'live'})
if err then return err end
local due = {}
for i = 1, n do
  local id, params, delay = ARGV[3 * i - 2], ARGV[3 * i - 1], delays[i]
  local tk = KEYS[4 + i]
  if delay > 0 then
    redis.call('HSET', tk, 'id', id, 'state', 'scheduled', 'parameters', params,
      'enqueued_at', now, 'due_at', ms_text(now + delay), 'attempts', 0)
    redis.call('ZADD', scheduled, ms_text(now + delay), id)
    emit(events, 'scheduled', id, 'scheduled')
  else
    redis.call('HSET', tk, 'id', id, 'state', 'pending', 'parameters', params,
      'enqueued_at', now, 'queued_at', now, 'attempts', 0)
    due[#due + 1] = id
    emit(events, 'enqueued', id, 'pending')
  end
end
-- One RPUSH per 1000 ids (unpack's stack limit), in ARGV order: the batch keeps its order.
for first = 1, #due, 1000 do
  redis.call('RPUSH', pending, unpack(due, first, math.min(first + 999, #due)))
end
redis.call('HINCRBY', stats, 'enqueued', n)
redis.call('HINCRBY', stats, 'live', n)
return n
