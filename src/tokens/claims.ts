/** The two kinds of token; each has its own header `typ` and `token_use` claim. */
export type TokenKind = 'access' | 'refresh';

/** Header `typ` per kind: RFC 9068 for access tokens, a private type for refresh tokens. */
export const TOKEN_TYP: Record<TokenKind, string> = { access: 'at+jwt', refresh: 'rt+jwt' };

/** Claims every verified access token carries. */
export interface AccessTokenPayload {
  /** The user id (`user.id` at login), always a string. */
  sub: string;
  /** The session family id; present on tokens of session-backed strategies. */
  sid?: string | undefined;
  token_use: 'access';
  /** When the user logged in (epoch seconds): refreshes keep it; ask for a new login when it is too old. */
  auth_time?: number | undefined;
  /** The strategy that issued the token; the other strategies refuse it. */
  stg?: string | undefined;
  iat: number;
  exp: number;
  iss?: string | undefined;
  aud?: string | string[] | undefined;
}

/**
 * Claims your app adds to access tokens (through `userFields` or `generateTokens(user, { claims })`).
 * Declare them once and `ctx.state.user` is typed everywhere:
 * @example
 * declare module 'koa-jwt-redis' {
 *   interface UserClaims { role: 'admin' | 'member' }
 * }
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface UserClaims {}

/** What `ctx.state.user` holds after `getData` or `requireAuth`. */
export type AuthUser = AccessTokenPayload & UserClaims;

/** Claims of a refresh token. */
export interface RefreshTokenPayload {
  sub: string;
  /** Session family: every token rotated from one login shares it. */
  sid: string;
  /** The UUID recorded in the session store; one live UUID per family. */
  jti: string;
  token_use: 'refresh';
  /** When the user logged in (epoch seconds): the session's absolute lifetime counts from it. */
  auth_time?: number | undefined;
  /** The strategy that issued the token. */
  stg?: string | undefined;
  /**
   * The session's own idle timeout in seconds, when its refresh token was given a `lifetime`
   * (createRefreshToken, writeToken): every rotation keeps it instead of `refreshTokenTtl`.
   */
  idl?: number | undefined;
  iat: number;
  exp: number;
  iss?: string | undefined;
  aud?: string | string[] | undefined;
}

/** What a login or a refresh returns (RFC 6749 §5.1 field names). */
export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: 'bearer';
  /** Seconds until the access token expires. */
  expires_in: number;
}

/** The user a token is issued for: `id` becomes `sub`; other fields are copied per `userFields`. */
export interface TokenUser {
  id: string | number;
  [field: string]: unknown;
}

/** Claims the library owns; app claims may not override them. */
export const RESERVED_CLAIMS: ReadonlySet<string> = new Set([
  'sub',
  'sid',
  'jti',
  'token_use',
  'iat',
  'exp',
  'nbf',
  'iss',
  'aud',
  'auth_time',
  'stg',
  // The app claims a refresh token carries, to re-issue them on refresh.
  'usr',
  // A session's own idle timeout, carried by its refresh tokens.
  'idl',
]);

/**
 * `{ ...claims, ...more }`, written out. V8 (Node 20) builds an object literal that opens with a
 * spread and goes on with more members on a slow path: about 1.5 µs per object, and
 * `JSON.stringify` of the result runs about 7 times slower than on a plain object (measured:
 * issue 15's note). Signing takes this path twice per token. Members keep their order; an own
 * `__proto__` member stays an own member, as with a spread.
 */
export function withClaims<T extends object>(claims: object, more: T): Record<string, unknown> & T {
  const out: Record<string, unknown> = {};
  copyInto(out, claims as Record<string, unknown>);
  copyInto(out, more as Record<string, unknown>);
  return out as Record<string, unknown> & T;
}

/**
 * The claims of a session's access token: the app's claims, then `sub`, `sid` and `auth_time`.
 * Without app claims (most logins and refreshes) an object literal of one shape, to which
 * signing adds the registered claims by plain member stores (TokenService.signPayload).
 */
export function sessionClaims(
  claims: Record<string, unknown>,
  sub: string,
  sid: string,
  authTime: number,
): Record<string, unknown> {
  if (Object.keys(claims).length > 0) return withClaims(claims, { sub, sid, auth_time: authTime });
  return { sub, sid, auth_time: authTime };
}

function copyInto(out: Record<string, unknown>, from: Record<string, unknown>): void {
  for (const name of Object.keys(from)) {
    if (name === '__proto__')
      Object.defineProperty(out, name, {
        value: from[name],
        enumerable: true,
        writable: true,
        configurable: true,
      });
    else out[name] = from[name];
  }
}

/**
 * Names jsonwebtoken cannot sign as claims: it looks each payload key up in a plain object, so a
 * key such as `constructor` or `__proto__` makes `jwt.sign` throw a TypeError.
 */
export function isPrototypeKey(name: string): boolean {
  return Object.prototype.hasOwnProperty.call(Object.prototype, name);
}

/** C0 control characters and DEL: PostgreSQL cannot keep NUL, so no store may hold such a user id. */
export function hasControl(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

import { isWellFormed } from '../config/validate.js';

export { isWellFormed };

/** The longest user id (in UTF-16 units, as JavaScript counts a string's length). */
export const MAX_USER_ID_LENGTH = 256;

/**
 * A user id as the library issues it in `sub` and keys sessions by: non-empty, at most
 * MAX_USER_ID_LENGTH long, well-formed (a lone surrogate has no UTF-8 form for a Redis key, and
 * two such ids could collide), without control characters (PostgreSQL cannot keep NUL). Issuing
 * and reading a token check the same rule, so a signed token the library would never issue
 * cannot reach a store.
 */
export function isUserIdString(value: unknown): value is string {
  return (
    typeof value === 'string' &&
    value.length > 0 &&
    value.length <= MAX_USER_ID_LENGTH &&
    isWellFormed(value) &&
    !hasControl(value)
  );
}

/** NumericDate claims (RFC 7519 §4.1.4-6, OIDC auth_time): finite numbers only. */
const TIME_CLAIMS = ['exp', 'nbf', 'iat', 'auth_time'] as const;

/**
 * The first of `names` (NumericDate claims) that `claims` carries as anything but a finite
 * number: a string or -1e400 (-Infinity once parsed) is refused, not skipped.
 */
export function nonNumericTime(
  claims: Readonly<Record<string, unknown>>,
  names: readonly string[] = TIME_CLAIMS,
): string | undefined {
  for (const name of names) {
    const value = claims[name];
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value))) return name;
  }
  return undefined;
}
