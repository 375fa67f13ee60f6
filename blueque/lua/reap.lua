-- reap: requeue_worker for every registered worker whose alive key has expired.
-- KEYS[1] workers set  KEYS[2] draining set  KEYS[3] pending list  KEYS[4] failed zset
-- KEYS[5] stats hash  KEYS[6] events channel  KEYS[7] config hash  KEYS[8] cancelled zset
-- ARGV[1] reason
-- Returns {workers reaped, tasks requeued, tasks failed}.
local err = check_stats(KEYS[5], REQUEUE_COUNTERS)
if err then return err end
local settings, bad_config = read_settings(KEYS[7], REQUEUE_SETTINGS)
if bad_config then return bad_config end
-- Every dead worker's list is read and checked before the first one is requeued.
local dead = {}
for _, wid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', worker_alive_key(wid)) == 0 then
    local held, bad_task = read_held(worker_tasks_key(wid), wid)
    if bad_task then return bad_task end
    dead[#dead + 1] = {wid = wid, held = held}
  end
end
local requeued, failed = 0, 0
for _, d in ipairs(dead) do
  local k = {tasks = worker_tasks_key(d.wid), worker = worker_key(d.wid),
    alive = worker_alive_key(d.wid), workers = KEYS[1], draining = KEYS[2], pending = KEYS[3],
    failed = KEYS[4], stats = KEYS[5], events = KEYS[6], cancelled = KEYS[8],
    settings = settings, retention = settings}
  local r = requeue_worker(k, d.wid, ARGV[1], d.held, false)
  requeued = requeued + r[1]
  failed = failed + r[2]
end
return {#dead, requeued, failed}
