import { randomBytes } from 'node:crypto';
import { sha256Uuid } from '../stores/digest.js';
import { cleanMeta } from '../stores/record-codec.js';
import {
  isPrototypeKey,
  hasControl,
  isUserIdString,
  isWellFormed,
  MAX_USER_ID_LENGTH,
  RESERVED_CLAIMS,
  type TokenPair,
  type TokenUser,
} from './claims.js';
import { deviceCode } from './device.js';

/** Where login metadata comes from: give `ctx` and the user agent and ip are read from it. */
export interface IssueOptions {
  /** Extra claims for the access token (not `sub`, `exp`, … which the library owns). */
  claims?: Record<string, unknown> | undefined;
  userAgent?: string | undefined;
  ip?: string | undefined;
  /** A Koa context to read `User-Agent` and `ctx.ip` from. */
  ctx?: { ip?: string | undefined; get(field: string): string } | undefined;
}

/** `refreshTokens`'s options: where the request's metadata comes from (no claims; see below). */
export type RefreshOptions = Omit<IssueOptions, 'claims'>;

/** The options of `generateTokens`, which takes {@link IssueOptions}, with `strategy`. */
export const ISSUE_OPTION_NAMES = ['claims', 'userAgent', 'ip', 'ctx', 'strategy'] as const;
/**
 * The options of `refreshTokens`: the request's metadata and `strategy`. Not `claims`: a
 * rotation carries the login's claims (or `loadUser`'s), so one given here would be ignored.
 */
export const REFRESH_OPTION_NAMES = ['userAgent', 'ip', 'ctx', 'strategy'] as const;
/** The options of `createAccessToken` / `createRefreshToken` (and `writeToken`). */
export const WRITE_OPTION_NAMES = [
  ...ISSUE_OPTION_NAMES,
  'sessionId',
  'lifetime',
  'audience',
  'headers',
] as const;

/**
 * Whether `value` can be a session id: a non-empty, well-formed string of at most 64 characters
 * without control characters, as user ids are. No session the library starts has any other id;
 * one with a NUL would be kept by memory and Redis yet fail on PostgreSQL (as an outage).
 */
export function isSessionId(value: unknown): value is string {
  return (
    typeof value === 'string' &&
    value.length > 0 &&
    value.length <= 64 &&
    isWellFormed(value) &&
    !hasControl(value)
  );
}

/**
 * `writeToken`'s `sessionId`, checked: undefined when left out, else a session id as the library
 * makes them (see isSessionId); anything else is a TypeError.
 */
export function sessionIdOption(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (!isSessionId(value))
    throw new TypeError(
      'koa-jwt-redis: `sessionId` must be a session id: a non-empty, well-formed string of at most 64 characters without control characters',
    );
  return value;
}

/** `user.id` as the `sub` string; a clear TypeError for app bugs like a missing id. */
export function userIdOf(user: unknown): string {
  if (user === null || typeof user !== 'object') {
    throw new TypeError('koa-jwt-redis: generateTokens(user) needs a user object with an `id`');
  }
  return normalizeUserId((user as { id?: unknown }).id);
}

export function normalizeUserId(id: unknown): string {
  if (typeof id === 'number' && Number.isSafeInteger(id)) return String(id);
  if (isUserIdString(id)) return id;
  throw new TypeError(
    `koa-jwt-redis: a user id must be a non-empty, well-formed string of at most ${MAX_USER_ID_LENGTH} characters without control characters, or a safe integer`,
  );
}

/**
 * CSPRNG bytes drawn in 4 KiB batches: one `randomBytes(12)` per login costs more than the rest of
 * the id's work (a call into OpenSSL each time), as Node's own `randomUUID` batches for the same reason.
 * Each byte is handed out once.
 */
const BATCH = 4096;
let batch = Buffer.alloc(0);
let used = 0;

function randomChunk(size: number): Buffer {
  if (used + size > batch.length) {
    batch = randomBytes(BATCH);
    used = 0;
  }
  used += size;
  return batch.subarray(used - size, used);
}

/** Session ids: 96 random bits (16 URL-safe characters): unguessable, and short because each is a field name in Redis (up to three per session). */
export function newSessionId(): string {
  return randomChunk(12).toString('base64url');
}

/**
 * The refresh-token id that replaces `jti` in session `sessionId`: derived, not drawn, so every
 * concurrent refresh of one token names the same successor. The one that wins the store's
 * atomic rotation records it; the others (two tabs, a retry after a timeout) are answered with
 * tokens carrying it, so the session keeps one live chain and nobody waits for a second store
 * read. A jti is no secret (it is readable in the token, which only the signing key can mint),
 * so knowing the next one gives nothing; it is a UUID-shaped 128-bit hash, unique per family.
 */
export function successorJti(sessionId: string, jti: string): string {
  return sha256Uuid(`koa-jwt-redis successor\0${sessionId}\0${jti}`);
}

/** The `claims` option, checked to be an object (a TypeError, not a crash, for `null` or a string). */
export function claimsObject(extra: unknown): Record<string, unknown> {
  if (extra === null || typeof extra !== 'object')
    throw new TypeError('koa-jwt-redis: `claims` must be an object');
  return extra as Record<string, unknown>;
}

/** The app's claims for the access token: `userFields` copied from the user, then explicit claims. */
export function appClaims(
  user: TokenUser,
  userFields: readonly string[],
  extra: Record<string, unknown> | undefined,
): Record<string, unknown> {
  const claims: Record<string, unknown> = {};
  for (const field of userFields) {
    if (user[field] !== undefined) claims[field] = user[field];
  }
  if (extra !== undefined) {
    for (const [name, value] of Object.entries(claimsObject(extra))) {
      if (RESERVED_CLAIMS.has(name)) {
        throw new TypeError(
          `koa-jwt-redis: the claim "${name}" is set by the library and cannot be given in \`claims\``,
        );
      }
      if (isPrototypeKey(name))
        throw new TypeError(
          `koa-jwt-redis: "${name}" cannot be a claim name (jsonwebtoken cannot sign it)`,
        );
      claims[name] = value;
    }
  }
  return claims;
}

/** Throws a TypeError naming a request-metadata option (`ip`, `userAgent`) given as no string. */
function stringOption(name: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'string')
    throw new TypeError(`koa-jwt-redis: \`${name}\` must be a string`);
}

/**
 * Throws a TypeError when `ctx` is no Koa context or `ip`/`userAgent` no string. Strategies call it
 * (through {@link requestMeta} where they use the values) before writing anything, so a wrong
 * value fails the call and changes nothing.
 */
export function checkRequestOptions(options: IssueOptions | undefined): void {
  const ctx = options?.ctx;
  if (ctx !== undefined && typeof (ctx as { get?: unknown } | null)?.get !== 'function')
    throw new TypeError('koa-jwt-redis: `ctx` must be a Koa context (with ctx.get)');
  stringOption('ip', options?.ip);
  stringOption('userAgent', options?.userAgent);
}

/** User agent and ip of the request, bounded in size: what audit events report. Checked first. */
export function requestMeta(options: IssueOptions | undefined): { ip: string; userAgent: string } {
  checkRequestOptions(options);
  const ctx = options?.ctx;
  return {
    ip: cleanMeta(options?.ip ?? ctx?.ip, 64, false),
    userAgent: cleanMeta(options?.userAgent ?? ctx?.get('user-agent'), 256, true),
  };
}

/** What audit events carry of the request's metadata (from {@link requestMeta}): only what is known. */
export function eventMeta(meta: { ip: string; userAgent: string }): {
  ip?: string | undefined;
  userAgent?: string | undefined;
} {
  const out: { ip?: string | undefined; userAgent?: string | undefined } = {};
  if (meta.ip) out.ip = meta.ip;
  if (meta.userAgent) out.userAgent = meta.userAgent;
  return out;
}

/**
 * Ip and device for the session list, as the store records them: the user agent is kept only as
 * its short device form ("Firefox|Linux|desktop"), which is all the list shows and a third of
 * the bytes. Takes what {@link requestMeta} read, so a login cleans the request's metadata once.
 */
export function sessionMeta(request: { ip: string; userAgent: string }): {
  ip: string;
  userAgent: string;
} {
  return { ip: request.ip, userAgent: deviceCode(request.userAgent) };
}

export function tokenPair(access: string, refresh: string, expiresIn: number): TokenPair {
  return {
    access_token: access,
    refresh_token: refresh,
    token_type: 'bearer',
    expires_in: expiresIn,
  };
}
