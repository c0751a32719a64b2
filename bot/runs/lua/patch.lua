--[[
  KEYS[1] run key; ARGV field/value pairs. Sets fields of an existing run (its TTL stays); a missing run stays missing.

  Returns: 1 when written, 0 when the run no longer exists
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
