--[[
  Resume of a halted run. KEYS[1] run key. ARGV[1] expected attempt, ARGV[2] now (ISO), ARGV[3..]
  field/value pairs. halted → approved and attempt + 1 in one step, refused when the run is not
  halted, its attempt is not the one the clicker saw (another resume got there first), or a rollback
  of it is waiting for approval. The previous attempt's result and error are cleared (and the note of
  a rollback that failed before changing anything); registrationTouched stays. KEYS[2] (optional) the
  run's cancel key: deleted in the same step, with cancelRequestedBy (a cancel asked while the failed
  attempt ran must not stop the resumed one).

  Returns: {'ok', 'halted', new attempt} | {'missing', '', ''} | {'conflict', state, attempt} | {'rollback-pending', rollback run id, attempt} | {'attempt-changed', state, attempt}
]]
local h = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'rollbackRunId')
if not h[1] then return {'missing', '', ''} end
local attempt = tonumber(h[2] or '1')
if h[1] ~= 'halted' then return {'conflict', h[1], tostring(attempt)} end
if h[3] and h[3] ~= '' then return {'rollback-pending', h[3], tostring(attempt)} end
if attempt ~= tonumber(ARGV[1]) then return {'attempt-changed', h[1], tostring(attempt)} end
redis.call('HDEL', KEYS[1], 'result', 'error', 'failedRollbackRunId', 'cancelRequestedBy')
if #KEYS > 1 then redis.call('DEL', KEYS[2]) end
redis.call('HSET', KEYS[1], 'state', 'approved', 'attempt', tostring(attempt + 1), 'updatedAt', ARGV[2])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return {'ok', 'halted', tostring(attempt + 1)}
