import { randomBytes } from 'node:crypto';
import type { Context } from 'koa';
import { warnOnce } from '../config/validate.js';
import type { WebOptions } from '../config/web.js';
import type { TokenPair } from '../tokens/claims.js';
import { readCookie } from './credentials.js';

/**
 * The lifetime of a freshly signed JWT, `exp - iat` (a session may end before `refreshTokenTtl`:
 * its absolute lifetime), so that no cookie outlives its token. Infinity for a token that is no JWT.
 */
function secondsLeft(token: string): number {
  try {
    const payload: unknown = JSON.parse(
      Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'),
    );
    const { exp, iat } = (payload ?? {}) as {
      exp?: unknown;
      iat?: unknown;
    };
    if (typeof exp === 'number' && typeof iat === 'number') return Math.max(0, exp - iat);
  } catch {
    // Not a JWT (an opaque strategy's token): the configured lifetime bounds it.
  }
  return Infinity;
}

/** The most a browser keeps of one cookie's name and value (RFC 6265's minimum, Chrome's and Firefox's maximum). */
const COOKIE_LIMIT = 4096;

/**
 * Writes the auth cookies. Set-Cookie is written by hand rather than through `ctx.cookies`,
 * which refuses `Secure` cookies on plain-http connections, although browsers accept them from
 * http://localhost during development.
 */
export class TokenCookies {
  constructor(
    private readonly web: WebOptions,
    private readonly refreshTokenTtl: number,
  ) {}

  private write(
    ctx: Context,
    name: string,
    value: string,
    path: string,
    maxAge: number,
    httpOnly: boolean,
  ): void {
    const { secure, sameSite } = this.web.cookies;
    if (name.length + value.length > COOKIE_LIMIT)
      warnOnce(
        'KOA_JWT_REDIS_COOKIE_SIZE',
        `the ${name} cookie is ${name.length + value.length} bytes: browsers drop a cookie whose name and value pass ${COOKIE_LIMIT}, so this login will not stick. Copy fewer userFields into the token, or deliver tokens in the body (tokenDelivery).`,
      );
    const parts = [`${name}=${value}`, `Path=${path}`, `Max-Age=${maxAge}`];
    if (maxAge === 0) parts.push('Expires=Thu, 01 Jan 1970 00:00:00 GMT');
    if (httpOnly) parts.push('HttpOnly');
    if (secure) parts.push('Secure');
    parts.push(`SameSite=${sameSite}`);
    ctx.append('Set-Cookie', parts.join('; '));
  }

  /**
   * Sets the access, refresh and CSRF cookies for a freshly issued pair. The refresh cookie goes
   * to each of `refreshPaths` (the refresh route's, and the logout route's: a browser drops the
   * access cookie when its token expires, and logout then ends the session by the refresh token).
   */
  set(ctx: Context, pair: TokenPair, refreshPaths: readonly string[], rotateCsrf: boolean): void {
    const { names } = this.web.cookies;
    this.write(ctx, names.access, pair.access_token, '/', pair.expires_in, true);
    // One opaque token for both (the session strategy) lives as long as the pair says.
    const refreshMaxAge = Math.min(
      this.refreshTokenTtl,
      pair.refresh_token === pair.access_token ? pair.expires_in : secondsLeft(pair.refresh_token),
    );
    for (const path of refreshPaths)
      this.write(ctx, names.refresh, pair.refresh_token, path, refreshMaxAge, true);
    // The double-submit token: readable by the page's script, which echoes it in a header.
    const current = readCookie(ctx, names.csrf);
    const csrf =
      !rotateCsrf && current !== undefined && /^[A-Za-z0-9_-]{22,64}$/.test(current)
        ? current
        : randomBytes(24).toString('base64url');
    this.write(ctx, names.csrf, csrf, '/', refreshMaxAge, false);
  }

  clear(ctx: Context, refreshPaths: readonly string[]): void {
    const { names } = this.web.cookies;
    this.write(ctx, names.access, '', '/', 0, true);
    for (const path of refreshPaths) this.write(ctx, names.refresh, '', path, 0, true);
    this.write(ctx, names.csrf, '', '/', 0, false);
  }
}
