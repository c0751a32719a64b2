--[[
  KEYS[1] run key; ARGV[1] field; ARGV[2] seq. Raises a seq field (finalPostedSeq, resultsSentSeq)
  to seq unless it is already there. A run that no longer exists (expired) is not recreated.

  Returns: 1 when raised, 0 when already there, -1 when the run no longer exists
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if cur >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
