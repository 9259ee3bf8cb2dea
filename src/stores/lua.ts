/*
 * Lua scripts of the Redis store. Each takes KEYS[1] = the user's one hash: field <sid> holds the
 * family's core record "jti|previous jti|rotatedAt|createdAt|expiresAt" (the jti is a UUID in 22
 * base64url characters, the previous one cut to 14; times in base-36 ms), and
 * fields <sid>:0 … <sid>:5 its "ip|user agent" in chunks, when known. No value exceeds 64 bytes,
 * so Redis keeps the hash in its compact listpack encoding (hash-max-listpack-value). One key per user carries the {u:<id>} hash tag, so every script runs on one Redis
 * Cluster slot. Every write prunes expired families and re-arms the key's TTL to the latest
 * expiry, so memory is bounded and nothing outlives its last session.
 */

const COMMON = `
local h = KEYS[1]
local function drop(sid)
  return redis.call('HDEL', h, sid, sid .. ':0', sid .. ':1', sid .. ':2', sid .. ':3', sid .. ':4', sid .. ':5')
end
-- Deletes expired families; returns the live ones as {sid, expiresAt} pairs.
local function live(now)
  local all = redis.call('HGETALL', h)
  local alive, dead = {}, {}
  for i = 1, #all, 2 do
    local f = all[i]
    if not string.find(f, ':', 1, true) then
      local exp = tonumber(string.match(all[i + 1], '([^|]*)$'), 36) or 0
      if exp <= now then
        dead[#dead + 1] = f
      else
        alive[#alive + 1] = { f, exp }
      end
    end
  end
  for _, sid in ipairs(dead) do drop(sid) end
  return alive
end
local function rearm(alive)
  local last = 0
  for _, s in ipairs(alive) do
    if s[2] > last then last = s[2] end
  end
  if last == 0 then
    redis.call('DEL', h)
  else
    redis.call('PEXPIREAT', h, string.format('%.0f', last))
  end
end
local function without(alive, sid)
  local kept = {}
  for _, s in ipairs(alive) do
    if s[1] ~= sid then kept[#kept + 1] = s end
  end
  return kept
end
`;

/** ARGV: sessionId, core record, expiresAt, now, maxSessions (0 = no cap), then up to 6 metadata chunks. */
export const CREATE_SESSION = `${COMMON}
local alive = live(tonumber(ARGV[4]))
redis.call('HSET', h, ARGV[1], ARGV[2])
for i = 6, math.min(#ARGV, 11) do
  redis.call('HSET', h, ARGV[1] .. ':' .. (i - 6), ARGV[i])
end
alive[#alive + 1] = { ARGV[1], tonumber(ARGV[3]) }
local max = tonumber(ARGV[5])
if max > 0 and #alive > max then
  table.sort(alive, function(a, b) return a[2] < b[2] end)
  local extra = #alive - max
  local kept = {}
  for i, s in ipairs(alive) do
    if i <= extra then
      drop(s[1])
    else
      kept[#kept + 1] = s
    end
  end
  alive = kept
end
rearm(alive)
return 1
`;

/**
 * ARGV: sessionId, oldJti, newJti, now, newExpiresAt, graceMs, now (base 36), newExpiresAt (base 36).
 * Returns 1 rotated, 0 missing, 2 superseded (within grace), 3 reused (family revoked).
 */
export const ROTATE_SESSION = `${COMMON}
local now = tonumber(ARGV[4])
local alive = live(now)
local v = redis.call('HGET', h, ARGV[1])
if not v then return 0 end
local jti, prev, rotated, created = string.match(v, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|')
local grace = tonumber(ARGV[6])
if jti == ARGV[2] then
  -- The previous UUID only matters within a grace window; without one it is not kept, and with
  -- one only its first 14 characters are (PREVIOUS_UUID_CHARS), so the record stays in 64 bytes.
  local keep = grace > 0 and string.sub(ARGV[2], 1, 14) or ''
  redis.call('HSET', h, ARGV[1], ARGV[3] .. '|' .. keep .. '|' .. ARGV[7] .. '|' .. created .. '|' .. ARGV[8])
  alive = without(alive, ARGV[1])
  alive[#alive + 1] = { ARGV[1], tonumber(ARGV[5]) }
  rearm(alive)
  return 1
end
if grace > 0 and prev ~= '' and prev == string.sub(ARGV[2], 1, 14) and now - (tonumber(rotated, 36) or 0) <= grace then
  return 2
end
drop(ARGV[1])
rearm(without(alive, ARGV[1]))
return 3
`;

/** ARGV: sessionId, now. Returns 1 when the family existed. */
export const REVOKE_SESSION = `${COMMON}
local n = redis.call('HEXISTS', h, ARGV[1])
drop(ARGV[1])
rearm(live(tonumber(ARGV[2])))
return n
`;

/** ARGV: now. Returns how many live families were removed. */
export const REVOKE_ALL = `${COMMON}
local n = #live(tonumber(ARGV[1]))
redis.call('DEL', h)
return n
`;
