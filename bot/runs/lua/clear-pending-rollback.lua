--[[
  KEYS[1] rotation run key; ARGV[1] rollback run id. Clears the pending rollback of a halted rotation if it is this one.

  Returns: 1 when cleared, 0 otherwise
]]
local h = redis.call('HMGET', KEYS[1], 'state', 'rollbackRunId')
if h[1] ~= 'halted' or h[2] ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'rollbackRunId', 'rollbackRequestedBy')
return 1
