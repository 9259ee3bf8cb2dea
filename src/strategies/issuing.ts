import { randomUUID } from 'node:crypto';
import { AuthError, storeUnavailable } from '../errors.js';
import { appClaims, tokenPair } from '../tokens/issue.js';
import {
  isPrototypeKey,
  RESERVED_CLAIMS,
  type RefreshTokenPayload,
  type TokenPair,
  sessionClaims,
  type TokenUser,
} from '../tokens/claims.js';
import type { SignOverrides } from '../tokens/sign-overrides.js';
import type { StrategyContext } from './types.js';

/** A signed pair not yet handed out: session strategies record `jti` before returning `pair`. */
export interface PendingPair {
  pair: TokenPair;
  jti: string;
  /** The session's expiry in epoch ms: the tokens' `exp`, a whole second (stores order logins of one second by creation). */
  expiresAt: number;
}

/** Where a pair sits in its session's life. */
export interface SessionTimes {
  /** When the user logged in, epoch seconds: the `auth_time` claim, kept by every refresh. */
  authTime: number;
  /** The refresh-token id to put in the pair; a new random one when left out. */
  jti?: string | undefined;
  /** A further cap on the session's end, epoch ms (e.g. the stored record's expiry). */
  notAfter?: number | undefined;
}

/** The session has reached its absolute end (or the record's): nothing can be issued for it. */
export const sessionOver = () =>
  new AuthError('token_expired', 'The session has reached its maximum lifetime; log in again.');

/**
 * Signs an access + refresh pair for one session family. The app claims ride along in the
 * refresh token (`usr`, signed) so that a refresh can re-issue them without the user object;
 * with `loadUser`, which a refresh asks instead, they are left out (a shorter token).
 * The session ends at the earlier of the idle timeout (`refreshTokenTtl`, or the refresh
 * token's own `lifetime`, from now) and the
 * absolute one (`absoluteSessionTtl` from `auth_time`); no token of the pair outlives it.
 */
export function signPair(
  context: StrategyContext,
  sub: string,
  sessionId: string,
  claims: Record<string, unknown>,
  now: number,
  session: SessionTimes,
  refreshOverrides?: SignOverrides,
): PendingPair {
  const { tokens, options } = context;
  const { authTime } = session;
  // writeToken may give the refresh token its own lifetime: the idle timeout of that session.
  const idle = refreshOverrides?.lifetime ?? tokens.refreshTokenTtl;
  const expiresAt = Math.min(
    now + idle * 1000,
    (authTime + options.absoluteSessionTtl) * 1000,
    session.notAfter ?? Infinity,
  );
  const notAfter = Math.floor(expiresAt / 1000);
  const iat = Math.floor(now / 1000);
  if (notAfter <= iat) throw sessionOver();
  // A random UUID (122 bits); the Redis store keeps it in 22 characters (compactUuid).
  const jti = session.jti ?? randomUUID();
  const refreshClaims: Record<string, unknown> = { sub, sid: sessionId, jti, auth_time: authTime };
  // A lifetime of its own is the session's idle timeout for good: its rotations read it back
  // (idleOf), so a short session stays short rather than taking refreshTokenTtl at its first one.
  if (refreshOverrides?.lifetime !== undefined) refreshClaims.idl = refreshOverrides.lifetime;
  if (!options.loadUser && Object.keys(claims).length > 0) refreshClaims.usr = claims;
  const refresh = tokens.signPayload('refresh', refreshClaims, now, refreshOverrides, notAfter);
  const access = tokens.signPayload(
    'access',
    sessionClaims(claims, sub, sessionId, authTime),
    now,
    undefined,
    notAfter,
  );
  // The session ends when its tokens do, to the second, on every store (the Redis store's binary
  // records keep whole seconds; the others would keep the part of a second the tokens lack).
  return {
    pair: tokenPair(access.token, refresh.token, access.exp - iat),
    jti,
    expiresAt: notAfter * 1000,
  };
}

/**
 * What a rotation signs its refresh token with: the session's own idle timeout (`idl`, which the
 * verifier has checked), or nothing, for refreshTokenTtl.
 */
export function idleOf(payload: RefreshTokenPayload): SignOverrides | undefined {
  return payload.idl === undefined ? undefined : { lifetime: payload.idl };
}

/** `auth_time` of a verified refresh token (the verifier requires it to be a number). */
export function authTimeOf(payload: RefreshTokenPayload): number {
  return payload.auth_time!;
}

/**
 * The claims a refreshed access token carries: the ones from login, or freshly loaded ones when
 * `loadUser` is set. Null when `loadUser` says the user is gone.
 */
export async function refreshedClaims(
  context: StrategyContext,
  payload: Pick<RefreshTokenPayload, 'sub'> & { usr?: unknown },
): Promise<Record<string, unknown> | null> {
  const { loadUser, userFields } = context.options;
  if (loadUser) {
    const user: unknown = await loadUser(payload.sub);
    if (!user) return null;
    // A number or a string is an app bug: refused before anything is written, not a user.
    if (typeof user !== 'object' || Array.isArray(user))
      throw new TypeError(
        `koa-jwt-redis: loadUser must return a user object, or null to end the session (got ${Array.isArray(user) ? 'an array' : `a ${typeof user}`})`,
      );
    return appClaims(user as TokenUser, userFields, undefined);
  }
  const usr = payload.usr;
  if (usr === null || typeof usr !== 'object' || Array.isArray(usr)) return {};
  // Only app claims were put in `usr` at login; anything else (a library claim, `constructor`, …) is
  // dropped rather than handed to jwt.sign, which would override ours or throw.
  const claims: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(usr)) {
    if (!RESERVED_CLAIMS.has(name) && !isPrototypeKey(name)) claims[name] = value;
  }
  return claims;
}

/**
 * A strategy's way of calling its store: anything the store throws becomes a 503
 * `store_unavailable`, reported once as an event naming the operation.
 */
export function storeCaller(events: StrategyContext['events']) {
  return async function stored<T>(operation: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      events.emit('store_unavailable', { operation, error });
      throw storeUnavailable(error);
    }
  };
}
