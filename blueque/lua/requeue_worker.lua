-- requeue_worker: gives back a dead (or stopping) worker's tasks and removes the worker.
-- Used for a pod that is gone, a heartbeat that expired, a restarted worker recovering its
-- own list, and a worker's clean exit (its list is then empty, or holds a task it claimed
-- but did not begin).
-- KEYS[1] worker's in-progress list  KEYS[2] worker hash  KEYS[3] worker alive key
-- KEYS[4] workers set  KEYS[5] draining set  KEYS[6] pending list  KEYS[7] failed zset
-- KEYS[8] stats hash  KEYS[9] events channel  KEYS[10] config hash  KEYS[11] cancelled zset
-- ARGV[1] worker id  ARGV[2] reason (recorded on tasks that fail or are requeued)
-- ARGV[3] '1' on the worker's own clean exit (its drain mark is cleared too), else '0' or
-- absent (a drain mark survives the worker's death and restart)
-- Returns {requeued, failed}.
local k = {tasks = KEYS[1], worker = KEYS[2], alive = KEYS[3], workers = KEYS[4],
  draining = KEYS[5], pending = KEYS[6], failed = KEYS[7], stats = KEYS[8], events = KEYS[9],
  cancelled = KEYS[11]}
local err = check_stats(k.stats, REQUEUE_COUNTERS)
if err then return err end
local settings, bad_config = read_settings(KEYS[10], REQUEUE_SETTINGS)
if bad_config then return bad_config end
k.settings, k.retention = settings, settings
local held, bad_task = read_held(k.tasks, ARGV[1])
if bad_task then return bad_task end
return requeue_worker(k, ARGV[1], ARGV[2], held, ARGV[3] == '1')
