--[[
  `cancel <run>` of an approved or running runbook run. KEYS[1] run key, KEYS[2] the run's cancel key.
  ARGV[1] who asked (JSON), ARGV[2] TTL of the key (s), ARGV[3] now (ISO). Sets the cancel key (the
  agent stops before its next step) and records who asked, only while the run is approved or running.

  Returns: {'ok', previous state} | {'missing', ''} | {'conflict', current state}
]]
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', ''} end
if state ~= 'approved' and state ~= 'running' then return {'conflict', state} end
redis.call('SET', KEYS[2], '1', 'EX', tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'cancelRequestedBy', ARGV[1], 'updatedAt', ARGV[3])
return {'ok', state}
