import type { Context } from 'koa';
import { AuthConfigError, AuthError } from '../errors.js';
import type { ResolvedOptions } from '../config/options.js';
import { bool, onlyKnown, plainObject } from '../config/validate.js';
import { type ReadOptions, reuseOf, type TokenReader } from '../strategies/types.js';
import { memoFor } from './answer-memo.js';
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
  factory: 'requireAuth' | 'getData' = 'requireAuth',
): Authenticate {
  const given = plainObject(factory, options) as AuthMiddlewareOptions;
  onlyKnown(factory, given, Object.keys(MIDDLEWARE_OPTIONS));
  const name = given.strategy;
  const checkSession = bool(
    `${factory}.checkSession`,
    given.checkSession,
    host.options.checkSession,
  );
  const csrf = bool(`${factory}.csrf`, given.csrf, host.options.web.csrf.requireAuth);
  const { web } = host.options;
  let reader: TokenReader;
  try {
    reader = host.tokenReader(name);
  } catch (error) {
    // A strategy name the instance does not have, found as the app starts: a start-up error.
    if (name === undefined) throw error;
    throw new AuthConfigError(
      `${factory}.strategy`,
      (error as Error).message.replace(/^koa-jwt-redis: /, ''),
    );
  }
  const read: ReadOptions = { checkSession };
  // Repeat requests with the same Authorization header: answered from the memo while the reader
  // says its answer holds. Only when the header is the first place a token is looked for.
  const reuse = reuseOf(reader);
  const memo =
    reuse !== undefined && reuse.limit > 0 && web.tokenSources[0] === 'header'
      ? memoFor(reader, checkSession, reuse.limit)
      : undefined;

  return function authenticate(ctx) {
    const header = memo === undefined ? undefined : ctx.headers.authorization;
    const now = header === undefined ? 0 : Date.now();
    if (header !== undefined) {
      const known = memo!.get(header, now);
      if (known !== undefined) return known;
    }
    const found = findAccessToken(ctx, web);
    if (found === undefined) throw missing();
    // A cookie is an ambient credential: any site can make the browser send it, so prove intent.
    if (found.source === 'cookie' && csrf && isUnsafeMethod(ctx.method))
      checkCsrf(ctx, web, 'session');
    const { token } = found;
    const user = reader.readToken(token, read);
    // Only the plain form "Bearer <token>": padding cannot make an entry larger than its token.
    if (
      header !== undefined &&
      found.source === 'header' &&
      header.length === token.length + 7 &&
      !(user instanceof Promise) &&
      memo!.admit()
    ) {
      const holding = reuse!.check(user, read, now);
      if (holding !== undefined) memo!.remember(header, token, user, holding, now);
    }
    return { token, user };
  };
}
