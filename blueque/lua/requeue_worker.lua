-- requeue_worker: gives back a dead (or stopping) worker's tasks and removes the worker.
-- Used for a pod that is gone, a heartbeat that expired, a restarted worker recovering its
-- own list, and a worker's clean exit (its list is then empty).
-- KEYS[1] worker's in-progress list  KEYS[2] worker hash  KEYS[3] worker alive key
-- KEYS[4] workers set  KEYS[5] draining set  KEYS[6] pending list  KEYS[7] failed zset
-- KEYS[8] stats hash  KEYS[9] events channel  KEYS[10] config hash  KEYS[11] cancelled zset
-- ARGV[1] worker id  ARGV[2] reason (recorded on tasks that fail or are requeued)
-- Returns {requeued, failed}.
local k = {tasks = KEYS[1], worker = KEYS[2], alive = KEYS[3], workers = KEYS[4],
  draining = KEYS[5], pending = KEYS[6], failed = KEYS[7], stats = KEYS[8], events = KEYS[9],
  config = KEYS[10], cancelled = KEYS[11]}
return requeue_worker(k, ARGV[1], ARGV[2])
