import type { Middleware } from 'koa';
import type { WebOptions } from '../config/web.js';
import { findAccessToken } from './credentials.js';
import type { AuthState } from './state.js';

/**
 * Puts the raw token on `ctx.state.token` when the request carries one, looking in the
 * instance's `tokenSources` order (the Authorization header, then the cookie). Never fails.
 */
export function createGetToken(web: WebOptions): Middleware<AuthState> {
  return async function getToken(ctx, next) {
    const found = findAccessToken(ctx, web, true)?.token;
    if (found !== undefined) ctx.state.token = found;
    return next();
  };
}
