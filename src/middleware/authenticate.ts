import type { Context } from 'koa';
import { AuthError } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import type { StrategyRegistry } from '../strategies/registry.js';
import type { ReadOptions, TokenStrategy } from '../strategies/types.js';
import type { AuthUser } from '../tokens/claims.js';
import { findAccessToken } from './cookies.js';
import { checkCsrf, isUnsafeMethod } from './csrf.js';
import type { AuthMiddlewareOptions } from './state.js';

export interface MiddlewareHost {
  readonly strategies: StrategyRegistry;
  readonly options: ResolvedOptions;
}

export interface Authenticated {
  token: string;
  user: AuthUser;
}

/** Synchronous when the strategy answers synchronously (no session check): no promise per request then. */
export type Authenticate = (ctx: Context) => Authenticated | Promise<Authenticated>;

const missing = () =>
  new AuthError(
    'token_missing',
    'This resource needs an access token (Authorization: Bearer <token>).',
  );

/**
 * Builds, once per middleware, the function that finds and reads a request's token. Options are
 * checked here, at start-up; the returned closure does no option work per request.
 */
export function createAuthenticate(
  host: MiddlewareHost,
  options: AuthMiddlewareOptions = {},
): Authenticate {
  if (options === null || typeof options !== 'object')
    throw new TypeError('koa-jwt-redis: middleware options must be an object');
  const {
    strategy: name,
    checkSession = host.options.checkSession,
    csrf = host.options.web.csrf.requireAuth,
  } = options;
  if (typeof checkSession !== 'boolean')
    throw new TypeError('koa-jwt-redis: `checkSession` must be true or false');
  if (typeof csrf !== 'boolean') throw new TypeError('koa-jwt-redis: `csrf` must be true or false');
  const { web } = host.options;
  const fixed: TokenStrategy | undefined =
    name === undefined ? undefined : host.strategies.get(name);
  const read: ReadOptions = { checkSession };
  const { strategies } = host;

  return function authenticate(ctx) {
    const found = findAccessToken(ctx, web);
    if (found === undefined) throw missing();
    // A cookie is an ambient credential: any site can make the browser send it, so prove intent.
    if (found.source === 'cookie' && csrf && isUnsafeMethod(ctx.method))
      checkCsrf(ctx, web, 'session');
    const { token } = found;
    const strategy = fixed ?? strategies.get(strategies.defaultStrategyName);
    const user = strategy.readToken(token, read);
    return user instanceof Promise
      ? user.then((resolved) => ({ token, user: resolved }))
      : { token, user };
  };
}
