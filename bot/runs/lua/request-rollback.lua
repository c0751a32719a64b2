--[[
  Roll back asked on a halted rotation. KEYS[1] rotation run key. ARGV[1] rollback run id, ARGV[2]
  who asked (JSON), ARGV[3] now (ISO). Records the pending rollback only if the rotation is halted
  and none is pending.

  Returns: {'ok', ''} | {'missing', ''} | {'conflict', current state} | {'pending', pending rollback run id}
]]
local h = redis.call('HMGET', KEYS[1], 'state', 'rollbackRunId')
if not h[1] then return {'missing', ''} end
if h[1] ~= 'halted' then return {'conflict', h[1]} end
if h[2] and h[2] ~= '' then return {'pending', h[2]} end
redis.call('HSET', KEYS[1], 'rollbackRunId', ARGV[1], 'rollbackRequestedBy', ARGV[2], 'updatedAt', ARGV[3])
redis.call('HDEL', KEYS[1], 'failedRollbackRunId')
return {'ok', ''}
