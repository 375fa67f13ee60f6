-- cancel: cancels a task that has not finished.
-- KEYS[1] pending list  KEYS[2] scheduled zset  KEYS[3] cancelled zset  KEYS[4] stats hash
-- KEYS[5] events channel  KEYS[6] task hash  KEYS[7] config hash
-- ARGV[1] task id
-- Returns {outcome, state}:
--   {'cancelled', 'cancelled'}  it was scheduled or pending: now cancelled
--   {'requested', state}        it is reserved or running: cancel_requested is set; begin
--                               cancels a reserved task (even on a draining worker), a
--                               worker stops a running one
--   {'finished', state}         it had already finished (complete, failed, cancelled)
--   {'missing', ''}             no such task
local pending, scheduled, cancelled, stats, events, tk = KEYS[1], KEYS[2], KEYS[3], KEYS[4],
  KEYS[5], KEYS[6]
local id = ARGV[1]
local state = redis.call('HGET', tk, 'state')
if not state then return {'missing', ''} end
if state ~= 'scheduled' and state ~= 'pending' and state ~= 'running' then
  return {'finished', state}
end
local err = check_stats(stats, {'live', 'cancelled'})
if err then return err end
local retention, bad_config = read_settings(KEYS[7], RETENTION)
if bad_config then return bad_config end
local removed = 0
if state == 'scheduled' then
  removed = redis.call('ZREM', scheduled, id)
elseif state == 'pending' then
  removed = redis.call('LREM', pending, 1, id)
end
if removed == 0 then
  redis.call('HSET', tk, 'cancel_requested', 1)
  emit(events, 'cancel_requested', id, state, redis.call('HGET', tk, 'worker') or nil)
  return {'requested', state}
end
finish_into({stats = stats, retention = retention}, cancelled, id, 'cancelled', {})
redis.call('HINCRBY', stats, 'cancelled', '1')
emit(events, 'cancelled', id, 'cancelled')
return {'cancelled', 'cancelled'}
