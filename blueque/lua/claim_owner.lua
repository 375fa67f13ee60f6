-- claim_owner: takes or renews the queue's ownership claim. Only the holder of the claim acts
-- for the queue (scales, configures, reaps): two operators pointed at one queue must not.
-- KEYS[1] owner string
-- ARGV[1] owner (a non-empty string)  ARGV[2] ttl, ms (a whole number >= 1)
-- Returns {holder, remaining ttl ms}: ARGV[1] and ARGV[2] when the claim was free or already
-- ours (it is then set, or renewed, with that ttl); otherwise the other holder and its
-- remaining ttl (-1: it has none, written by hand), and nothing changes.
local owner, ttl = ARGV[1], whole(ARGV[2])
if not owner or owner == '' then
  return redis.error_reply('ERR blueque: claim_owner needs a non-empty owner')
end
if not ttl or ttl < 1 then
  return redis.error_reply('ERR blueque: claim_owner ttl must be a whole number of ms >= 1')
end
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= owner then
  return {holder, redis.call('PTTL', KEYS[1])}
end
redis.call('SET', KEYS[1], owner, 'PX', ttl)
return {owner, ttl}
