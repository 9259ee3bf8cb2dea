import type { Middleware, Next } from 'koa';
import { AuthError } from '../errors.js';
import type { AuthUser } from '../tokens/claims.js';
import { type Authenticated, type MiddlewareHost, createAuthenticate } from './authenticate.js';
import { throwAuthError } from './render-error.js';
import type { AuthenticatedState, AuthMiddlewareOptions } from './state.js';

/** 401 (or 503 when the store cannot answer) unless the request carries a valid access token. */
export function createRequireAuth(
  host: MiddlewareHost,
  options?: AuthMiddlewareOptions,
): Middleware<AuthenticatedState> {
  const authenticate = createAuthenticate(host, options);
  const { realm } = host.options;
  function fail(ctx: Parameters<Middleware>[0], error: unknown): never {
    if (error instanceof AuthError) throwAuthError(ctx, error, realm);
    throw error;
  }
  function accept(
    ctx: Parameters<Middleware<AuthenticatedState>>[0],
    token: string,
    user: AuthUser,
    next: Next,
  ): Promise<unknown> {
    ctx.state.token = token;
    ctx.state.user = user;
    return next();
  }
  // Not async: a synchronous answer (no session check) goes straight on, with no promise of its own.
  return function requireAuth(ctx, next) {
    let result: Authenticated;
    try {
      result = authenticate(ctx);
    } catch (error) {
      return fail(ctx, error);
    }
    const { token, user } = result;
    if (user instanceof Promise)
      return user.then(
        (done) => accept(ctx, token, done, next),
        (error: unknown) => fail(ctx, error),
      );
    return accept(ctx, token, user, next);
  };
}
