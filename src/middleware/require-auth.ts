import type { Middleware } from 'koa';
import { AuthError } from '../errors.js';
import { type MiddlewareHost, createAuthenticate } from './authenticate.js';
import { throwAuthError } from './render-error.js';
import type { AuthenticatedState, AuthMiddlewareOptions } from './state.js';

/** 401 (or 503 when the store cannot answer) unless the request carries a valid access token. */
export function createRequireAuth(host: MiddlewareHost, options?: AuthMiddlewareOptions): Middleware<AuthenticatedState> {
  const authenticate = createAuthenticate(host, options);
  const { realm } = host.options;
  return async function requireAuth(ctx, next) {
    let result;
    try {
      result = await authenticate(ctx);
    } catch (error) {
      if (error instanceof AuthError) throwAuthError(ctx, error, realm);
      throw error;
    }
    ctx.state.token = result.token;
    ctx.state.user = result.user;
    return next();
  };
}
