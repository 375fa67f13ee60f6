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
-- When a task is begun, finish's `running -= 1` and begin's `+= 1` cancel out, and begin's
-- write of the worker hash replaces finish's: neither is written (see finish and begin).
local cycle = {}
local state = script_finish(KEYS, ARGV, cycle)
if type(state) == 'table' then return state end  -- finish's error reply
local tasks, pending = KEYS[1], KEYS[12]

local function claim_and_begin()
  if redis.call('LLEN', tasks) > 0 then return {'empty', ''} end
  cycle.id = redis.call('LMOVE', pending, tasks, 'LEFT', 'RIGHT')
  if not cycle.id then return {'empty', ''} end
  return script_begin({tasks, KEYS[2], KEYS[11], pending, KEYS[3], KEYS[4], KEYS[8],
    KEYS[9], KEYS[13]}, {ARGV[1], '', ARGV[6]}, cycle)
end

-- A key of another type stops a Redis command with an error: caught here, so that what
-- finish left to the begin is written in every case, then raised again.
local ok, begun = pcall(claim_and_begin)
if cycle.handed and not cycle.begun then
  redis.call('HINCRBY', KEYS[3], 'running', '-1')
  redis.call('HSET', KEYS[2], 'task', '', 'task_started_at', '')
end
if not ok then error(begun, 0) end
if begun.err then return begun end  -- begin's error reply
return {state, begun}
