import type { Middleware } from 'koa';
import { debug, describeError } from '../debug.js';
import { AuthError } from '../errors.js';
import { type MiddlewareHost, createAuthenticate } from './authenticate.js';
import type { AuthMiddlewareOptions, AuthState } from './state.js';

/**
 * Whether a `getData(...)` call with `count` arguments, the first `first`, asks for the middleware
 * (no argument, or one plain options object) rather than a token's data. `getData(undefined)` is
 * a token that was not there (an absent header's part, an unset query parameter), and a call
 * with a second argument is one with a token: answering those with the middleware, a function,
 * would pass for a user wherever the answer is only tested.
 */
export function isMiddlewareCall(count: number, first: unknown): boolean {
  if (count === 0) return true;
  if (count > 1 || typeof first !== 'object' || first === null) return false;
  const prototype: unknown = Object.getPrototypeOf(first);
  return prototype === Object.prototype || prototype === null;
}

/**
 * Optional authentication: a valid token sets `ctx.state.user`; none or a bad one leaves it
 * undefined (the reason on `ctx.state.authError`). Never fails the request.
 */
export function createGetData(
  host: MiddlewareHost,
  options?: AuthMiddlewareOptions,
): Middleware<AuthState> {
  const authenticate = createAuthenticate(host, options, 'getData');
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
