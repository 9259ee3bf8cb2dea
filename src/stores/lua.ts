/*
 * Lua scripts of the Redis store. Each takes KEYS[1] = the user's session hash (family id ->
 * packed record) and KEYS[2] = the user's expiry index (sorted set, family id -> expiresAt ms).
 * Both keys carry the same {u:<id>} hash tag, so every script runs on one Redis Cluster slot.
 * Every write prunes expired families and re-arms both keys' TTL to the latest expiry, so memory
 * is bounded and nothing outlives its last session.
 */

const COMMON = `
local h, z = KEYS[1], KEYS[2]
local function prune(now)
  local dead = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for i = 1, #dead, 500 do
    redis.call('HDEL', h, unpack(dead, i, math.min(i + 499, #dead)))
  end
  if #dead > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', now) end
end
local function rearm()
  local last = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
  if #last == 0 then
    redis.call('DEL', h, z)
  else
    redis.call('PEXPIREAT', h, last[2])
    redis.call('PEXPIREAT', z, last[2])
  end
end
local function field(v, n)
  local i = 1
  for _ = 1, n - 1 do
    i = string.find(v, '|', i, true) + 1
  end
  local j = string.find(v, '|', i, true)
  return string.sub(v, i, j - 1), j
end
`;

/** ARGV: sessionId, packed record, expiresAt, now, maxSessions (0 = no cap). */
export const CREATE_SESSION = `${COMMON}
prune(ARGV[4])
redis.call('HSET', h, ARGV[1], ARGV[2])
redis.call('ZADD', z, ARGV[3], ARGV[1])
local max = tonumber(ARGV[5])
if max > 0 then
  local extra = redis.call('ZCARD', z) - max
  if extra > 0 then
    local oldest = redis.call('ZRANGE', z, 0, extra - 1)
    redis.call('HDEL', h, unpack(oldest))
    redis.call('ZREM', z, unpack(oldest))
  end
end
rearm()
return 1
`;

/**
 * ARGV: sessionId, oldJti, newJti, now, newExpiresAt, graceMs.
 * Returns 1 rotated, 0 missing, 2 superseded (within grace), 3 reused (family revoked).
 */
export const ROTATE_SESSION = `${COMMON}
prune(ARGV[4])
local v = redis.call('HGET', h, ARGV[1])
if not v then return 0 end
local jti = field(v, 1)
if jti == ARGV[2] then
  local created = field(v, 4)
  local _, j = field(v, 6)
  local rest = string.sub(v, j + 1)
  redis.call('HSET', h, ARGV[1], ARGV[3] .. '|' .. ARGV[2] .. '|' .. ARGV[4] .. '|' .. created .. '|' .. ARGV[4] .. '|' .. ARGV[5] .. '|' .. rest)
  redis.call('ZADD', z, ARGV[5], ARGV[1])
  rearm()
  return 1
end
local grace = tonumber(ARGV[6])
if grace > 0 and field(v, 2) == ARGV[2] and tonumber(ARGV[4]) - tonumber((field(v, 3))) <= grace then
  return 2
end
redis.call('HDEL', h, ARGV[1])
redis.call('ZREM', z, ARGV[1])
rearm()
return 3
`;

/** ARGV: sessionId. Returns 1 when the family existed. */
export const REVOKE_SESSION = `${COMMON}
local n = redis.call('HDEL', h, ARGV[1])
redis.call('ZREM', z, ARGV[1])
rearm()
return n
`;

/** ARGV: now. Returns how many live families were removed. */
export const REVOKE_ALL = `${COMMON}
prune(ARGV[1])
local n = redis.call('ZCARD', z)
redis.call('DEL', h, z)
return n
`;
