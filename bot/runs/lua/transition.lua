--[[
  KEYS[1] run key. ARGV[1] allowed current states (comma-separated), ARGV[2] new state, ARGV[3]
  now (ms), ARGV[4] expiry check ('1': refuse when now > expiresAtMs), ARGV[5] now (ISO), ARGV[6..]
  field/value pairs. KEYS[2] (optional) the deployment's cert-active key: released in the same step
  when it holds this run (a certificate run reaching a final state).

  Returns: {'ok', previous state} | {'missing', ''} | {'conflict', current state} | {'expired', current state}
]]
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', ''} end
local allowed = false
for s in string.gmatch(ARGV[1], '[^,]+') do
  if s == state then allowed = true end
end
if not allowed then return {'conflict', state} end
if ARGV[4] == '1' then
  local exp = tonumber(redis.call('HGET', KEYS[1], 'expiresAtMs') or '0')
  if exp > 0 and tonumber(ARGV[3]) > exp then return {'expired', state} end
end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'updatedAt', ARGV[5])
for i = 6, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
if #KEYS > 1 and redis.call('GET', KEYS[2]) == redis.call('HGET', KEYS[1], 'runId') then
  redis.call('DEL', KEYS[2])
end
return {'ok', state}
