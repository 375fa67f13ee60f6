-- undrain: lets a drained worker claim again.
-- KEYS[1] worker hash  KEYS[2] draining set  KEYS[3] events channel
-- ARGV[1] worker id
-- Returns 1 when the worker was draining, 0 otherwise.
local was = redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'draining', 0) end
if was == 1 then emit(KEYS[3], 'undrained', nil, nil, ARGV[1]) end
return was
