--[[
  Approval of a rotation or a rollback, with the one-change-at-a-time rule. KEYS[1] run key, KEYS[2]
  the deployment's cert-active key, KEYS[3] the rotation a rollback rolls back (else KEYS[1]), KEYS[4]
  the run of the holder the caller read (else KEYS[1]). ARGV[1] now (ms), ARGV[2] now (ISO), ARGV[3]
  run id, ARGV[4] the rotation's run id ('' for a rotation), ARGV[5] the holder the caller read ('' none),
  ARGV[6] TTL of the key (s), ARGV[7..] field/value pairs.
  awaiting-approval → approved; refused ('busy') while another run holds the key and is not final
  (a holder whose run is gone or final is stale and replaced); a rollback needs its rotation halted
  with this rollback pending, and moves it to superseded in the same step (the key passes to the rollback).

  Returns: {'ok', previous state, ''} | {'missing', '', ''} | {'conflict', state, ''} | {'expired', state, ''} | {'retry', '', ''} (the holder changed since the caller read it) | {'busy', holder run id, holder state} | {'parent', rotation state, ''}
]]
local final = {{finalStates}}
local h = redis.call('HMGET', KEYS[1], 'state', 'expiresAtMs')
if not h[1] then return {'missing', '', ''} end
if h[1] ~= 'awaiting-approval' then return {'conflict', h[1], ''} end
local exp = tonumber(h[2] or '0')
if exp > 0 and tonumber(ARGV[1]) > exp then return {'expired', h[1], ''} end
local holder = redis.call('GET', KEYS[2]) or ''
if holder ~= ARGV[5] then return {'retry', '', ''} end
if holder ~= '' and holder ~= ARGV[3] and holder ~= ARGV[4] then
  local hs = redis.call('HGET', KEYS[4], 'state')
  if hs and not final[hs] then return {'busy', holder, hs} end
end
if ARGV[4] ~= '' then
  local p = redis.call('HMGET', KEYS[3], 'state', 'rollbackRunId', 'rollbackRequestedBy')
  if p[1] ~= 'halted' or p[2] ~= ARGV[3] then return {'parent', p[1] or '', ''} end
  redis.call('HSET', KEYS[3], 'state', 'superseded', 'updatedAt', ARGV[2])
  if p[3] then redis.call('HSET', KEYS[3], 'supersededBy', p[3]) end
end
redis.call('HSET', KEYS[1], 'state', 'approved', 'updatedAt', ARGV[2])
for i = 7, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('SET', KEYS[2], ARGV[3], 'EX', tonumber(ARGV[6]))
return {'ok', h[1], ''}
