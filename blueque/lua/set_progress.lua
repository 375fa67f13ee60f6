-- set_progress: records a running task's progress, fenced by attempt.
-- KEYS[1] task hash  KEYS[2] events channel
-- ARGV[1] task id  ARGV[2] attempt  ARGV[3] progress (JSON)
-- Returns 1 when written, 0 when the task is no longer running at that attempt.
local state, attempts = unpack(redis.call('HMGET', KEYS[1], 'state', 'attempts'))
if state ~= 'running' or attempts ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[3], 'progress_at', now_ms())
emit(KEYS[2], 'progress', ARGV[1], 'running')
return 1
