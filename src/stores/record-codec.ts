import type { SessionRecord } from './session-store.js';

/*
 * The record codec: how the Redis store lays out one session family. Field names, order and
 * sizes are declared here once; the TypeScript side packs and unpacks with them, and the Lua
 * scripts (lua.ts) are built from the same constants.
 */

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
 * signed token of the same family and would only turn a reuse revocation into a grace answer.
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
