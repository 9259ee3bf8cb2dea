import type { Context } from 'koa';
import { AuthError } from '../errors.js';
import type { ResolvedOptions } from '../config/options.js';
import { bool, onlyKnown, plainObject } from '../config/validate.js';
import type { ReadOptions, TokenReader } from '../strategies/types.js';
import type { AuthUser } from '../tokens/claims.js';
import { findAccessToken } from './credentials.js';
import { checkCsrf, isUnsafeMethod } from './csrf.js';
import type { AuthMiddlewareOptions } from './state.js';

/** What the middlewares need from an Auth instance or a verifier. */
export interface MiddlewareHost {
  readonly options: Pick<ResolvedOptions, 'checkSession' | 'realm' | 'web'>;
  /**
   * The reader for a middleware's `strategy` option, looked up once when the middleware is
   * created; undefined asks for the instance's default strategy, whichever it is at each request.
   */
  tokenReader(strategy: string | undefined): TokenReader;
}

export interface Authenticated {
  token: string;
  /**
   * The user, or its promise while the strategy asks the store: the token is known at once, so
   * no promise of an {@link Authenticated} is built per request on top of the strategy's own.
   */
  user: AuthUser | Promise<AuthUser>;
}

/** Synchronous when the strategy answers synchronously (no session check): no promise per request then. */
export type Authenticate = (ctx: Context) => Authenticated;

/** Every option of requireAuth() and getData(); `satisfies` keeps this list complete. */
const MIDDLEWARE_OPTIONS = {
  strategy: true,
  checkSession: true,
  csrf: true,
} as const satisfies Record<keyof AuthMiddlewareOptions, true>;

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
  const given = plainObject('middleware options', options) as AuthMiddlewareOptions;
  onlyKnown('middleware options', given, Object.keys(MIDDLEWARE_OPTIONS));
  const name = given.strategy;
  const checkSession = bool(
    'middleware checkSession',
    given.checkSession,
    host.options.checkSession,
  );
  const csrf = bool('middleware csrf', given.csrf, host.options.web.csrf.requireAuth);
  const { web } = host.options;
  const reader = host.tokenReader(name);
  const read: ReadOptions = { checkSession };

  return function authenticate(ctx) {
    const found = findAccessToken(ctx, web);
    if (found === undefined) throw missing();
    // A cookie is an ambient credential: any site can make the browser send it, so prove intent.
    if (found.source === 'cookie' && csrf && isUnsafeMethod(ctx.method))
      checkCsrf(ctx, web, 'session');
    const { token } = found;
    return { token, user: reader.readToken(token, read) };
  };
}
