-- observe: what an operator needs of a queue in one read: the queue's figures and, for every
-- worker id it knows (registered or draining), who owns it and what it holds. Read-only;
-- O(workers), no scans.
-- KEYS[1] pending list  KEYS[2] scheduled zset  KEYS[3] stats hash  KEYS[4] workers set
-- KEYS[5] draining set
-- Returns {now_ms, pending, scheduled, running, live, workers}, where workers is a list with
-- one entry per id in the workers set or the draining set (sorted by id):
--   {wid, registered 0|1, draining 0|1, alive 0|1, owner, pod_uid, heartbeat_ttl_ms,
--    task, begun 0|1, started_at}
-- with '' for a field that is absent. task is the head of the worker's in-progress list;
-- begun is 1 when that task's hash says running by this worker (0: only claimed, reserved),
-- and started_at is then the task hash's started_at (ms).
-- A worker key of another type than the layout says reads as absent, so one corrupt worker
-- does not hide the others; a corrupt pending, scheduled, stats, workers or draining key
-- fails the script.
local function readable(reply, empty)
  if type(reply) == 'table' and reply.err then return empty end
  return reply
end

local counters = redis.call('HMGET', KEYS[3], 'running', 'live')
local registered, draining = {}, {}
local ids = {}
for _, wid in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  registered[wid] = true
  ids[#ids + 1] = wid
end
for _, wid in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  draining[wid] = true
  if not registered[wid] then ids[#ids + 1] = wid end
end
table.sort(ids)

local workers = {}
for _, wid in ipairs(ids) do
  local fields = readable(redis.pcall('HMGET', worker_key(wid), 'owner', 'pod_uid',
    'heartbeat_ttl_ms'), {})
  local head = readable(redis.pcall('LINDEX', worker_tasks_key(wid), 0), false)
  local alive = readable(redis.pcall('EXISTS', worker_alive_key(wid)), 0)
  local begun, started_at = 0, ''
  if head then
    local task = readable(redis.pcall('HMGET', task_key(head), 'state', 'worker',
      'started_at'), {})
    if task[1] == 'running' and task[2] == wid then
      begun, started_at = 1, task[3] or ''
    end
  end
  workers[#workers + 1] = {wid, registered[wid] and 1 or 0, draining[wid] and 1 or 0, alive,
    fields[1] or '', fields[2] or '', fields[3] or '', head or '', begun, started_at}
end
return {now_ms(), redis.call('LLEN', KEYS[1]), redis.call('ZCARD', KEYS[2]),
  counters[1] or '0', counters[2] or '0', workers}
