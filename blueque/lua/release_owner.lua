-- release_owner: gives up the queue's ownership claim, only if it is ours.
-- KEYS[1] owner string
-- ARGV[1] owner
-- Returns 1 when the claim was ours and is now deleted, 0 otherwise (nothing changes).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
