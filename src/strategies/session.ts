import { randomBytes, timingSafeEqual } from 'node:crypto';
import { AuthConfigError, AuthError } from '../errors.js';
import { sha256Uuid } from '../stores/digest.js';
import type { SessionRecord } from '../stores/session-store.js';
import type { AuthUser, TokenUser } from '../tokens/claims.js';
import {
  claimsObject,
  eventMeta,
  type IssueOptions,
  type RefreshOptions,
  newSessionId,
  normalizeUserId,
  requestMeta,
  sessionMeta,
  tokenPair,
  userIdOf,
} from '../tokens/issue.js';
import { MAX_TOKEN_LENGTH } from '../tokens/token-service.js';
import { refreshedClaims, sessionOver, storeCaller } from './issuing.js';
import { redisStrategy } from './redis.js';
import type { StrategyContext, TokenStrategy, WriteOptions } from './types.js';

/** 256 bits from the CSPRNG: the part of a session token that proves possession. */
const SECRET_BYTES = 32;
const SESSION_ID = /^[A-Za-z0-9_-]{16}$/;
const SECRET = /^[A-Za-z0-9_-]{43}$/;
const USER = /^[A-Za-z0-9_-]+$/;
/** At most one sliding write per session per this long (or a tenth of the idle lifetime, if shorter). */
const MAX_TOUCH_INTERVAL_MS = 60_000;
/** Sessions whose last loadUser question an instance remembers (about 1 MB). */
const MAX_ASKED = 10_000;

const invalid = () => new AuthError('token_invalid', 'The session token is malformed or unknown.');
const revoked = () => new AuthError('token_revoked', 'The session has ended; log in again.');

interface ParsedToken {
  sub: string;
  sid: string;
  /** What the store keeps instead of the token: a hash of its secret. */
  digest: string;
}

/**
 * The hash the store keeps: the first 128 bits of SHA-256 of the secret, written like a UUID so
 * every store keeps it as compactly as a refresh-token id. A dump of the store therefore holds
 * nothing that authenticates: the secret has 256 bits and is never stored.
 */
function digestOf(secret: string): string {
  return sha256Uuid(secret);
}

/** `<user id, base64url>.<session id>.<secret>`: the user and session name the record, the secret proves possession. */
function parse(token: unknown): ParsedToken {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH)
    throw invalid();
  const parts = token.split('.');
  if (parts.length !== 3) throw invalid();
  const [user, sid, secret] = parts as [string, string, string];
  if (!USER.test(user) || !SESSION_ID.test(sid) || !SECRET.test(secret)) throw invalid();
  const sub = Buffer.from(user, 'base64url').toString('utf8');
  // One spelling per token: a re-encoding must give back exactly what was sent.
  if (Buffer.from(sub, 'utf8').toString('base64url') !== user) throw invalid();
  // Only a user id a login could have issued reaches the store: "AA" (U+0000), or any other
  // control character, is a malformed token here, not a 503 from a store that cannot hold it.
  try {
    normalizeUserId(sub);
  } catch {
    throw invalid();
  }
  return { sub, sid, digest: digestOf(secret) };
}

function matches(record: SessionRecord | undefined, digest: string): record is SessionRecord {
  if (record === undefined || record.jti.length !== digest.length) return false;
  return timingSafeEqual(Buffer.from(record.jti), Buffer.from(digest));
}

/**
 * Opaque server-side sessions: login returns a random token (not a JWT), the store keeps only a
 * hash of it, and every `requireAuth` looks the session up (one store read), so logout, a ban
 * (`revokeAllSessions`) or a deleted session takes effect on the next request. The session ends
 * after `sessionIdleTtl` seconds unused, and at the latest `absoluteSessionTtl` (or
 * `refreshTokenTtl`, if shorter) after login. The
 * token is both `access_token` and `refresh_token`: `refreshTokens` slides the session and
 * returns the same token.
 */
export function sessionStrategy(context: StrategyContext): TokenStrategy {
  const { store, options, events } = context;
  const shared = redisStrategy(context);
  const idleMs = options.sessionIdleTtl * 1000;
  // The absolute end: absoluteSessionTtl after login (and never past refreshTokenTtl, this
  // strategy's own cap), whatever the sliding does.
  const absoluteMs = Math.min(options.refreshTokenTtl, options.absoluteSessionTtl) * 1000;
  /** A new session's life until its first slide. */
  const lifeMs = Math.min(idleMs, absoluteMs);
  const touchEveryMs = Math.min(idleMs / 10, MAX_TOUCH_INTERVAL_MS);
  // A store that keeps expiries to the second (binary records) rounds each slide down to a whole
  // second: an idle lifetime of one could never be slid past the next one.
  const resolution = store.timeResolution ?? 1;
  if (idleMs < 2 * resolution)
    throw new AuthConfigError(
      'sessionIdleTtl',
      `must be at least ${(2 * resolution) / 1000} s on this store, which keeps expiries to ${resolution} ms (binary records, the Redis store's default, keep seconds; recordFormat: 'text' keeps ms)`,
    );

  const stored = storeCaller(events);

  /** The live record the token proves, or undefined. One store read. */
  async function find(parsed: ParsedToken, operation: string, now: number) {
    const record = await stored(operation, () => store.get(parsed.sub, parsed.sid, now));
    return matches(record, parsed.digest) ? record : undefined;
  }

  /** Where a slide at `now` puts the session's expiry: idle lifetime, never past the absolute cap. */
  const slidTo = (record: SessionRecord, now: number) =>
    Math.min(now + idleMs, record.createdAt + absoluteMs);
  /** An expiry as the store keeps it: rounded down to its resolution. */
  const kept = (expiresAt: number) => Math.floor(expiresAt / resolution) * resolution;

  /**
   * Whether a slide at `now` writes: past the throttle (unless `force`), and moving the expiry
   * the store keeps (at the absolute cap, or short of the next whole second on a store that keeps
   * seconds, a write would change nothing).
   */
  const slideDue = (record: SessionRecord, now: number, force: boolean) =>
    (force || now - record.lastUsedAt >= touchEveryMs) &&
    kept(slidTo(record, now)) > record.expiresAt;

  /** Slides the idle expiry; `force` skips the throttle. Never extends past the absolute cap. */
  function slide(parsed: ParsedToken, record: SessionRecord, now: number, force: boolean) {
    if (!slideDue(record, now, force)) return undefined;
    const expiresAt = slidTo(record, now);
    // A store that throws rather than rejects is failing all the same: a rejection here, so that
    // a refresh answers 503 (and a request's unawaited slide is ignored), not a 500.
    try {
      return store.rotate(parsed.sub, {
        sessionId: parsed.sid,
        oldJti: parsed.digest,
        newJti: parsed.digest,
        now,
        expiresAt,
        graceMs: 0,
      });
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  /**
   * When this instance last asked loadUser about a session, by its id (oldest first, at most
   * MAX_ASKED: a session dropped from it is asked again by its record's lastUsedAt).
   */
  const asked = new Map<string, number>();

  /**
   * Whether a request should ask loadUser about its session: once a touch interval, whether or
   * not the slide writes (at the absolute cap it never does), and once however many requests
   * arrive while it answers, or however long it keeps failing.
   */
  function askDue(parsed: ParsedToken, record: SessionRecord, now: number): boolean {
    if (!options.loadUser) return false;
    if (now - (asked.get(parsed.sid) ?? record.lastUsedAt) < touchEveryMs) return false;
    asked.delete(parsed.sid);
    asked.set(parsed.sid, now);
    if (asked.size > MAX_ASKED) asked.delete(asked.keys().next().value!);
    return true;
  }

  /**
   * A request's background work: asking loadUser, as a refresh asks (this token is the access
   * token too, so a client may never refresh), and the slide. Null ends the session, so a deleted
   * or disabled user is out within a touch interval (a minute at most); an answer that fails, or
   * is no user, slides nothing this time.
   */
  async function touch(
    parsed: ParsedToken,
    record: SessionRecord,
    now: number,
    ask: boolean,
  ): Promise<void> {
    if (ask && (await userGone(parsed, 'checkSession'))) return;
    await slide(parsed, record, now, false);
  }

  /**
   * Asks loadUser about the token's user (a proven token only, so a forged one cannot end
   * someone's session): null revokes the session, and answers true. The token carries no claims,
   * so a user it returns is only checked.
   */
  async function userGone(parsed: ParsedToken, operation: string): Promise<boolean> {
    if ((await refreshedClaims(context, { sub: parsed.sub })) !== null) return false;
    await stored(operation, () => store.revoke(parsed.sub, parsed.sid));
    return true;
  }

  function userOf(parsed: ParsedToken, record: SessionRecord): AuthUser {
    return {
      sub: parsed.sub,
      sid: parsed.sid,
      token_use: 'access',
      auth_time: Math.floor(record.createdAt / 1000),
      iat: Math.floor(record.createdAt / 1000),
      exp: Math.floor(record.expiresAt / 1000),
    } as AuthUser;
  }

  /** A new session's token, and the seconds it lives unused (the idle lifetime, or less at the absolute cap). */
  async function start(
    user: TokenUser,
    issue: WriteOptions | undefined,
  ): Promise<{ token: string; expiresIn: number }> {
    const sub = userIdOf(user);
    if (issue?.sessionId !== undefined)
      throw new TypeError(
        'koa-jwt-redis: the "session" strategy\'s token is its session: every token starts a session of its own, so `sessionId` is refused',
      );
    for (const name of ['claims', 'audience', 'headers', 'lifetime'] as const) {
      const value = issue?.[name];
      // An empty claims object asks for nothing; null or a string is refused as on the other strategies.
      if (name === 'claims' && value !== undefined && Object.keys(claimsObject(value)).length === 0)
        continue;
      if (value !== undefined) {
        throw new TypeError(
          `koa-jwt-redis: the "session" strategy issues opaque tokens, which carry no ${name}; keep such data with your user and load it by ctx.state.user.sub`,
        );
      }
    }
    const seen = requestMeta(issue);
    const meta = sessionMeta(seen);
    const now = Date.now();
    const sessionId = newSessionId();
    const secret = randomBytes(SECRET_BYTES).toString('base64url');
    const token = `${Buffer.from(sub, 'utf8').toString('base64url')}.${sessionId}.${secret}`;
    // Recorded before it is returned: a token the store did not keep is never handed out.
    await stored('login', () =>
      store.create(
        sub,
        {
          sessionId,
          jti: digestOf(secret),
          now,
          expiresAt: now + lifeMs,
          ...meta,
        },
        options.maxSessionsPerUser,
      ),
    );
    events.emit('login', { userId: sub, sessionId, ...eventMeta(seen) });
    // What the store keeps (to the second on binary records), as a refresh answers it: a login's
    // expires_in never promises time the session does not have.
    return { token, expiresIn: Math.floor((kept(now + lifeMs) - now) / 1000) };
  }

  return {
    // An opaque token means nothing without its record: the store is asked even when the caller
    // says checkSession: false.
    async readToken(token) {
      const parsed = parse(token);
      const now = Date.now();
      const record = await find(parsed, 'checkSession', now);
      if (!record) throw revoked();
      // The sliding write is not awaited: a request costs one store read; a failed write is retried by a later one.
      const ask = askDue(parsed, record, now);
      if (ask || slideDue(record, now, false)) touch(parsed, record, now, ask).catch(() => {});
      return userOf(parsed, record);
    },

    async writeToken(user, _kind, write?: WriteOptions) {
      return (await start(user, write)).token;
    },

    // expires_in is the session's life unused from now: what the token, both of the pair, and
    // every cookie carrying it may claim (never sessionIdleTtl past the absolute end).
    async generateTokens(user: TokenUser, issue?: IssueOptions) {
      const { token, expiresIn } = await start(user, issue);
      return tokenPair(token, token, expiresIn);
    },

    async checkRefreshToken(token) {
      let parsed: ParsedToken;
      try {
        parsed = parse(token);
      } catch {
        return false;
      }
      return (await find(parsed, 'checkRefreshToken', Date.now())) !== undefined;
    },

    async refreshTokens(token, issue?: RefreshOptions) {
      const parsed = parse(token);
      // Read before the slide is written: a bad `ctx` fails the call, not a refresh that held.
      const meta = eventMeta(requestMeta(issue));
      const now = Date.now();
      const record = await find(parsed, 'refresh', now);
      if (!record) throw revoked();
      // loadUser's null ends the session here too (a deleted or disabled user).
      if (options.loadUser && (await userGone(parsed, 'refresh'))) throw revoked();
      // The expiry the store will keep: the slide's, rounded down to the store's resolution,
      // or the record's own when there is nothing to slide (at the absolute cap).
      const expiresAt = Math.max(record.expiresAt, kept(slidTo(record, now)));
      const expiresIn = Math.floor((expiresAt - now) / 1000);
      // Under a second left before the absolute end: a pair with `expires_in: 0` (and cookies
      // with Max-Age=0, which delete themselves) would be a refresh that seemed to succeed.
      if (expiresIn <= 0) throw sessionOver();
      const slid = slide(parsed, record, now, true);
      if (slid !== undefined && (await stored('refresh', () => slid)) !== 'rotated')
        throw revoked();
      events.emit('refresh', {
        userId: parsed.sub,
        sessionId: parsed.sid,
        ...meta,
      });
      return tokenPair(token as string, token as string, expiresIn);
    },

    async invalidateRefreshToken(token) {
      const parsed = parse(token);
      // Only the token's holder may end its session: the secret must match.
      if (!(await find(parsed, 'logout', Date.now()))) return;
      if (await stored('logout', () => store.revoke(parsed.sub, parsed.sid)))
        events.emit('logout', { userId: parsed.sub, sessionId: parsed.sid });
    },

    revokeAllSessions: shared.revokeAllSessions!,
    listSessions: shared.listSessions!,
    revokeSession: shared.revokeSession!,
  };
}
