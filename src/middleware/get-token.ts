import type { Context, Middleware } from 'koa';
import { findAccessToken, type WebOptions } from './cookies.js';
import type { AuthState } from './state.js';

// RFC 6750 §2.1: "Bearer" (any case) then the token; the token charset is checked by the verifier.
const BEARER = /^Bearer +(\S+) *$/i;

/** The bearer token of the request, or undefined. Never the query string (RFC 6750 §5.3). */
export function bearerToken(ctx: Pick<Context, 'headers'>): string | undefined {
  const header = ctx.headers.authorization;
  if (header === undefined) return undefined;
  return BEARER.exec(header)?.[1];
}

/**
 * Puts the raw token on `ctx.state.token` when the request carries one, looking in the
 * instance's `tokenSources` order (the Authorization header, then the cookie). Never fails.
 */
export function createGetToken(web: WebOptions): Middleware<AuthState> {
  return async function getToken(ctx, next) {
    const found = findAccessToken(ctx, web)?.token;
    if (found !== undefined) ctx.state.token = found;
    return next();
  };
}
