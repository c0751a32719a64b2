--[[
  KEYS[1] run key, KEYS[2] the deployment's run index; ARGV[1] TTL (s), ARGV[2] now (ms), ARGV[3]
  index size, ARGV[4..] field/value pairs. Creates the run unless the key exists, with its TTL, and
  adds it to the index (newest kept, oldest trimmed), in one step.

  Returns: 1 when created, 0 when the run key exists already
]]
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
local runId = redis.call('HGET', KEYS[1], 'runId')
redis.call('ZADD', KEYS[2], tonumber(ARGV[2]), runId)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -1 - tonumber(ARGV[3]))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[1]))
return 1
