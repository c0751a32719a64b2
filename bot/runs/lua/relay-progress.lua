--[[
  Progress coalescing. KEYS[1] run key. ARGV[1] seq, ARGV[2] progress JSON ('' for none), ARGV[3]
  now (ms), ARGV[4] minimum interval (ms), ARGV[5] the progress's step states JSON ('' for none),
  ARGV[6] '1' when those steps show register-crm running, done or failed (the sticky
  registrationTouched flag is set, whatever the seq or state: it only ever records what happened).
  Keeps the newest progress; posts it when nothing newer was posted and the interval since the last
  post has passed, and claims the post atomically.

  Returns: {'post', seq to post} | {'wait', ms to wait} | {'stale', ''} | {'missing', ''}
]]
local h = redis.call('HMGET', KEYS[1], 'state', 'progressSeq', 'lastPostedSeq', 'lastPostedAt')
if not h[1] then return {'missing', ''} end
if ARGV[6] == '1' then redis.call('HSET', KEYS[1], 'registrationTouched', '1') end
if h[1] ~= 'approved' and h[1] ~= 'running' then return {'stale', ''} end
local seq = tonumber(ARGV[1])
local progressSeq = tonumber(h[2] or '-1')
if seq > progressSeq then
  if ARGV[2] ~= '' then
    redis.call('HSET', KEYS[1], 'progressSeq', ARGV[1], 'progress', ARGV[2])
  else
    redis.call('HSET', KEYS[1], 'progressSeq', ARGV[1])
  end
  if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'steps', ARGV[5]) end
  progressSeq = seq
end
local lastSeq = tonumber(h[3] or '-1')
if progressSeq <= lastSeq then return {'stale', ''} end
local lastAt = tonumber(h[4] or '0')
local now = tonumber(ARGV[3])
local interval = tonumber(ARGV[4])
if lastAt > 0 and now - lastAt < interval then return {'wait', tostring(lastAt + interval - now)} end
redis.call('HSET', KEYS[1], 'lastPostedSeq', tostring(progressSeq), 'lastPostedAt', ARGV[3])
return {'post', tostring(progressSeq)}
