-- set_progress: records a running task's progress, fenced like finish (the task is running at
-- that attempt, by that worker, and in that worker's list), so a stale worker's progress never
-- lands in a later run.
-- KEYS[1] task hash  KEYS[2] events channel  KEYS[3] worker's in-progress list
-- ARGV[1] task id  ARGV[2] attempt  ARGV[3] progress (JSON)  ARGV[4] worker id
-- Returns 1 when written, 0 when fenced out.
local state, attempts, holder = unpack(redis.call('HMGET', KEYS[1], 'state', 'attempts',
  'worker'))
if state ~= 'running' or attempts ~= ARGV[2] or holder ~= ARGV[4] or
    not redis.call('LPOS', KEYS[3], ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'progress', ARGV[3], 'progress_at', now_ms())
emit(KEYS[2], 'progress', ARGV[1], 'running', ARGV[4])
return 1
