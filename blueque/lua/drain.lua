-- drain: marks a worker draining, only if its in-progress list is empty. Once it succeeds,
-- begin refuses every task for this worker, so the worker can be removed without cutting a
-- task off. A worker id that is not registered yet may be drained too (a pod still starting).
-- KEYS[1] worker's in-progress list  KEYS[2] worker hash  KEYS[3] draining set
-- KEYS[4] events channel
-- ARGV[1] worker id
-- Returns 1 when the worker is now draining, 0 when it holds a task (nothing changed).
if redis.call('LLEN', KEYS[1]) > 0 then return 0 end
redis.call('SADD', KEYS[3], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('HSET', KEYS[2], 'draining', 1) end
emit(KEYS[4], 'drained', nil, nil, ARGV[1])
return 1
