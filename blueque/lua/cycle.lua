-- cycle: a worker's finish of its task, then the claim and begin of the next one, in one
-- call: what `[finish, BLMOVE, begin]` does when a task is pending, without blocking.
-- KEYS[1..10] finish's keys: worker's in-progress list, worker hash, stats hash, events
--   channel, task hash, complete zset, failed zset, cancelled zset, config hash, scheduled zset
-- KEYS[11] draining set  KEYS[12] pending list  KEYS[13] workers set
-- ARGV[1..5] finish's: worker id, task id, attempt, outcome, payload
-- ARGV[6] pid of the process that runs the next task
-- Returns {finish's answer, begin's answer}: begin's as begin returns it, or {'empty', ''}
-- when no task is pending or the worker's list is not empty after the finish (one task at a
-- time: nothing is claimed then). An error reply of finish comes before any write. An error
-- reply of the begin part comes after the finish took effect and after the claim (as in
-- `[finish, BLMOVE, begin]`): finish is idempotent, so the worker repeats it alone, and the
-- claimed task waits in its list as after any failed begin.
local state = script_finish({KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7],
  KEYS[8], KEYS[9], KEYS[10]}, {ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]})
if type(state) == 'table' then return state end  -- finish's error reply
local tasks, pending = KEYS[1], KEYS[12]
if redis.call('LLEN', tasks) > 0 or not redis.call('LMOVE', pending, tasks, 'LEFT', 'RIGHT') then
  return {state, {'empty', ''}}
end
local begun = script_begin({tasks, KEYS[2], KEYS[11], pending, KEYS[3], KEYS[4], KEYS[8],
  KEYS[9], KEYS[13]}, {ARGV[1], '', ARGV[6]})
if begun.err then return begun end  -- begin's error reply
return {state, begun}
