-- delete: removes a task that is not held by a worker, wherever it waits or rests.
-- KEYS[1] pending list  KEYS[2] scheduled zset  KEYS[3] complete zset  KEYS[4] failed zset
-- KEYS[5] cancelled zset  KEYS[6] stats hash  KEYS[7] events channel  KEYS[8] task hash
-- ARGV[1] task id
-- Returns 'deleted', 'busy' (reserved or running: cancel it first) or 'missing'.
-- Whoever waits for the task is woken: its done stream says `notify missing`.
local id, tk = ARGV[1], KEYS[8]
local state, waited = unpack(redis.call('HMGET', tk, 'state', 'waited'))
if not state then return 'missing' end
local err = check_stats(KEYS[6], {'live'})
if err then return err end
local finished = {complete = KEYS[3], failed = KEYS[4], cancelled = KEYS[5]}
if finished[state] then
  redis.call('ZREM', finished[state], id)
elseif state == 'scheduled' then
  redis.call('ZREM', KEYS[2], id)
  redis.call('HINCRBY', KEYS[6], 'live', '-1')
elseif state == 'pending' and redis.call('LREM', KEYS[1], 1, id) == 1 then
  redis.call('HINCRBY', KEYS[6], 'live', '-1')
else
  return 'busy'
end
redis.call('DEL', tk)
if waited then notify(tk) end
emit(KEYS[7], 'deleted', id, state)
return 'deleted'
