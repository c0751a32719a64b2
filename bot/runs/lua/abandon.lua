--[[
  Abandon of a halted rotation. KEYS[1] run key, KEYS[2] cert-active key. ARGV[1] now (ISO), ARGV[2..]
  field/value pairs. halted → failed, releasing the key if it holds this run, in one step; refused
  when a rollback is pending or the rotation ever touched CRM's registration (registrationTouched).

  Returns: {'ok', previous state} | {'missing', ''} | {'conflict', current state} | {'rollback-pending', rollback run id} | {'registration-touched', ''}
]]
local h = redis.call('HMGET', KEYS[1], 'state', 'rollbackRunId', 'registrationTouched', 'runId')
if not h[1] then return {'missing', ''} end
if h[1] ~= 'halted' then return {'conflict', h[1]} end
if h[2] and h[2] ~= '' then return {'rollback-pending', h[2]} end
if h[3] == '1' then return {'registration-touched', ''} end
redis.call('HSET', KEYS[1], 'state', 'failed', 'updatedAt', ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
if redis.call('GET', KEYS[2]) == h[4] then redis.call('DEL', KEYS[2]) end
return {'ok', h[1]}
