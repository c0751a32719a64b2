--[[
  A rollback that failed: it never started (its job could not be enqueued, or no agent took it in
  time), the agent reported it failed, or its result says the verification failed. KEYS[1] rollback
  run key, KEYS[2] cert-active key, KEYS[3] the rotation's run key. ARGV[1] now (ISO), ARGV[2] TTL of
  the key (s), ARGV[3] allowed current states of the rollback (comma-separated), ARGV[4..]
  field/value pairs for the rollback (its steps set registrationTouched in the same HSETs).
  The rollback: → failed. When it never touched CRM's registration (its register-crm never ran: it
  changed nothing), the rotation it superseded is halted again (no pending rollback, a note of the
  failed one) and the cert-active key goes back to it: Resume, Roll back (and Abandon as the rules
  say) are offered again. Otherwise the key is released as for any final certificate run.
  Returns {'ok', previous state, '1' when the rotation was halted again}.

  Returns: {'ok', previous state, '1' | '0' (rotation halted again)} | {'missing', '', ''} | {'conflict', current state, ''}
]]
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', '', ''} end
local allowed = false
for s in string.gmatch(ARGV[3], '[^,]+') do
  if s == state then allowed = true end
end
if not allowed then return {'conflict', state, ''} end
redis.call('HSET', KEYS[1], 'state', 'failed', 'updatedAt', ARGV[1])
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
local id = redis.call('HGET', KEYS[1], 'runId')
local touched = redis.call('HGET', KEYS[1], 'registrationTouched') == '1'
local p = redis.call('HMGET', KEYS[3], 'state', 'rollbackRunId', 'runId')
if not touched and p[1] == 'superseded' and p[2] == id then
  redis.call('HSET', KEYS[3], 'state', 'halted', 'updatedAt', ARGV[1], 'failedRollbackRunId', id)
  redis.call('HDEL', KEYS[3], 'rollbackRunId', 'rollbackRequestedBy', 'supersededBy')
  if redis.call('GET', KEYS[2]) == id then redis.call('SET', KEYS[2], p[3], 'EX', tonumber(ARGV[2])) end
  return {'ok', state, '1'}
end
if redis.call('GET', KEYS[2]) == id then
  redis.call('DEL', KEYS[2])
end
return {'ok', state, '0'}
