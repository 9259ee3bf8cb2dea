import {
  CORE_FIELDS,
  type CoreField,
  corePosition,
  META_CHUNK,
  META_CHUNKS,
  META_MARK,
  PREVIOUS_BYTES,
  PREVIOUS_UUID_CHARS,
  PRUNE_AT,
  SEP,
  MS_BYTES,
  SECONDS_BYTES,
  V2,
  V2_MASK,
  V2_DEVICE,
  V2_HEAD,
  V2_LAYOUT,
  V2_PREVIOUS,
  V2_ROTATED,
} from './record-codec.js';
import { type PackedFields, type PackedFormat, structFormat } from './script-args.js';
import type { RotationResult } from './session-store.js';

/*
 * Lua scripts of the Redis store, generated from the record codec (record-codec.ts): the offsets
 * and flags of a binary (version 2) core record, the field order and separator of a text (version
 * 1) one, the metadata field names and chunk count, the kept length of the previous jti, all come
 * from there, so the scripts hard-code no position. Each script takes KEYS[1] = the user's one
 * hash (field <sid>: the core record; fields <sid>:0 … : metadata chunks, when the record has no
 * codes for them). No value exceeds 64 bytes, so Redis keeps the hash in its compact listpack encoding
 * (hash-max-listpack-value). The hash is the user's own, `<prefix>{u:<id>}`, or in the shared
 * layout one of `keyBuckets` hashes, `<prefix>{b:<n>}`; either way one key carries its hash tag,
 * so every script runs on one Redis Cluster slot. Writes prune expired families and re-arm the
 * key's TTL to the latest expiry, so memory is bounded and nothing outlives its last session.
 *
 * Each script's ARGV is a named list below; `scriptArgs` (script-args.ts) puts the values in that order, and the
 * script reads them into locals of the same names (`sessionId`), in one line generated from the
 * list, so the two sides cannot disagree on positions. The login and the rotation take their
 * fields packed in one argument instead (CREATE_FIELDS, ROTATE_FIELDS, packArgs), read into
 * locals by one `struct.unpack` generated from the same list: numbers arrive as numbers, and the
 * decimal form of an expiry as a string of its own, which goes to Redis as it came, without a
 * `string.format`. Elsewhere a script converts a string to a number as `x + 0`: one conversion
 * (`strtod`), where `tonumber(x)` converts twice (it checks, then converts).
 */

/** A Lua string literal of a plain ASCII value. */
const luaString = (value: string): string => `'${value.replace(/[\\']/g, '\\$&')}'`;
/** A Lua pattern matching `value` literally. */
const luaPattern = (value: string): string => value.replace(/[\^$()%.[\]*+\-?]/g, '%$&');

/*
 * Every script names the user's families by `owner`: what the user's family fields start with.
 * In the per-user layout the hash is the user's own and `owner` is empty; in the shared layout
 * (`keyBuckets`) a hash holds many users' families, each field led by its user's tag, and
 * `sessionId` arrives with that tag already in front (it is the field name).
 */

/**
 * CREATE_SESSION's fields, packed in its one argument as ROTATE_FIELDS are (see there); up to
 * META_CHUNKS metadata chunks follow it as arguments of their own. `core` is the record as Redis
 * keeps it: a text (version 1) one, or the binary (version 2) one's bytes (record-codec.ts,
 * binaryRecord), which the script stores as they came. `expiresAtText` is `expiresAt` in
 * decimal, which the key's expiry takes as it came; a binary record's is whole seconds, as the
 * record keeps it.
 */
export const CREATE_FIELDS = [
  ['owner', 'text'],
  ['sessionId', 'text'],
  ['core', 'text'],
  ['expiresAt', 'number'],
  ['expiresAtText', 'bytes'],
  ['now', 'number'],
  ['maxSessions', 'number'],
] as const satisfies readonly (readonly [string, PackedFormat])[];
export const CREATE_ARGS = ['packed'] as const;
/**
 * ROTATE_SESSION's fields, which it takes packed in its one argument (packArgs) and reads with a
 * single `struct.unpack`. Twelve arguments cost Redis more than the rotation's own logic: each is
 * parsed, made an object, interned as a Lua string and freed, and the jti's parts and the numbers
 * were then converted in Lua. Packed, the jti's 16 bytes and the numbers arrive as the record
 * keeps them. Redis instructions per batched rotation (callgrind, the whole command from
 * `readQueryFromClient`): 85.3k as twelve arguments, 60.7k packed (55.6k once the fast path also
 * read and wrote the record's head with one `struct` call each).
 *
 * A version 1 (text) record compares and stores the compact jti (`oldJti`, `newJti`) and the
 * base-36 times (`now36`, `expiresAt36`); a version 2 (binary) one the jti's 16 bytes
 * (`oldBytes`, `newBytes`: record-codec.ts, uuidBytes; empty for a jti that is no UUID).
 * `expiresAtText` is `expiresAt` in decimal, which the key's expiry takes as it came.
 * `successor` is 1 when the new jti is derived from the old one (Rotation.successor): a
 * concurrent rotation is then recognised by the live jti being the new one, and a binary record
 * keeps no previous jti (a text one still does, for earlier versions).
 */
export const ROTATE_FIELDS = [
  ['owner', 'text'],
  ['sessionId', 'text'],
  ['oldJti', 'text'],
  ['newJti', 'text'],
  ['oldBytes', 'bytes'],
  ['newBytes', 'bytes'],
  ['now', 'number'],
  ['expiresAt', 'number'],
  ['expiresAtText', 'bytes'],
  ['graceMs', 'number'],
  ['successor', 'flag'],
  ['now36', 'bytes'],
  ['expiresAt36', 'bytes'],
] as const satisfies readonly (readonly [string, PackedFormat])[];
export const ROTATE_ARGS = ['packed'] as const;
export const REVOKE_SESSION_ARGS = ['owner', 'sessionId', 'now'] as const;
export const REVOKE_ALL_ARGS = ['owner', 'now'] as const;

/** What ROTATE_SESSION returns, per outcome. */
export const ROTATE_RESULTS = {
  missing: 0,
  rotated: 1,
  superseded: 2,
  reused: 3,
} as const satisfies Record<RotationResult, number>;

/**
 * Reads a call's arguments, which start after ARGV[BASE] (the single script: BASE 0), into locals
 * named as in `names`, and sets NARGS, their count. Locals, not a table: a table would be made
 * anew on every call.
 */
function readArgs(names: readonly string[], packed?: PackedFields): string {
  const values = names.map((_, i) => `ARGV[BASE + ${i + 1}]`).join(', ');
  // A call short of arguments must not read the next call's.
  const read = `local NARGS = ${names.length}
if COUNT < NARGS then error('expected ' .. NARGS .. ' arguments, got ' .. COUNT) end
local ${names.join(', ')} = ${values}`;
  if (packed === undefined) return read;
  // Its one argument holds the fields (packArgs): one struct.unpack makes them all locals.
  return `${read}
local ${packed.map(([name]) => name).join(', ')} = struct.unpack(${luaString(structFormat(packed))}, ${names[0]})`;
}

/**
 * A write scans the user's families (to prune the expired ones and enforce the cap) only once
 * the hash has this many fields. Below it, nothing can exceed a cap of that size, expired
 * families (a few dozen bytes each, never read as live) wait for a later scan or for the key's
 * own expiry, and a login costs one HLEN and one HSET (a rotation one HMGET and one HSET) instead
 * of a scan of every family. At or above it, and only then, the hash keeps PRUNE_AT, and a write
 * scans only once that time has passed (or, a login, when the fields could hold more families
 * than the cap).
 */
export const SCAN_FIELDS = 16;

/** A Lua pattern capturing one field of a core record, from the codec's field order. */
function corePattern(name: CoreField): string {
  const field = `[^${luaPattern(SEP)}]*`;
  return `^${`${field}${luaPattern(SEP)}`.repeat(corePosition(name))}(${field})`;
}

/**
 * The struct format of a binary record's fixed head, which lies in one piece: the layout byte, the
 * jti's 16 bytes, createdAt, expiresAt (record-codec.ts, V2_LAYOUT).
 */
const V2_HEAD_FORMAT = `>Bc16I${MS_BYTES}I${SECONDS_BYTES}`;
if (
  V2_LAYOUT.jti !== 1 ||
  V2_LAYOUT.createdAt !== V2_LAYOUT.jti + 16 ||
  V2_LAYOUT.expiresAt !== V2_LAYOUT.createdAt + MS_BYTES ||
  V2_HEAD !== V2_LAYOUT.expiresAt + SECONDS_BYTES
)
  throw new Error('V2_HEAD_FORMAT no longer matches V2_LAYOUT');

/** Whether Redis takes PEXPIREAT … GT (7.0 and later; 6 has no REDIS_VERSION_NUM). */
export const EXPIRE_GT = '(tonumber(redis.REDIS_VERSION_NUM) or 0) >= 0x070000';

/**
 * What every script starts with: the key, and the codec's constants as plain locals (strings and
 * numbers, nothing a call must allocate).
 */
const CONSTANTS = `
local h = KEYS[1]
local EXPIRE_GT = ${EXPIRE_GT}
local SEP = ${luaString(SEP)}
local META_MARK = ${luaString(META_MARK)}
local META_CHUNKS = ${META_CHUNKS}
local PREVIOUS_UUID_CHARS = ${PREVIOUS_UUID_CHARS}
local PRUNE_AT = ${luaString(PRUNE_AT)}
-- Capture the expiry and the creation time of a version 1 core record without splitting it: a
-- scan reads every family's.
local EXPIRES_AT_PATTERN = ${luaString(corePattern('expiresAt'))}
local CREATED_AT_PATTERN = ${luaString(corePattern('createdAt'))}
-- A version 2 core record (binary) starts with a byte below 0x20; createdAt (epoch ms) and
-- expiresAt (epoch seconds) are big-endian at fixed offsets, rotatedAt (epoch seconds) follows
-- them when flagged (record-codec.ts).
local V2, V2_MASK, V2_HEAD = ${V2}, ${V2_MASK}, ${V2_HEAD}
local MS, SECONDS = '>I${MS_BYTES}', '>I${SECONDS_BYTES}'
-- A record's fixed head in one read (layout byte, jti, createdAt, expiresAt), and a rotated
-- one's in one write (the same, then rotatedAt).
local V2_READ = '${V2_HEAD_FORMAT}'
local V2_ROTATED_HEAD = '${V2_HEAD_FORMAT}I${SECONDS_BYTES}'
`;

/**
 * The helpers a fast path (ScriptParts) uses: made before it, on every call.
 */
const CORE_HELPERS = `
-- Redis's clock (epoch ms), read at most once per command, when first asked: a batch's calls all
-- run in this one turn. A rotation without a grace window (a sliding session's touch, strict reuse
-- detection) never asks, nor does a write on Redis 7 or later (see extend).
local RAN_AT
local function ranAt()
  if not RAN_AT then
    local clock = redis.call('TIME')
    RAN_AT = clock[1] * 1000 + math.floor(clock[2] / 1000)
  end
  return RAN_AT
end
local function binary(v)
  return (string.byte(v, 1) or 32) < 32
end
-- Whether a binary record is in the current layout and long enough to hold its fixed parts:
-- one in the first, unreleased layout (0x10 to 0x17) is nobody's, and reads as expired.
local function current(v)
  return #v >= V2_HEAD and bit.band(string.byte(v, 1), V2_MASK) == V2
end
-- The expiry (epoch ms) of a core record of either version; 0 when unreadable.
local function expiryOf(v)
  if binary(v) then
    if not current(v) then return 0 end
    return struct.unpack(SECONDS, v, ${V2_LAYOUT.expiresAt + 1}) * 1000
  end
  return tonumber(string.match(v, EXPIRES_AT_PATTERN), 36) or 0
end
-- The key lives as long as its latest family: pushes its expiry out to exp when that is later.
-- Redis 7 and later do that in one call (PEXPIREAT … GT); a key without an expiry, which GT
-- leaves alone, gets one. Before 7, Redis keeps the absolute time PEXPIREAT was given; its clock
-- plus the PTTL gives it back. exp: epoch ms, a number or (as a fast path has it) its decimal
-- string, which spares a string.format.
local function extend(exp)
  local at = exp
  if type(exp) == 'number' then at = string.format('%.0f', exp) end
  if EXPIRE_GT then
    if redis.call('PEXPIREAT', h, at, 'GT') == 1 then return end
    if redis.call('PTTL', h) == -1 then redis.call('PEXPIREAT', h, at) end
    return
  end
  local ttl = redis.call('PTTL', h)
  if ttl < 0 or ranAt() + ttl < tonumber(exp) then
    redis.call('PEXPIREAT', h, at)
  end
end
`;

/**
 * The helpers only the other paths use: the scan, the cap, the revocations, text records. Lua
 * makes a script's every \`local function\` anew on each call, so a single script makes these
 * only once its fast path has not returned (a batched one once per batch).
 */
const HELPERS = `
-- A text record's fields, by position (f[F.<name>]).
local F = { ${CORE_FIELDS.map((field, i) => `${field} = ${i + 1}`).join(', ')} }
-- A whole number in base 36, lower case, as record-codec.ts base36 writes it (a rotation's time
-- by Redis's clock, which the app did not send).
local function base36(n)
  local digits = ''
  repeat
    local d = n % 36
    digits = string.sub('0123456789abcdefghijklmnopqrstuvwxyz', d + 1, d + 1) .. digits
    n = (n - d) / 36
  until n == 0
  return digits
end
local function createdOf(v)
  if binary(v) then
    if not current(v) then return 0 end
    return (struct.unpack(MS, v, ${V2_LAYOUT.createdAt + 1}))
  end
  return tonumber(string.match(v, CREATED_AT_PATTERN), 36) or 0
end
-- The fields of a core record, by position (F.<name>).
local function fields(v)
  local f = {}
  for part in string.gmatch(v .. SEP, ${luaString(`([^${luaPattern(SEP)}]*)${luaPattern(SEP)}`)}) do
    f[#f + 1] = part
  end
  return f
end
-- Deletes a family: its core record and its metadata chunks (fields <sid>:0 …).
local function drop(sid)
  local names = { sid }
  for i = 0, META_CHUNKS - 1 do names[#names + 1] = sid .. META_MARK .. i end
  return redis.call('HDEL', h, unpack(names))
end
-- Sorts the families of kv (fields and values, as HGETALL or HSCAN give them): the owner's live
-- ones into alive as {sid, expiresAt, core record}, every owner's expired ones into dead.
-- Returns the latest expiry of the other owners' live ones, or \`others\` when none is later.
local function sortFamilies(kv, now, owner, alive, dead, others)
  local n = #owner
  for i = 1, #kv, 2 do
    local f = kv[i]
    if f ~= PRUNE_AT and not string.find(f, META_MARK, 1, true) then
      local exp = expiryOf(kv[i + 1])
      if exp <= now then
        dead[#dead + 1] = f
      elseif n == 0 or string.sub(f, 1, n) == owner then
        alive[#alive + 1] = { f, exp, kv[i + 1] }
      elseif exp > others then
        others = exp
      end
    end
  end
  return others
end
-- Deletes the expired families of every owner in the hash; returns the owner's live ones as
-- {sid, expiresAt, core record}, and the latest expiry of the other owners' live ones (0: none).
local function live(now, owner)
  local alive, dead = {}, {}
  local others = sortFamilies(redis.call('HGETALL', h), now, owner, alive, dead, 0)
  for _, sid in ipairs(dead) do drop(sid) end
  return alive, others
end
-- Sets the key's expiry to its latest live family's: the owner's (alive) or another's (others).
local function rearm(alive, others)
  local last = others or 0
  for _, s in ipairs(alive) do
    if s[2] > last then last = s[2] end
  end
  if last == 0 then
    redis.call('DEL', h)
  else
    redis.call('PEXPIREAT', h, string.format('%.0f', last))
  end
end
-- The owner's live families in a shared hash, as live() gives them, found by Redis itself
-- (HSCAN … MATCH) without reading the other owners'; deletes the owner's expired ones.
local function ownFamilies(owner, now)
  local alive, dead, cursor = {}, {}, '0'
  repeat
    local page = redis.call('HSCAN', h, cursor, 'MATCH', owner .. '*', 'COUNT', 1000)
    cursor = page[1]
    sortFamilies(page[2], now, owner, alive, dead, 0)
  until cursor == '0'
  for _, sid in ipairs(dead) do drop(sid) end
  return alive
end
-- The earliest expiry of the families in alive ({sid, expiresAt, …}), or \`first\` when none is
-- earlier (0: none yet).
local function earliestOf(alive, first)
  local earliest = first
  for _, s in ipairs(alive) do
    if earliest == 0 or s[2] < earliest then earliest = s[2] end
  end
  return earliest
end
-- After a user's own hash has lost fields: one still large keeps its earliest live expiry in
-- PRUNE_AT, so its next writes skip the scan until then; a small one is never scanned and has
-- none, so its logins need not read one. alive: its live families after a scan ({sid,
-- expiresAt, …}); nil when there was none (a still large hash keeps the mark it has then).
local function markPrune(alive)
  if redis.call('HLEN', h) < ${SCAN_FIELDS} then
    redis.call('HDEL', h, PRUNE_AT)
    return
  end
  local earliest = alive and earliestOf(alive, 0) or 0
  if earliest > 0 then redis.call('HSET', h, PRUNE_AT, string.format('%.0f', earliest)) end
end
-- After a family was dropped (a revoke, a reused token): prunes the hash's expired families,
-- re-arms its expiry to the latest live one, and (a user's own hash) its mark.
local function settle(now, owner)
  local alive, others = live(now, owner)
  rearm(alive, others)
  if owner == '' then markPrune(alive) end
end
local function without(alive, sid)
  local kept = {}
  for _, s in ipairs(alive) do
    if s[1] ~= sid then kept[#kept + 1] = s end
  end
  return kept
end
`;

/**
 * A write script: its ARGV is the named list `args` (then any extra values), read as locals of
 * those names; extra ones are ARGV[BASE + NARGS + i], of COUNT in all. `fast`, when there is one,
 * runs first and may answer alone, using only CONSTANTS and CORE_HELPERS; `body` follows it with
 * HELPERS too. The fast paths are the common writes (a login to a small hash, a rotation that
 * neither scans nor shortens), which so skip making the helpers they do not need.
 */
interface ScriptParts {
  args: readonly string[];
  /** The fields packed in the one argument `args` names (packArgs), when it takes them so. */
  packed?: PackedFields | undefined;
  fast?: string | undefined;
  body: string;
}

/** A write script over KEYS[1]. */
function script({ args, packed, fast = '', body }: ScriptParts): string {
  return `${CONSTANTS}${CORE_HELPERS}local BASE, COUNT = 0, #ARGV
${readArgs(args, packed)}
${fast}${HELPERS}${body}`;
}

/**
 * The same script run for several keys in one call (on one Redis node): KEYS[i] is the i-th
 * call's key, and ARGV holds, for each call in turn, its argument count then its arguments.
 * Answers one result per call; a call that fails answers its error and the others go on, as
 * they would have as separate commands.
 */
export function batchedScript({ args, packed, fast = '', body }: ScriptParts): string {
  // Each call reads its arguments where they lie in ARGV (no copy per call). The helpers are made
  // once, for the whole batch.
  return `${CONSTANTS}${CORE_HELPERS}${HELPERS}
local function call(BASE, COUNT)
${readArgs(args, packed)}
${fast}${body}
end
local out = {}
local at = 1
for i = 1, #KEYS do
  h = KEYS[i]
  local n = ARGV[at] + 0
  local ok, result = pcall(call, at, n)
  at = at + n + 1
  -- A failed redis.call raises its error reply ({ err = … }); any other Lua error is a string.
  if ok or (type(result) == 'table' and result.err) then
    out[i] = result
  else
    out[i] = { err = tostring(result) }
  end
end
return out
`;
}

/**
 * maxSessions 0 means no cap. Returns 1. Metadata chunks are at most META_CHUNK characters each.
 * The fast path: a login to a user's own hash that is new, or small and below the cap.
 */
const CREATE_SESSION_FAST = `
-- Metadata chunks of at most ${META_CHUNK} characters follow the packed argument.
local set = { sessionId, core }
for i = 1, math.min(COUNT - NARGS, META_CHUNKS) do
  set[#set + 1] = sessionId .. META_MARK .. (i - 1)
  set[#set + 1] = ARGV[BASE + NARGS + i]
end
-- A user's own hash with no field is a new key (the user's first session, or every earlier one
-- gone with the key): nothing in it can be over the cap or due for a scan (a login adds at most
-- ${1 + META_CHUNKS} fields, fewer than ${SCAN_FIELDS}), and the key needs its expiry (expiresAt is a whole number
-- of ms). A small one takes the login without a scan too: its fields cannot hold more families
-- than the cap, and its expired families wait. Only a large hash has PRUNE_AT (see markPrune),
-- so a small one's login does not read it; the login that makes the hash large marks it due (0:
-- no family's expiry is earlier), so the hash's next write scans it and sets the mark.
local fieldCount
if owner == '' then
  fieldCount = redis.call('HLEN', h)
  if fieldCount == 0 then
    redis.call('HSET', h, unpack(set))
    redis.call('PEXPIREAT', h, expiresAtText)
    return 1
  end
end
local max = maxSessions
if owner == '' and fieldCount < ${SCAN_FIELDS} and (max <= 0 or fieldCount < max) then
  if fieldCount + #set / 2 >= ${SCAN_FIELDS} then
    set[#set + 1] = PRUNE_AT
    set[#set + 1] = '0'
  end
  redis.call('HSET', h, unpack(set))
  extend(expiresAtText)
  return 1
end
`;

/** The other logins: to a shared hash, or to a large one or one at its cap. */
const CREATE_SESSION_BODY = `
local expiry = expiresAt
-- The cap: ends the families of alive ({sid, expiresAt, core record}) that expire first, past max;
-- never the one this login creates, even when it expires before the others (it sorts last).
local function cap(alive)
  if max == 0 or #alive <= max then return alive end
  -- Expiries are whole seconds (a token's exp): logins of one second tie, and the older goes.
  table.sort(alive, function(a, b)
    if a[1] == sessionId or b[1] == sessionId then return b[1] == sessionId and a[1] ~= sessionId end
    if a[2] ~= b[2] then return a[2] < b[2] end
    return createdOf(a[3]) < createdOf(b[3])
  end)
  local kept = {}
  for i, s in ipairs(alive) do
    if i <= #alive - max then drop(s[1]) else kept[#kept + 1] = s end
  end
  return kept
end
if owner ~= '' then
  -- A shared hash. Every owner's expired families go once one may have expired (PRUNE_AT);
  -- the cap reads only this owner's, and only in a hash of as many fields as the cap. Neither
  -- reads the whole hash on every login.
  local earliest = expiry
  local pruneAt = tonumber(redis.call('HGET', h, PRUNE_AT) or '')
  if pruneAt and pruneAt <= now then
    earliest = earliestOf(live(now, ''), earliest)
  elseif pruneAt and pruneAt < earliest then
    earliest = pruneAt
  end
  -- The cap reads the owner's families only when the hash holds as many fields as the cap: every
  -- owner's fields together bound this owner's families, so below it none can be over.
  local alive = {}
  if max > 0 and redis.call('HLEN', h) >= max then alive = ownFamilies(owner, now) end
  set[#set + 1] = PRUNE_AT
  set[#set + 1] = string.format('%.0f', earliest)
  redis.call('HSET', h, unpack(set))
  alive[#alive + 1] = { sessionId, expiry, core }
  cap(alive)
  extend(expiry)
  return 1
end
-- The user's own hash, at its cap or large (fieldCount, read by the fast path, is at least
-- ${SCAN_FIELDS} or at least max). A large one keeps PRUNE_AT as a shared hash does, and is scanned
-- only once that time has passed, or when its fields could hold more families than the cap.
local scan = max > 0 and fieldCount >= max
if not scan then
  local pruneAt = tonumber(redis.call('HGET', h, PRUNE_AT) or '')
  scan = not (pruneAt and pruneAt > now)
  if not scan and expiry < pruneAt then
    set[#set + 1] = PRUNE_AT
    set[#set + 1] = expiresAtText
  end
end
if not scan then
  redis.call('HSET', h, unpack(set))
  extend(expiry)
  return 1
end
local alive = live(now, owner)
redis.call('HSET', h, unpack(set))
alive[#alive + 1] = { sessionId, expiry, core }
alive = cap(alive)
rearm(alive)
markPrune(alive)
return 1
`;
const CREATE_PARTS: ScriptParts = {
  args: CREATE_ARGS,
  packed: CREATE_FIELDS,
  fast: CREATE_SESSION_FAST,
  body: CREATE_SESSION_BODY,
};
export const CREATE_SESSION = script(CREATE_PARTS);

/**
 * Returns one of ROTATE_RESULTS; `reused` has revoked the family. The fast path: a rotation of a
 * live binary record by its live jti, in a user's own hash without PRUNE_AT, that does not end
 * the family sooner than before.
 */
const ROTATE_SESSION_FAST = `
local grace = graceMs
-- With a grace window, the rotation's time: when it ran, by Redis's clock, or its now when the
-- app's clock is ahead. It stamps the rotation and judges a replaced jti against the window;
-- expiries are still judged at now. A rotation queued in a frozen Redis, after the app had given
-- up on it and answered 503, runs when Redis resumes, with the client's retries of the same
-- token behind it: stamped at the first attempt, the retries (and the next one, sent after the
-- resume) fell outside the window of a freeze longer than it and ended the session as a theft.
-- Without a window (strict reuse detection, a sliding session's touch) nothing judges the stamp:
-- it is now, so the app's own throttle of touches reads a time of its clock.
local stamp = now
if grace > 0 then
  local ran = ranAt()
  if ran > now then stamp = ran end
end
-- A successor jti (derived from the old one) names every concurrent rotation's new jti, so the
-- live one being it says that rotation happened: a binary record keeps no previous jti then.
successor = successor == 1
-- The family's core record, and the hash's prune time (PRUNE_AT) if it keeps one, in one call.
local read = redis.call('HMGET', h, sessionId, PRUNE_AT)
local v = read[1]
local pruneAt = read[2] and tonumber(read[2]) or nil
-- A binary record in the current layout: its layout byte, live jti, creation time (epoch ms) and
-- expiry (epoch seconds), in one read. Any other record's expiry as expiryOf reads it. (Not
-- named live: that is a helper the body calls.)
local layout, liveJti, createdAt, previousExpiry
if v and current(v) then
  layout, liveJti, createdAt, previousExpiry = struct.unpack(V2_READ, v)
  previousExpiry = previousExpiry * 1000
else
  previousExpiry = v and expiryOf(v) or 0
end
-- The family's next record when oldJti is its live jti (nil otherwise); else, in the record's
-- own form, whether oldJti is the one its last rotation (at rotatedAt, epoch ms) replaced: its
-- successor is live, or it is the previous jti the record keeps. The previous jti only matters
-- within a grace window: without one it is not kept, and with one only a part of it is. A live
-- binary record is read here; a text one in the body.
local record, rotatedAt, replaced = nil, 0, false
if layout and previousExpiry > now then
  local at = V2_HEAD + 1
  local prev = ''
  if bit.band(layout, ${V2_ROTATED}) ~= 0 then
    rotatedAt = struct.unpack(SECONDS, v, at) * 1000
    at = at + ${SECONDS_BYTES}
  end
  if bit.band(layout, ${V2_PREVIOUS}) ~= 0 then
    prev = string.sub(v, at, at + ${PREVIOUS_BYTES - 1})
    at = at + ${PREVIOUS_BYTES}
  end
  local old = oldBytes
  if old ~= '' and liveJti == old then
    -- A family keeps the form of jti it started with: version 2 holds 16 bytes.
    local new = newBytes
    if new == '' then error('a family recorded with a UUID jti takes only a UUID jti') end
    local keep = grace > 0 and not successor
    -- From here on the expiry is the one the record keeps (the key's, PRUNE_AT): whole seconds,
    -- rounded down (never a longer session); the rotation time rounded up (never a shorter
    -- grace window).
    local kept = math.floor(expiresAt / 1000)
    if kept * 1000 ~= expiresAt then
      expiresAt = kept * 1000
      expiresAtText = nil
    end
    -- The same creation time and device; the new jti, expiry and rotation time; the old jti's
    -- first bytes when a grace window needs them.
    record = struct.pack(V2_ROTATED_HEAD,
        bit.bor(V2, ${V2_ROTATED}, keep and ${V2_PREVIOUS} or 0, bit.band(layout, ${V2_DEVICE})),
        new, createdAt, kept, math.ceil(stamp / 1000))
      .. (keep and string.sub(old, 1, ${PREVIOUS_BYTES}) or '') .. string.sub(v, at)
  else
    replaced = (successor and liveJti == newBytes)
      or (prev ~= '' and prev == string.sub(old, 1, ${PREVIOUS_BYTES}))
  end
  -- Nothing to scan, mark or shorten: the record and the key's expiry are all there is to write.
  if record and owner == '' and not pruneAt and expiresAt >= previousExpiry then
    redis.call('HSET', h, sessionId, record)
    extend(expiresAtText or expiresAt)
    return ${ROTATE_RESULTS.rotated}
  end
end
`;

const ROTATE_SESSION_BODY = `
-- A family past its expiry may still be in the hash (see SCAN_FIELDS): it is gone. A user's
-- hash it leaves small loses its mark (only a large one has one).
if v and previousExpiry <= now then
  drop(sessionId)
  if pruneAt and owner == '' then markPrune(nil) end
  v = nil
end
if not v then return ${ROTATE_RESULTS.missing} end
if not binary(v) then
  local f = fields(v)
  if f[F.jti] == oldJti then
    -- A text record keeps it whatever the ids: versions before 0.2, which may run beside this
    -- one (recordFormat 'text' is for that), recognise a concurrent rotation by it alone.
    f[F.previousJti] = grace > 0 and string.sub(oldJti, 1, PREVIOUS_UUID_CHARS) or ''
    f[F.jti] = newJti
    f[F.rotatedAt] = stamp == now and now36 or base36(stamp)
    f[F.expiresAt] = expiresAt36
    record = table.concat(f, SEP)
  else
    local prev = f[F.previousJti] or ''
    rotatedAt = tonumber(f[F.rotatedAt], 36) or 0
    replaced = (successor and f[F.jti] == newJti)
      or (prev ~= '' and prev == string.sub(oldJti, 1, PREVIOUS_UUID_CHARS))
  end
end
if record then
  redis.call('HSET', h, sessionId, record)
  if owner == '' and ((pruneAt and pruneAt <= now)
    or (expiresAt < previousExpiry and (pruneAt or redis.call('HLEN', h) >= ${SCAN_FIELDS}))) then
    -- A large user's hash (only those have PRUNE_AT) that is due: the scan that prunes it. Also
    -- when the rotation ends its family sooner than before (a long first lifetime, then
    -- refreshTokenTtl), as that family may have held the key's expiry: the scan re-arms it.
    -- Only then is a hash without the mark counted: one an older version made large has none.
    -- A small hash is never scanned here: its expired families wait for a large one's scan or
    -- for the key's own expiry.
    local alive, others = live(now, owner)
    alive = without(alive, sessionId)
    alive[#alive + 1] = { sessionId, expiresAt }
    rearm(alive, others)
    markPrune(alive)
  else
    -- Only extend: a shared hash's logins prune it, as a user's large hash's next due write does.
    -- A rotation can end a session sooner than its login did (a long first lifetime, then
    -- refreshTokenTtl): PRUNE_AT must stay at or before every family's expiry. A shared hash
    -- always has one; a small user's hash has none.
    if (pruneAt and expiresAt < pruneAt) or (not pruneAt and owner ~= '') then
      redis.call('HSET', h, PRUNE_AT, string.format('%.0f', math.floor(expiresAt)))
    end
    extend(expiresAt)
  end
  return ${ROTATE_RESULTS.rotated}
end
-- The jti the last rotation replaced, within the grace window: a second tab, not a thief.
if replaced and grace > 0 and stamp - rotatedAt <= grace then return ${ROTATE_RESULTS.superseded} end
drop(sessionId)
settle(now, owner)
return ${ROTATE_RESULTS.reused}
`;
const ROTATE_PARTS: ScriptParts = {
  args: ROTATE_ARGS,
  packed: ROTATE_FIELDS,
  fast: ROTATE_SESSION_FAST,
  body: ROTATE_SESSION_BODY,
};
export const ROTATE_SESSION = script(ROTATE_PARTS);

/** Returns 1 when the family was live (an expired one is removed too, and answers 0). */
const REVOKE_SESSION_BODY = `
now = tonumber(now)
local v = redis.call('HGET', h, sessionId)
local n = 0
if v and expiryOf(v) > now then n = 1 end
drop(sessionId)
settle(now, owner)
return n
`;
export const REVOKE_SESSION = script({ args: REVOKE_SESSION_ARGS, body: REVOKE_SESSION_BODY });

/** Returns how many live families were removed. */
const REVOKE_ALL_BODY = `
local alive, others = live(tonumber(now), owner)
if owner == '' then
  redis.call('DEL', h)
else
  for _, s in ipairs(alive) do drop(s[1]) end
  rearm({}, others)
end
return #alive
`;
export const REVOKE_ALL = script({ args: REVOKE_ALL_ARGS, body: REVOKE_ALL_BODY });

/**
 * Session checks in one call: KEYS[i] is a user's hash, ARGV[i] the session id to read from it;
 * answers each core record, or nil (Lua false) where there is none, or the error of that read
 * alone (redis.pcall: a key that is not a hash fails the check that named it, not the batch).
 * Reads only. Single-node only: on a Cluster the keys of one batch may lie in different slots.
 */
export const READ_CORES = `
local out = {}
for i = 1, #KEYS do
  out[i] = redis.pcall('HGET', KEYS[i], ARGV[i])
end
return out
`;

/**
 * Whole records in one call: KEYS[i] is a user's hash, ARGV[i] a session id; answers, for each,
 * what `HMGET` of the core record and its metadata chunks answers (nil where a field is absent),
 * or that read's error alone. Reads only; single-node only, as READ_CORES.
 */
export const READ_RECORDS = `
local out = {}
for i = 1, #KEYS do
  local sid = ARGV[i]
  local names = { sid }
  for c = 0, ${META_CHUNKS - 1} do names[#names + 1] = sid .. ${luaString(META_MARK)} .. c end
  out[i] = redis.pcall('HMGET', KEYS[i], unpack(names))
end
return out
`;

/** CREATE_SESSION for several logins in one call (see batchedScript). */
export const CREATE_SESSIONS = batchedScript(CREATE_PARTS);
/** ROTATE_SESSION for several refreshes in one call (see batchedScript). */
export const ROTATE_SESSIONS = batchedScript(ROTATE_PARTS);
