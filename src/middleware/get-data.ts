import type { Middleware } from 'koa';
import { debug, describeError } from '../debug.js';
import { AuthError } from '../errors.js';
import { type MiddlewareHost, createAuthenticate } from './authenticate.js';
import type { AuthMiddlewareOptions, AuthState } from './state.js';

/**
 * Optional authentication: a valid token sets `ctx.state.user`; none or a bad one leaves it
 * undefined (the reason on `ctx.state.authError`). Never fails the request.
 */
export function createGetData(
  host: MiddlewareHost,
  options?: AuthMiddlewareOptions,
): Middleware<AuthState> {
  const authenticate = createAuthenticate(host, options);
  return async function getData(ctx, next) {
    try {
      const { token, user } = authenticate(ctx);
      const resolved = await user;
      ctx.state.token = token;
      ctx.state.user = resolved;
    } catch (error) {
      if (!(error instanceof AuthError)) throw error;
      if (error.code !== 'token_missing') {
        ctx.state.authError = error;
        debug.auth('%s %s anonymous: %s', ctx.method, ctx.path, describeError(error));
      }
    }
    return next();
  };
}
