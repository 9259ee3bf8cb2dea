/** One login's session family as the store records it. Times are epoch milliseconds. */
export interface SessionRecord {
  sessionId: string;
  /** The one live refresh-token id (`jti`) of this family. */
  jti: string;
  /** The `jti` it replaced, kept only (and only with a grace period) to recognise a concurrent refresh within the grace window. */
  previousJti: string;
  rotatedAt: number;
  createdAt: number;
  lastUsedAt: number;
  expiresAt: number;
  ip: string;
  userAgent: string;
}

export interface NewSession {
  sessionId: string;
  jti: string;
  now: number;
  expiresAt: number;
  ip: string;
  userAgent: string;
}

export interface Rotation {
  sessionId: string;
  oldJti: string;
  newJti: string;
  now: number;
  expiresAt: number;
  /** How long after a rotation the previous `jti` is answered with `superseded`, not treated as theft. */
  graceMs: number;
}

/**
 * `rotated`: the `jti` was live and is replaced. `missing`: no such live family (logged out,
 * expired, flushed). `superseded`: the `jti` was rotated within the grace window. `reused`: an old
 * `jti` of a live family, so the family has been revoked.
 */
export type RotationResult = 'rotated' | 'missing' | 'superseded' | 'reused';

/**
 * Where sessions live: every session operation of the library goes through these methods, so any
 * backend that implements them (and passes the contract suite in test/contract/) can be plugged
 * in with `createAuth({ store })`. Built in: {@link memoryStore}, {@link redisStore} and
 * {@link postgresStore}.
 *
 * The contract:
 * - A session (one login, a "family") is keyed by `(userId, sessionId)` and holds one live
 *   `jti`: a refresh token's id, or for the opaque `session` strategy a hash of the token.
 * - `create` and `rotate` are atomic per user. `create` enforces `maxSessions` (0: no cap) by
 *   ending the sessions that expire first.
 * - `rotate` replaces the live `jti` only when `oldJti` is it (exactly one of any number of
 *   concurrent rotations of one `jti` wins). A stale `jti` within `graceMs` of its rotation is
 *   `superseded`; any other stale `jti` of a live session is `reused`, and the session is ended in
 *   the same atomic step. `rotate` with `newJti === oldJti` only moves `expiresAt` and `lastUsedAt`:
 *   that is how sliding sessions are extended.
 * - Nothing is answered for a session whose `expiresAt` has passed; expired sessions are removed
 *   by the store (on writes, by key expiry, or by `prune`), so storage stays bounded.
 * - When the backend cannot answer, a method rejects (with the backend's error) within the
 *   store's timeout; the library turns that into a 503 `store_unavailable`.
 */
export interface SessionStore {
  /** Records a new session; resolves only once it is stored. */
  create(userId: string, session: NewSession, maxSessions: number): Promise<void>;
  /** Replaces the session's live `jti`, atomically, with reuse detection (see above). */
  rotate(userId: string, rotation: Rotation): Promise<RotationResult>;
  /** The session's record when it is live, else undefined. */
  get(userId: string, sessionId: string, now: number): Promise<SessionRecord | undefined>;
  /** Whether the session is live: the cheap check run on every authenticated request. */
  isLive(userId: string, sessionId: string, now: number): Promise<boolean>;
  /** Ends one session; true when it existed. */
  revoke(userId: string, sessionId: string): Promise<boolean>;
  /** Ends every session of the user; returns how many were live. */
  revokeAll(userId: string, now: number): Promise<number>;
  /** The user's live sessions, oldest first. */
  list(userId: string, now: number): Promise<SessionRecord[]>;
  /**
   * Deletes sessions that expired before `now`; returns how many. Optional: stores whose data
   * expires by itself (Redis key TTLs) need none.
   */
  prune?(now: number): Promise<number>;
  /** Releases what the store opened (connections it created, timers). */
  close(): Promise<void>;
}

const SEP = '|';

/**
 * A family as the Redis store packs it: a core record of at most 64 bytes, so a user's hash
 * stays in Redis's compact listpack encoding (hash-max-listpack-value), and the metadata apart.
 * The jti is kept in its compact form (compactUuid) and unpacked back to the UUID; the previous
 * one is stored as given. Times are base-36 milliseconds (8 characters); lastUsedAt is the last
 * rotation, else creation.
 */
export function packCore(
  s: Pick<SessionRecord, 'jti' | 'previousJti' | 'rotatedAt' | 'createdAt' | 'expiresAt'>,
): string {
  const rotated = s.rotatedAt > 0 ? s.rotatedAt.toString(36) : '';
  return `${compactUuid(s.jti)}${SEP}${s.previousJti}${SEP}${rotated}${SEP}${s.createdAt.toString(36)}${SEP}${s.expiresAt.toString(36)}`;
}

const UUID = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i;
const COMPACT_UUID = /^[A-Za-z0-9_-]{22}$/;

/**
 * A refresh token's UUID as the Redis store keeps it: its 128 bits in 22 base64url characters
 * instead of 36, so that a core record with the previous UUID still fits in 64 bytes. Anything
 * that is not a UUID is left as it is (it can then never match a stored UUID).
 */
export function compactUuid(uuid: string): string {
  const parts = UUID.exec(uuid);
  return parts ? Buffer.from(parts.slice(1).join(''), 'hex').toString('base64url') : uuid;
}

/** The inverse of {@link compactUuid}. */
export function expandUuid(compact: string): string {
  if (!COMPACT_UUID.test(compact)) return compact;
  const hex = Buffer.from(compact, 'base64url').toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * How much of the previous UUID a record keeps (for `refreshGracePeriod` only): 14 characters,
 * 84 bits, so that the record stays within 64 bytes. A false match would need a genuinely
 * signed token of the same family and would only turn a reuse revocation into a 409.
 */
export const PREVIOUS_UUID_CHARS = 14;

/**
 * Metadata chunks stored per family: "ip|user agent" (at most 64 + 1 + 256 UTF-8 bytes, see
 * {@link cleanMeta}) in chunks of at most 64 bytes, each cut between characters.
 */
export const META_CHUNK = 64;
export const META_CHUNKS = 6;

/**
 * "ip|user agent" cut in chunks of at most 64 UTF-8 bytes (Redis counts listpack values in
 * bytes), never inside a character: a chunk ending in half a surrogate pair or half a UTF-8
 * sequence would come back from Redis as U+FFFD. None when neither is known.
 */
export function packMeta(s: Pick<SessionRecord, 'ip' | 'userAgent'>): string[] {
  if (s.ip === '' && s.userAgent === '') return [];
  const chunks: string[] = [];
  let chunk = '';
  let bytes = 0;
  for (const char of `${s.ip}${SEP}${s.userAgent}`) {
    const size = Buffer.byteLength(char);
    if (bytes + size > META_CHUNK) {
      chunks.push(chunk);
      if (chunks.length === META_CHUNKS) return chunks;
      chunk = '';
      bytes = 0;
    }
    chunk += char;
    bytes += size;
  }
  chunks.push(chunk);
  return chunks;
}

/** The expiry (epoch ms) of a packed core record: its last field. */
export function coreExpiresAt(core: string): number {
  return parseInt(core.slice(core.lastIndexOf(SEP) + 1), 36);
}

export function unpackSession(
  sessionId: string,
  core: string,
  meta: string,
): SessionRecord | undefined {
  const parts = core.split(SEP);
  if (parts.length !== 5) return undefined;
  const [jti, previousJti, rotated, created, expires] = parts as [
    string,
    string,
    string,
    string,
    string,
  ];
  const rotatedAt = rotated === '' ? 0 : parseInt(rotated, 36);
  const createdAt = parseInt(created, 36);
  // The ip has no separator in it; the user agent may.
  const cut = meta.indexOf(SEP);
  return {
    sessionId,
    jti: expandUuid(jti),
    previousJti,
    rotatedAt,
    createdAt,
    lastUsedAt: rotatedAt || createdAt,
    expiresAt: parseInt(expires, 36),
    ip: cut < 0 ? '' : meta.slice(0, cut),
    userAgent: cut < 0 ? '' : meta.slice(cut + 1),
  };
}

/**
 * Bounded, separator-free metadata: a hostile User-Agent cannot grow Redis or break the packing.
 * `maxBytes` counts UTF-8 bytes and the cut falls between characters; lone surrogates (no UTF-8
 * form) become U+FFFD, so what is stored is exactly what `listSessions` gives back.
 */
export function cleanMeta(value: unknown, maxBytes: number, allowSeparator: boolean): string {
  if (typeof value !== 'string') return '';
  // eslint-disable-next-line no-control-regex
  let cleaned = value.replace(/[\u0000-\u001f\u007f]/g, '');
  if (!allowSeparator) cleaned = cleaned.replaceAll(SEP, '');
  cleaned = cleaned.replace(
    /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g,
    '\uFFFD',
  );
  if (Buffer.byteLength(cleaned) <= maxBytes) return cleaned;
  let out = '';
  let bytes = 0;
  for (const char of cleaned) {
    bytes += Buffer.byteLength(char);
    if (bytes > maxBytes) break;
    out += char;
  }
  return out;
}
