-- await: one step of waiting for a task to finish. The client sends it and, in the same
-- pipeline, `XREAD [BLOCK <ms>] STREAMS <KEYS[2]> 0-0`, which Redis runs right after it.
-- KEYS[1] task hash  KEYS[2] the task's done stream (KEYS[1] .. ':done')
-- A task that may still finish (scheduled, pending, running) gets `waited` set, so the
-- transition that finishes or deletes it writes the done stream; an entry left there by an
-- earlier finish (the task was retried since) is removed. For any other task (finished, no
-- such task, or a state that is no state) the done stream is written now, so the XREAD
-- returns at once.
-- Returns the task's state ('' when there is no such task).
local tk, done = KEYS[1], KEYS[2]
if done ~= done_key(tk) then
  return redis.error_reply('ERR blueque: KEYS[2] must be ' .. done_key(tk) .. ', not ' ..
    tostring(done))
end
local state = redis.call('HGET', tk, 'state')
if not UNFINISHED[state] then
  notify(tk)
  return state or ''
end
redis.call('DEL', done)
redis.call('HSET', tk, 'waited', '1')
return state
