-- reap: requeue_worker for every registered worker whose alive key has expired.
-- KEYS[1] workers set  KEYS[2] draining set  KEYS[3] pending list  KEYS[4] failed zset
-- KEYS[5] stats hash  KEYS[6] events channel  KEYS[7] config hash  KEYS[8] cancelled zset
-- ARGV[1] reason
-- Returns {workers reaped, tasks requeued, tasks failed}.
local reaped, requeued, failed = 0, 0, 0
for _, wid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', worker_alive_key(wid)) == 0 then
    local k = {tasks = worker_tasks_key(wid), worker = worker_key(wid),
      alive = worker_alive_key(wid), workers = KEYS[1], draining = KEYS[2], pending = KEYS[3],
      failed = KEYS[4], stats = KEYS[5], events = KEYS[6], config = KEYS[7],
      cancelled = KEYS[8]}
    local r = requeue_worker(k, wid, ARGV[1])
    reaped = reaped + 1
    requeued = requeued + r[1]
    failed = failed + r[2]
  end
end
return {reaped, requeued, failed}
