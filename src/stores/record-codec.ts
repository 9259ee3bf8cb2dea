import type { SessionRecord } from './session-store.js';

/*
 * The record codec: how the Redis store lays out one session family in the user's hash. Field
 * names, order, separators and sizes are declared here once; the TypeScript side packs and
 * unpacks with them, and the Lua scripts (lua.ts) are generated from the same constants, so
 * neither side hard-codes a position.
 *
 * A family is field `<sid>`, its core record, in one of two versions:
 * - version 1 (text, `recordFormat: 'text'`, and every record before 0.2): CORE_FIELDS joined by
 *   SEP, at most 64 bytes; also what a family whose jti is no UUID always gets.
 * - version 2 (binary, see V2_LAYOUT), written by default (`recordFormat: 'binary'`) for a family whose
 *   jti is a UUID (both built-in strategies): the jti's 16 bytes, createdAt in ms, expiresAt and
 *   rotatedAt in whole seconds, and the ip and device label as 6 bytes of codes when it has them
 *   (IPv4 and a browser, OS and type this codec knows). A login's record is then 33 bytes, a
 *   rotated one's 37 (45 when it keeps part of the replaced jti: a grace period with a newJti
 *   that is no successor), in the same field as the rest: a one-session user's hash fits the
 *   64-byte allocation where version 1's took 128 (197 B against 261 per session, README), and
 *   still does once rotated by the built-in strategies.
 * Both are read, checked and rotated wherever they are found.
 * Metadata a version 2 record has no codes for, and every version 1 record's, is in fields
 * `<sid>:0` … `<sid>:<META_CHUNKS - 1>`: "ip|user agent" in META_CHUNK-byte chunks.
 */

/** Separates the fields of a core record, and ip from user agent in the metadata. */
export const SEP = '|';

/** Separates a session id from a metadata chunk number in a field name; never in a session id. */
export const META_MARK = ':';

/**
 * The fields of a core record, in their order. The jti is kept in its compact form (compactUuid);
 * the previous one cut to PREVIOUS_UUID_CHARS; times are base-36 epoch milliseconds, `rotatedAt`
 * empty until the first rotation.
 */
export const CORE_FIELDS = ['jti', 'previousJti', 'rotatedAt', 'createdAt', 'expiresAt'] as const;

export type CoreField = (typeof CORE_FIELDS)[number];

/** A field's position in the core record, from 0. */
export const corePosition = (field: CoreField): number => CORE_FIELDS.indexOf(field);

type Core = Pick<SessionRecord, CoreField>;

/**
 * A family as the Redis store packs it: a core record of at most 64 bytes, so a user's hash
 * stays in Redis's compact listpack encoding (hash-max-listpack-value), and the metadata apart.
 * The jti is unpacked back to the UUID; the previous one is stored as given. lastUsedAt is the
 * last rotation, else creation.
 */
export function packCore(s: Core): string {
  // Run on every login and refresh: the fields go straight into one string, in CORE_FIELDS
  // order, with no object, array or join on the way (0.9 µs here, against 1.3).
  let out = CORE_ENCODERS[0]!(s);
  for (let i = 1; i < CORE_ENCODERS.length; i++) out += SEP + CORE_ENCODERS[i]!(s);
  return out;
}

const ENCODE_CORE: Record<CoreField, (s: Core) => string> = {
  jti: (s) => compactUuid(s.jti),
  previousJti: (s) => s.previousJti,
  rotatedAt: (s) => (s.rotatedAt > 0 ? base36(s.rotatedAt) : ''),
  createdAt: (s) => base36(s.createdAt),
  expiresAt: (s) => base36(s.expiresAt),
};
const CORE_ENCODERS = CORE_FIELDS.map((field) => ENCODE_CORE[field]);

/** 36 ** 5: the low five base-36 digits of a time, a small integer. */
const FIVE_DIGITS = 60_466_176;

/**
 * `n.toString(36)`, for a whole number from 0 to 2 ** 53 (epoch milliseconds) the same digits
 * in two halves that each fit a small integer. V8 writes a number too large for a small integer
 * in another base one digit at a time with a floating-point remainder: 190 ns for an epoch
 * millisecond here, against 50 in halves; a login and a rotation write two each.
 */
export function base36(n: number): string {
  // Anything else (a fraction, beyond 2 ** 53, not finite) as V8 writes it: no halves then.
  if (!(n > 0x3fffffff && n <= 2 ** 53 && Number.isInteger(n))) return n.toString(36);
  const high = Math.floor(n / FIVE_DIGITS);
  return high.toString(36) + (n - high * FIVE_DIGITS).toString(36).padStart(5, '0');
}

const COMPACT_UUID = /^[A-Za-z0-9_-]{22}$/;

/**
 * A refresh token's UUID as the Redis store keeps it: its 128 bits in 22 base64url characters
 * instead of 36, so that a core record with the previous UUID still fits in 64 bytes. Anything
 * that is not a UUID is left as it is (it can then never match a stored UUID).
 */
export function compactUuid(uuid: string): string {
  // Run on every login and refresh: one pass over the characters, each hex digit checked by
  // its code (so "š", U+0161, is no "a"), four digits of base64url out of every six hex digits
  // (240 ns here, against 500 for a regular expression test and a hex Buffer).
  if (uuid.length !== 36) return uuid;
  let out = '';
  let bits = 0;
  let digits = 0;
  for (let i = 0; i < 36; i++) {
    const code = uuid.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (code !== 45) return uuid;
      continue;
    }
    const value = code < 128 ? HEX_VALUE[code]! : -1;
    if (value < 0) return uuid;
    bits = (bits << 4) | value;
    if (++digits === 6) {
      out +=
        BASE64URL[bits >> 18]! +
        BASE64URL[(bits >> 12) & 63]! +
        BASE64URL[(bits >> 6) & 63]! +
        BASE64URL[bits & 63]!;
      bits = 0;
      digits = 0;
    }
  }
  // The last byte (its two hex digits): six bits, then two and four zeros, as base64url ends.
  return out + BASE64URL[bits >> 2]! + BASE64URL[(bits & 3) << 4]!;
}

/** The base64url alphabet, by digit value. */
export const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** A hex digit's value by its character code (either case); -1 for any other ASCII character. */
const HEX_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX_VALUE['0123456789abcdef'.charCodeAt(i)] = i;
  HEX_VALUE['0123456789ABCDEF'.charCodeAt(i)] = i;
}

/** The inverse of {@link compactUuid}. */
export function expandUuid(compact: string): string {
  if (!COMPACT_UUID.test(compact)) return compact;
  return uuidFromHex(Buffer.from(compact, 'base64url').toString('hex'));
}

/** A UUID's 32 hex digits with its dashes. */
const uuidFromHex = (hex: string): string =>
  `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;

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
 * In a shared hash (`keyBuckets`), and in a user's own hash once it is large (lua.ts,
 * SCAN_FIELDS), the field holding the earliest expiry (epoch ms, in decimal) any family in it may
 * have: logins and rotations lower it to their family's expiry, so no family can be expired before
 * then, and a write prunes the hash only once that time has passed. Never a family's name: those
 * are base64url.
 */
export const PRUNE_AT = '~';

/** The field name of a family's metadata chunk `index`. */
export const metaField = (sessionId: string, index: number): string =>
  `${sessionId}${META_MARK}${index}`;

/** Whether a field of the user's hash holds metadata (else it is a family's core record). */
export const isMetaField = (field: string): boolean => field.includes(META_MARK);

/** The field names of every metadata chunk of a family, in order. */
export const metaFields = (sessionId: string): string[] =>
  Array.from({ length: META_CHUNKS }, (_, i) => metaField(sessionId, i));

/**
 * "ip|user agent" cut in chunks of at most 64 UTF-8 bytes (Redis counts listpack values in
 * bytes), never inside a character: a chunk ending in half a surrogate pair or half a UTF-8
 * sequence would come back from Redis as U+FFFD. None when neither is known.
 */
export function packMeta(s: Pick<SessionRecord, 'ip' | 'userAgent'>): string[] {
  if (s.ip === '' && s.userAgent === '') return [];
  const joined = `${s.ip}${SEP}${s.userAgent}`;
  // ASCII (every login with a parsed device label): a character is a byte, so plain slices.
  if (ASCII.test(joined)) {
    const chunks: string[] = [];
    for (let at = 0; at < joined.length && chunks.length < META_CHUNKS; at += META_CHUNK)
      chunks.push(joined.slice(at, at + META_CHUNK));
    return chunks;
  }
  return packMetaByCharacter(joined);
}

// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7f]*$/;

/** The packing rule itself, one character at a time: what the ASCII path must answer. */
export function packMetaByCharacter(joined: string): string[] {
  const chunks: string[] = [];
  let chunk = '';
  let bytes = 0;
  for (const char of joined) {
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

const EXPIRES_AT = corePosition('expiresAt');
const EXPIRES_AT_IS_LAST = EXPIRES_AT === CORE_FIELDS.length - 1;

/** The expiry (epoch ms) of a stored core record, of either version; 0 when unreadable. */
export function coreExpiresAt(core: Buffer): number {
  // Read on every authenticated request (isLive): version 2 at a fixed offset.
  if (isBinary(core)) return isCurrentLayout(core) ? binaryExpiresAt(core) : 0;
  const text = core.toString('latin1');
  // Version 1's expiry is its last field: one scan from the end, no array.
  if (EXPIRES_AT_IS_LAST) return parseInt(text.slice(text.lastIndexOf(SEP) + 1), 36) || 0;
  return parseInt(text.split(SEP)[EXPIRES_AT] ?? '', 36) || 0;
}

/**
 * A stored family, of either version; `meta` is its metadata chunks joined (used when the
 * record itself has no device codes). Undefined when the record is not one this codec wrote.
 */
export function unpackSession(
  sessionId: string,
  core: Buffer,
  meta: string,
): SessionRecord | undefined {
  if (isBinary(core)) return unpackBinary(sessionId, core, meta);
  const parts = core.toString().split(SEP);
  if (parts.length !== CORE_FIELDS.length) return undefined;
  const field = (name: CoreField) => parts[corePosition(name)]!;
  const rotated = field('rotatedAt');
  const rotatedAt = rotated === '' ? 0 : parseInt(rotated, 36);
  const createdAt = parseInt(field('createdAt'), 36);
  return {
    sessionId,
    jti: expandUuid(field('jti')),
    previousJti: field('previousJti'),
    rotatedAt,
    createdAt,
    lastUsedAt: rotatedAt || createdAt,
    expiresAt: parseInt(field('expiresAt'), 36),
    ...splitMeta(meta),
  };
}

/** "ip|user agent" as the metadata chunks hold it: the ip has no separator in it; the user agent may. */
function splitMeta(meta: string): { ip: string; userAgent: string } {
  const cut = meta.indexOf(SEP);
  return cut < 0
    ? { ip: '', userAgent: '' }
    : { ip: meta.slice(0, cut), userAgent: meta.slice(cut + 1) };
}

/*
 * Version 2: binary. Its first byte, the layout, is V2 with the flags of the optional parts, so
 * it is below 0x20, never the first character of a version 1 record (base64url). Then, in order:
 * the jti's 16 bytes, createdAt (epoch ms, 48-bit big-endian, good until the year 10889) and
 * expiresAt (epoch seconds, 32-bit, good until 2106, rounded down: a refresh token's `exp`
 * exactly, and never a session longer than it was given), and only when flagged: rotatedAt
 * (V2_ROTATED; epoch seconds, rounded up, so a grace window runs its full length and at most
 * 1 s more), the first PREVIOUS_BYTES of the replaced jti (V2_PREVIOUS, kept only with a grace
 * period and a newJti that is no successor: Rotation.successor), and the device (V2_DEVICE): the ip's 4 bytes, the browser's code (with MAPPED_IPV4
 * set for an ip written "::ffff:a.b.c.d", a dual-stack socket's IPv4 client), then the OS's code
 * times 8 plus the type's. createdAt keeps its milliseconds: it orders the logins of one second
 * for the cap. A rotated browser session without the replaced jti is 37 bytes: with its
 * 16-character field name, the most a one-field hash holds in Redis's 64-byte allocation.
 *
 * The first layout of version 2 (first byte 0x10 to 0x17: every time 48-bit ms, 7 device bytes)
 * was in no release; a record in it is nobody's (undefined here, expired to the scripts).
 */
export const V2 = 0x08;
/** The bits of the layout byte that say it is version 2 in this layout. */
export const V2_MASK = 0xf8;
export const V2_ROTATED = 0x01;
export const V2_PREVIOUS = 0x02;
export const V2_DEVICE = 0x04;
/** Byte offsets of a version 2 record's fixed parts. */
export const V2_LAYOUT = { jti: 1, createdAt: 17, expiresAt: 23 } as const;
/** Length of the fixed parts; the optional ones follow. */
export const V2_HEAD = 27;
/** createdAt: epoch ms. */
export const MS_BYTES = 6;
/** expiresAt and rotatedAt: epoch seconds. */
export const SECONDS_BYTES = 4;
/** How much of the replaced jti a record keeps for the grace window: 64 bits. */
export const PREVIOUS_BYTES = 8;
const DEVICE_BYTES = 6;
const MAPPED_IPV4 = 0x80;
/** The type's bits in the device's second code byte; the OS's code takes the other five. */
const TYPE_BITS = 3;
/** What the device's codes fit in: the browser's 7 bits, the OS's 5 and the type's 3. */
export const DEVICE_CODES = {
  browsers: 128,
  systems: 1 << (8 - TYPE_BITS),
  types: 1 << TYPE_BITS,
} as const;
const MAPPED_PREFIX = '::ffff:';

/** Epoch ms as version 2 keeps expiresAt: whole seconds, rounded down. */
const expirySeconds = (ms: number): number => Math.floor(ms / 1000);
/** The expiry (epoch ms) a version 2 record keeps for `ms`: a whole second, rounded down. */
export const keptExpiresAt = (ms: number): number => expirySeconds(ms) * 1000;
/** A version 2 record's expiresAt, back in epoch ms. */
const binaryExpiresAt = (core: Buffer): number => core.readUInt32BE(V2_LAYOUT.expiresAt) * 1000;

/** Whether a stored core record is version 2. */
export const isBinary = (core: Buffer): boolean => core.length > 0 && core[0]! < 0x20;

/**
 * Whether a version 2 record is in this layout (the first one was in no release) and holds its
 * fixed parts; the scripts' `current` says the same.
 */
const isCurrentLayout = (core: Buffer): boolean =>
  core.length >= V2_HEAD && (core[0]! & V2_MASK) === V2;

/*
 * The names the device codes stand for, by code (0: none). Stored records hold these numbers:
 * the lists only ever grow at their ends, within DEVICE_CODES. Names are bowser's (2.x) as
 * `deviceCode` keeps them; a name not listed keeps the whole label in the metadata fields instead.
 */
const BROWSERS = [
  '',
  'Chrome',
  'Safari',
  'Firefox',
  'Microsoft Edge',
  'Opera',
  'Samsung Internet for Android',
  'Chromium',
  'Brave',
  'Vivaldi',
  'Yandex Browser',
  'UC Browser',
  'Android Browser',
  'Internet Explorer',
  'Electron',
  'DuckDuckGo',
  'Focus',
  'LibreWolf',
  'Pale Moon',
  'SeaMonkey',
  'QQ Browser',
  'QQ Browser Lite',
  'WeChat',
  'Sogou Browser',
  'NAVER Whale Browser',
  'Vivo Browser',
  'HeyTap Browser',
  'MZ Browser',
  'Amazon Silk',
  'Opera Coast',
  'Puffin',
  'Maxthon',
  'Epiphany',
  'Sailfish',
  'Tizen',
  'WebOS Browser',
  'Roku',
  'PhantomJS',
  'Ladybird',
  'K-Meleon',
  'QupZilla',
  'Sleipnir',
  'Swing',
  'Bada',
  'BlackBerry',
  'Bertina Browser',
  'Freebox',
  'Generic',
  'Googlebot',
  'BingCrawler',
  'YandexBot',
  'BaiduSpider',
  'DuckDuckBot',
  'YahooSlurp',
  'AmazonBot',
  'SlackBot',
  'FacebookExternalHit',
  'Google Search',
  'GPTBot',
  'ChatGPT-User',
  'OAI-SearchBot',
  'ClaudeBot',
  'PerplexityBot',
  'Perplexity-User',
  'Diffbot',
  'PingdomBot',
  'Omgilibot',
  'Linespider',
  'InternetArchiveCrawler',
  'Meta-ExternalAds',
  'Meta-ExternalAgent',
  'Meta-ExternalFetcher',
  'Meta-WebIndexer',
  'YouBot',
  'curl',
  'Wget',
  'PostmanRuntime',
  'okhttp',
  'python-requests',
  'axios',
  'node',
  'node-fetch',
  'undici',
  'Go-http-client',
  'Java',
  'Dart',
  'Opera Touch',
  'SlimerJS',
  'Miui',
  'PlayStation 4',
];
const SYSTEMS = [
  '',
  'Windows',
  'macOS',
  'iOS',
  'Android',
  'Linux',
  'Chrome OS',
  'HarmonyOS',
  'Windows Phone',
  'Tizen',
  'WebOS',
  'Roku',
  'PlayStation 4',
  'BlackBerry',
  'Bada',
];
const TYPES = ['', 'desktop', 'mobile', 'tablet', 'tv', 'bot'];
/** How many names each table has: each must stay within DEVICE_CODES (a test holds them there). */
export const DEVICE_TABLES = {
  browsers: BROWSERS.length,
  systems: SYSTEMS.length,
  types: TYPES.length,
} as const;
const codes = (names: string[]) => new Map(names.map((name, code) => [name, code]));
const BROWSER_CODES = codes(BROWSERS);
const SYSTEM_CODES = codes(SYSTEMS);
const TYPE_CODES = codes(TYPES);

/** The IPv4 address of a canonical dotted quad (no leading zeros), as a number; -1 otherwise. */
function ipv4(text: string, from: number): number {
  let value = 0;
  let parts = 0;
  let at = from;
  while (parts < 4) {
    let octet = 0;
    const start = at;
    while (at < text.length && at - start < 3) {
      const digit = text.charCodeAt(at) - 48;
      if (digit < 0 || digit > 9) break;
      octet = octet * 10 + digit;
      at++;
    }
    const digits = at - start;
    if (digits === 0 || octet > 255 || (digits > 1 && text.charCodeAt(start) === 48)) return -1;
    value = value * 256 + octet;
    parts++;
    if (parts < 4) {
      if (text.charCodeAt(at) !== 46) return -1;
      at++;
    }
  }
  return at === text.length ? value : -1;
}

/**
 * A login's binary (version 2) record, as Redis keeps it and the create script stores it (lua.ts,
 * CREATE_FIELDS), and the metadata chunks that go in fields of their own (none when the record
 * carries the device's codes); undefined when the jti is no UUID: that family gets a text record.
 */
export function binaryRecord(s: {
  jti: string;
  createdAt: number;
  expiresAt: number;
  ip: string;
  userAgent: string;
}): { core: Buffer; meta: string[] } | undefined {
  if (!isUuid(s.jti)) return undefined;
  const device = deviceParts(s.ip, s.userAgent);
  const out = Buffer.allocUnsafe(V2_HEAD + (device ? DEVICE_BYTES : 0));
  out[0] = device ? V2 | V2_DEVICE : V2;
  putUuid(out, V2_LAYOUT.jti, s.jti);
  out.writeUIntBE(Math.floor(s.createdAt), V2_LAYOUT.createdAt, MS_BYTES);
  out.writeUInt32BE(expirySeconds(s.expiresAt), V2_LAYOUT.expiresAt);
  if (device === undefined) return { core: out, meta: packMeta(s) };
  out.writeUInt32BE(device[0], V2_HEAD);
  out.writeUInt16BE(device[1], V2_HEAD + 4);
  return { core: out, meta: [] };
}

/**
 * The device as the binary record keeps it: the IPv4 address, and its codes as one 16-bit number
 * (the browser's, with MAPPED_IPV4, then the OS's times 8 plus the type's); undefined when it
 * has no codes.
 */
function deviceParts(ip: string, label: string): [number, number] | undefined {
  const mapped = ip.startsWith(MAPPED_PREFIX);
  const address = ipv4(ip, mapped ? MAPPED_PREFIX.length : 0);
  if (address < 0) return undefined;
  const first = label.indexOf(SEP);
  const second = label.indexOf(SEP, first + 1);
  if (first < 0 || second < 0) return undefined;
  const browser = BROWSER_CODES.get(label.slice(0, first));
  const system = SYSTEM_CODES.get(label.slice(first + 1, second));
  const type = TYPE_CODES.get(label.slice(second + 1));
  if (browser === undefined || system === undefined || type === undefined) return undefined;
  // Codes past DEVICE_CODES (tables grown beyond them) keep the label in metadata fields.
  if (
    browser >= DEVICE_CODES.browsers ||
    system >= DEVICE_CODES.systems ||
    type >= DEVICE_CODES.types
  )
    return undefined;
  return [address, (browser | (mapped ? MAPPED_IPV4 : 0)) * 256 + ((system << TYPE_BITS) | type)];
}

/** A UUID: hex digits of either case (ASCII only), dashes where a UUID has them. */
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const isUuid = (uuid: string): boolean => UUID.test(uuid);

/** A zero-length Buffer: a jti that is no UUID has no bytes. */
const NO_BYTES = Buffer.alloc(0);

/**
 * A UUID jti's 16 bytes, as a binary record keeps them (the rotation script takes them so:
 * lua.ts, ROTATE_FIELDS); empty for a jti that is no UUID. `compact`, when given, is
 * compactUuid(jti), which has checked the digits already: it equals `jti` exactly when the jti is
 * no UUID, so they are not checked twice.
 */
export function uuidBytes(jti: string, compact?: string): Buffer {
  if (compact === undefined ? !isUuid(jti) : compact === jti) return NO_BYTES;
  const out = Buffer.allocUnsafe(16);
  putUuid(out, 0, jti);
  return out;
}

/** Writes a UUID's 16 bytes into `out` at `at` (its digits checked already). */
function putUuid(out: Buffer, at: number, uuid: string): void {
  for (let i = 0; i < 36; i += 2) {
    // Past the dash that ends each group.
    if (i === 8 || i === 13 || i === 18 || i === 23) i++;
    out[at++] = (HEX_VALUE[uuid.charCodeAt(i)]! << 4) | HEX_VALUE[uuid.charCodeAt(i + 1)]!;
  }
}

function unpackBinary(sessionId: string, core: Buffer, meta: string): SessionRecord | undefined {
  const layout = core[0]!;
  const length =
    V2_HEAD +
    (layout & V2_ROTATED ? SECONDS_BYTES : 0) +
    (layout & V2_PREVIOUS ? PREVIOUS_BYTES : 0) +
    (layout & V2_DEVICE ? DEVICE_BYTES : 0);
  if (!isCurrentLayout(core) || core.length !== length) return undefined;
  let at = V2_HEAD;
  const rotatedAt = layout & V2_ROTATED ? core.readUInt32BE(at) * 1000 : 0;
  if (layout & V2_ROTATED) at += SECONDS_BYTES;
  const previousJti =
    layout & V2_PREVIOUS ? core.toString('base64url', at, at + PREVIOUS_BYTES) : '';
  if (layout & V2_PREVIOUS) at += PREVIOUS_BYTES;
  const createdAt = core.readUIntBE(V2_LAYOUT.createdAt, MS_BYTES);
  return {
    sessionId,
    jti: uuidFromHex(core.toString('hex', V2_LAYOUT.jti, V2_LAYOUT.jti + 16)),
    previousJti,
    rotatedAt,
    createdAt,
    lastUsedAt: rotatedAt || createdAt,
    expiresAt: binaryExpiresAt(core),
    ...(layout & V2_DEVICE ? readDevice(core, at) : splitMeta(meta)),
  };
}

/** The ip and device label a version 2 record's codes stand for. */
function readDevice(core: Buffer, at: number): { ip: string; userAgent: string } {
  const address = core.readUInt32BE(at);
  const ip = `${address >>> 24}.${(address >>> 16) & 255}.${(address >>> 8) & 255}.${address & 255}`;
  const browser = core[at + 4]!;
  const kind = core[at + 5]!;
  return {
    ip: browser & MAPPED_IPV4 ? MAPPED_PREFIX + ip : ip,
    userAgent: [
      BROWSERS[browser & ~MAPPED_IPV4] ?? '',
      SYSTEMS[kind >> TYPE_BITS] ?? '',
      TYPES[kind & (DEVICE_CODES.types - 1)] ?? '',
    ].join(SEP),
  };
}

const PRINTABLE = /^[\x20-\x7e]*$/;

/**
 * Bounded, separator-free metadata: a hostile User-Agent cannot grow Redis or break the packing.
 * `maxBytes` counts UTF-8 bytes and the cut falls between characters; lone surrogates (no UTF-8
 * form) become U+FFFD, so what is stored is exactly what `listSessions` gives back.
 */
export function cleanMeta(value: unknown, maxBytes: number, allowSeparator: boolean): string {
  if (typeof value !== 'string') return '';
  // Printable ASCII (nearly every ip and user agent): nothing to remove or replace, and a
  // character is a byte; one test instead of three replacements and a byte count.
  if (PRINTABLE.test(value) && (allowSeparator || !value.includes(SEP)))
    return value.length <= maxBytes ? value : value.slice(0, maxBytes);
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
