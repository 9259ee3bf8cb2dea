import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type { ResolvedOptions } from './config/options.js';
import { misspelt, onlyKnown } from './config/validate.js';
import { type TokenSource, usesCookies } from './config/web.js';
import { debug, describeError } from './debug.js';
import { AuthConfigError, AuthError, UnsupportedError } from './errors.js';
import type { AuthEvents } from './events.js';
import { TokenCookies } from './middleware/cookies.js';
import {
  bearerToken,
  findAccessToken,
  hasBearerHeader,
  readCookie,
} from './middleware/credentials.js';
import { checkCsrf, checkOrigin, isUnsafeMethod } from './middleware/csrf.js';
import { asAuthError, withRealm, writeAuthError } from './middleware/render-error.js';
import type { AuthenticatedState, AuthMiddlewareOptions } from './middleware/state.js';
import { COOKIE_PATH, mountedBase, PREFIX } from './router/mount-path.js';
import {
  bodyRefreshToken,
  jsonBodyParser,
  jsonOnly,
  requireLoginBody,
} from './router/request-body.js';
import type { StrategyRegistry } from './strategies/registry.js';
import type { SessionInfo, StrategyChoice, TokenStrategy } from './strategies/types.js';
import { cleanMeta } from './stores/record-codec.js';
import type { AuthUser, TokenPair, TokenUser } from './tokens/claims.js';
import { type IssueOptions, type RefreshOptions, requestMeta } from './tokens/issue.js';
import type { TokenService } from './tokens/token-service.js';

/** What the routes need from an Auth instance: its options, strategies, helpers and requireAuth. */
export interface RouterHost {
  readonly options: ResolvedOptions;
  readonly strategies: StrategyRegistry;
  /** The instance's audit events: the router emits `login_failed`. */
  readonly events: AuthEvents;
  requireAuth(options?: AuthMiddlewareOptions): Middleware<AuthenticatedState>;
  generateTokens(user: TokenUser, options?: IssueOptions & StrategyChoice): Promise<TokenPair>;
  refreshTokens(token: string, options?: RefreshOptions & StrategyChoice): Promise<TokenPair>;
  invalidateRefreshToken(token: string, options?: StrategyChoice): Promise<void>;
  revokeAllSessions(userId: string | number, options?: StrategyChoice): Promise<number>;
  listSessions(userId: string | number, options?: StrategyChoice): Promise<SessionInfo[]>;
  revokeSession(
    userId: string | number,
    sessionId: string,
    options?: StrategyChoice,
  ): Promise<boolean>;
}

/**
 * The Koa context the routes' hooks are given, with the request's parsed JSON body on
 * `ctx.request.body`: typed `unknown` here, so an app that does not import koa-body itself (whose
 * types add `body` to every Koa request, as `any`) compiles the same.
 */
export type RouteContext = Context & { request: { body?: unknown } };

/**
 * A hook to slow down password guessing on `POST /login`. Keep the counters where you like
 * (Redis, memory); the router only asks and reports.
 */
export interface LoginRateLimiter {
  /**
   * Called before the credentials are checked. Return a number of seconds to refuse the attempt
   * with 429 `rate_limited` and that `Retry-After`; return 0 or nothing to let it through.
   */
  check(ctx: RouteContext): number | void | Promise<number | void>;
  /** Called after each checked attempt with its outcome, e.g. to count failures per ip and username. */
  record?(ctx: RouteContext, outcome: 'success' | 'failure'): void | Promise<void>;
}

/** The longest `Retry-After` sent, in seconds (a year); a longer wait refuses without one. */
const LONGEST_RETRY_AFTER = 365 * 24 * 3600;

/**
 * What `rateLimit.check` answered, as whole seconds to wait (Infinity: refused, with no time to
 * say), or undefined to let the attempt through: nothing, 0 or a negative number (Redis's `TTL`
 * of a missing key is -2). Anything else is a broken limiter, which must not let a login through
 * unchecked: a string (`redis.get` answers one) or NaN is an error the app sees (a 500 whose log
 * says what `check` returned).
 */
function retryAfter(wait: unknown): number | undefined {
  if (wait === undefined || wait === null) return undefined;
  if (typeof wait !== 'number' || Number.isNaN(wait))
    throw new TypeError(
      `koa-jwt-redis: rateLimit.check returned ${typeof wait === 'number' ? 'NaN' : typeof wait === 'object' ? 'an object' : `a ${typeof wait}`}: return a number of seconds to wait (0 or less, or nothing, lets the login through)`,
    );
  if (wait <= 0) return undefined;
  return wait > LONGEST_RETRY_AFTER ? Infinity : Math.ceil(wait);
}

/**
 * A login rate limiter: `check` a function, `record` one when given. Without `record`, a
 * function one letter off it in an object literal (`{ check, recrod }`) is refused: that hook
 * would never run, and a limiter that counts failures in `record` would let every attempt
 * through. A class's members are its own business (TypeScript checks `implements`), and a field
 * such as `records` is no hook.
 */
function checkRateLimiter(rateLimit: LoginRateLimiter): void {
  const shape = 'must be an object with check(ctx) (and optionally record(ctx, outcome))';
  if (rateLimit === null || typeof rateLimit !== 'object' || typeof rateLimit.check !== 'function')
    throw new AuthConfigError('routes.rateLimit', shape);
  if (rateLimit.record !== undefined && typeof rateLimit.record !== 'function')
    throw new AuthConfigError('routes.rateLimit.record', 'must be a function (ctx, outcome)');
  if (rateLimit.record !== undefined || Object.getPrototypeOf(rateLimit) !== Object.prototype)
    return;
  for (const [name, value] of Object.entries(rateLimit)) {
    if (typeof value === 'function' && misspelt(name, ['record']) !== undefined)
      throw new AuthConfigError(
        `routes.rateLimit.${name}`,
        'is not a rate limiter hook, and would never be called: did you mean record?',
      );
  }
}

/** Options of {@link Auth.routes}. */
export interface RoutesOptions {
  /**
   * Checks the credentials in `ctx.request.body` (parsed JSON) and returns the user (with an `id`),
   * or null/undefined when they are wrong. Never say which part was wrong: the router answers 401
   * `invalid_credentials` either way.
   */
  login: (
    ctx: RouteContext,
  ) => TokenUser | null | undefined | Promise<TokenUser | null | undefined>;
  /** Path prefix of every route. @default '/auth' */
  prefix?: string | undefined;
  /** Login attempt rate limiting. */
  rateLimit?: LoginRateLimiter | undefined;
  /**
   * The `Path` of the refresh cookie, as the browser sees the refresh route. By default it is
   * derived per request from the URL the route was reached at, so it stays right when the router
   * is mounted under a parent router's prefix or koa-mount. Set it when a reverse proxy rewrites
   * the path before Koa sees it (e.g. strips `/api`): `refreshCookiePath: '/api/auth/refresh'`.
   * @default derived from the request URL
   */
  refreshCookiePath?: string | undefined;
  /**
   * The strategy every route issues, refreshes, reads and revokes with; tokens of any other
   * strategy are refused. @default the instance's default strategy
   */
  strategy?: string | undefined;
  /**
   * The user id or name a login attempt tried, for the `login_failed` event.
   * @default the body's `username`, `email`, `login` or `id`, whichever comes first
   */
  loginName?: ((ctx: RouteContext) => string | number | undefined) | undefined;
}

/** The user name, email or id a login body carries, as the `login_failed` event reports it. */
function defaultLoginName(ctx: Context): string | number | undefined {
  const body = ctx.request.body as Record<string, unknown> | undefined;
  if (body === null || typeof body !== 'object') return undefined;
  for (const field of ['username', 'email', 'login', 'id']) {
    const value = body[field];
    if (typeof value === 'string' || typeof value === 'number') return value;
  }
  return undefined;
}

/**
 * The claims of the access token a logout names, or undefined when its session is already over.
 * A client without a refresh token here (one of the body, or a browser whose cookies an earlier
 * version set, when the refresh cookie had the refresh route's Path only) names its session by
 * it: an expired one still does. Only the expiry is overlooked
 * (signature, kind and strategy are checked, with the strategy's own keys); all else is refused.
 */
async function loggingOut(
  strategy: TokenStrategy,
  tokens: TokenService,
  token: string,
): Promise<AuthUser | undefined> {
  try {
    // An already-revoked session is already logged out: verify the token, not the session.
    // (An opaque session token cannot be verified without its session: gone means logged out.)
    return await strategy.readToken(token, { checkSession: false });
  } catch (error) {
    if (!(error instanceof AuthError)) throw error;
    if (error.code === 'token_revoked') return undefined;
    if (error.code !== 'token_expired') throw error;
    try {
      return tokens.verifyAccessIgnoringExpiry(token);
    } catch {
      throw error; // not a token of this strategy's keys (an opaque one, a custom strategy's)
    }
  }
}

/** Where a route took what authenticates its request: a token's source, or the body. */
type CredentialSource = TokenSource | 'body';

/** An error of a route, as the JSON answer it gets; undefined for one that is not ours to answer. */
function routeError(error: unknown, realm: string | undefined): AuthError | undefined {
  // A helper the route's strategy lacks (sessions of the stateless `jwt` strategy): 501, as JSON.
  const answer = asAuthError(error);
  return answer && withRealm(answer, realm);
}

function noStore(ctx: Context): void {
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Pragma', 'no-cache');
}

/** Every option of auth.routes(); `satisfies` keeps this list complete. */
const ROUTES_OPTIONS = {
  login: true,
  prefix: true,
  rateLimit: true,
  refreshCookiePath: true,
  strategy: true,
  loginName: true,
} as const satisfies Record<keyof RoutesOptions, true>;

/**
 * Builds the router behind `auth.routes()`: POST login, refresh, logout, logout-all; GET and
 * DELETE sessions. Options are checked here, once.
 */
export function createAuthRouter(auth: RouterHost, options: RoutesOptions): Router {
  if (options !== null && typeof options === 'object')
    onlyKnown('routes', options, Object.keys(ROUTES_OPTIONS));
  if (options === null || typeof options !== 'object' || typeof options.login !== 'function') {
    throw new AuthConfigError(
      'routes.login',
      'auth.routes({ login }) needs `login: (ctx) => user | null`, your credential check',
    );
  }
  const prefix = options.prefix ?? '/auth';
  if (typeof prefix !== 'string' || !PREFIX.test(prefix)) {
    throw new AuthConfigError(
      'routes.prefix',
      'must be a path like "/auth" (or "" for the root), without a trailing slash',
    );
  }
  const { rateLimit } = options;
  if (rateLimit !== undefined) checkRateLimiter(rateLimit);

  const strategyName = options.strategy ?? auth.strategies.defaultStrategyName;
  if (!auth.strategies.names().includes(strategyName)) {
    throw new AuthConfigError(
      'routes.strategy',
      `must name a registered strategy: ${auth.strategies.names().join(', ')}`,
    );
  }
  const strategy = auth.strategies.get(strategyName);
  const tokens = auth.strategies.tokensFor(strategyName);
  const chosen = { strategy: strategyName };
  const loginName = options.loginName ?? defaultLoginName;
  if (typeof loginName !== 'function')
    throw new AuthConfigError(
      'routes.loginName',
      'must be a function (ctx) => the id or name tried',
    );

  /** Reports a refused login: who was tried, from where, and why (brute force shows up here). */
  function loginFailed(ctx: Context, reason: 'invalid_credentials' | 'rate_limited'): void {
    // The raw user agent, as every audit event reports it (sessions store only a device label).
    const meta = requestMeta({ ctx });
    let name: unknown;
    try {
      name = loginName(ctx);
    } catch {
      name = undefined;
    }
    auth.events.emit('login_failed', {
      reason,
      ...(name === undefined ? {} : { name: cleanMeta(String(name), 256, true) }),
      ...(meta.ip ? { ip: meta.ip } : {}),
      ...(meta.userAgent ? { userAgent: meta.userAgent } : {}),
    });
  }

  const { web } = auth.options;
  const cookieMode = usesCookies(web);
  const configuredPath = options.refreshCookiePath;
  if (
    configuredPath !== undefined &&
    (typeof configuredPath !== 'string' || !COOKIE_PATH.test(configuredPath))
  ) {
    throw new AuthConfigError(
      'routes.refreshCookiePath',
      'must be a URL path like "/api/auth/refresh" (no `;`, spaces or query)',
    );
  }
  /** Where the browser will post to refresh: derived from this request's URL unless configured. */
  const refreshPathOf = (ctx: Context, depth: number): string => {
    if (configuredPath !== undefined) return configuredPath;
    const base = mountedBase(ctx, depth);
    return base === undefined ? `${prefix}/refresh` : `${base}/refresh`;
  };
  /**
   * The Paths the refresh cookie is set at: the refresh route's, and beside it the logout
   * route's (a configured path that does not end in /refresh has no known neighbour). A browser
   * drops the access cookie when its token expires; logout then has the refresh token to end the
   * session by, instead of a 401 that left it alive in the store.
   */
  const refreshPathsOf = (ctx: Context, depth: number): string[] => {
    const refresh = refreshPathOf(ctx, depth);
    return refresh.endsWith('/refresh')
      ? [refresh, `${refresh.slice(0, -'/refresh'.length)}/logout`]
      : [refresh];
  };
  const cookies = new TokenCookies(web, auth.options.refreshTokenTtl);
  // State-changing routes below always demand CSRF proof for cookie-authenticated requests.
  const authenticated = auth.requireAuth({ csrf: true, strategy: strategyName });

  /**
   * CSRF for routes that do not go through requireAuth, by where the route took what
   * authenticates the request (its Origin has been checked already: renderErrors). A cookie
   * always needs the double-submit proof. The bearer header needs none: a cross-site page cannot
   * make the browser add it. The body (a login's credentials, a refresh token) is no session yet,
   * but gets one's cookies: it needs the CSRF header or an Authorization header (which a
   * cross-site form cannot add either), though that header authenticates nothing here.
   */
  function guard(ctx: Context, from: CredentialSource): void {
    if (!cookieMode || from === 'header') return;
    if (from === 'cookie') checkCsrf(ctx, web, 'session');
    else if (!hasBearerHeader(ctx)) checkCsrf(ctx, web, 'pre-session');
  }

  function deliver(ctx: Context, pair: TokenPair, rotateCsrf: boolean): void {
    noStore(ctx);
    if (cookieMode) cookies.set(ctx, pair, refreshPathsOf(ctx, 1), rotateCsrf);
    ctx.body =
      web.tokenDelivery === 'cookie' ? { token_type: 'cookie', expires_in: pair.expires_in } : pair;
  }

  const jsonBody = jsonBodyParser();
  const router = new Router<AuthenticatedState>({ prefix });

  const renderErrors: Middleware = async (ctx, next) => {
    try {
      // A foreign Origin is refused before anything else, whatever credentials it carries, a
      // bearer header included: these routes set or clear the session cookies, and a page of
      // another site that CORS lets send the header could put its own session in the browser
      // (or end the user's). Native clients send no Origin.
      if (cookieMode && isUnsafeMethod(ctx.method)) checkOrigin(ctx, web);
      await next();
      debug.routes('%s %s → %d', ctx.method, ctx.path, ctx.status);
    } catch (error) {
      const failure = routeError(error, auth.options.realm);
      if (failure === undefined) throw error;
      debug.routes('%s %s → %d %s', ctx.method, ctx.path, failure.status, describeError(failure));
      writeAuthError(ctx, failure);
    }
  };
  // On each route rather than router.use(): a router-level middleware breaks @koa/router's
  // nesting under a parent prefix with parameters ('/tenants/:tenant').

  router.post('/login', renderErrors, jsonOnly, jsonBody, async (ctx) => {
    guard(ctx, 'body');
    requireLoginBody(ctx);
    if (rateLimit) {
      const wait = retryAfter(await rateLimit.check(ctx));
      if (wait !== undefined) {
        loginFailed(ctx, 'rate_limited');
        throw new AuthError('rate_limited', 'Too many login attempts; try again later.', {
          headers:
            wait === Infinity
              ? { 'Cache-Control': 'no-store' }
              : { 'Retry-After': String(wait), 'Cache-Control': 'no-store' },
        });
      }
    }
    const user = await options.login(ctx);
    await rateLimit?.record?.(ctx, user ? 'success' : 'failure');
    if (!user) {
      loginFailed(ctx, 'invalid_credentials');
      throw new AuthError('invalid_credentials', 'The credentials are not valid.');
    }
    deliver(ctx, await auth.generateTokens(user, { ctx, ...chosen }), true);
  });

  router.post('/refresh', renderErrors, jsonOnly, jsonBody, async (ctx) => {
    let token = bodyRefreshToken(ctx);
    let from: CredentialSource = 'body';
    if (token === undefined && cookieMode) {
      token = readCookie(ctx, web.cookies.names.refresh);
      from = 'cookie';
    }
    // `Authorization: Bearer <refresh_token>`, as FastAuth's refresh route takes it; after the
    // cookie, so a browser that sends its access token in the header still refreshes by cookie.
    if (token === undefined) {
      token = bearerToken(ctx);
      from = 'header';
    }
    if (token === undefined) {
      throw new AuthError(
        'token_missing',
        cookieMode
          ? 'No refresh cookie: log in again.'
          : 'Send { "refresh_token": "…" } or Authorization: Bearer <refresh_token>.',
      );
    }
    guard(ctx, from);
    let pair: TokenPair;
    try {
      pair = await auth.refreshTokens(token, { ctx, ...chosen });
    } catch (error) {
      // A dead refresh cookie is useless to the browser: drop the cookies so the page shows the login.
      if (from === 'cookie' && error instanceof AuthError && error.status === 401)
        cookies.clear(ctx, refreshPathsOf(ctx, 1));
      throw error;
    }
    deliver(ctx, pair, false);
  });

  /** Ends the session a logout request names; `proof.held` once its CSRF proof has held. */
  async function logOut(ctx: Context, proof: { held: boolean }): Promise<void> {
    const bodyToken = bodyRefreshToken(ctx);
    if (bodyToken !== undefined) {
      guard(ctx, 'body');
      proof.held = true;
      await auth.invalidateRefreshToken(bodyToken, chosen);
      return;
    }
    const found = findAccessToken(ctx, web);
    // A bearer header (where tokenSources reads it first) authenticates the request as it is,
    // with no proof: its session is the one to end, not the cookies' (which a 401 of it leaves).
    if (found?.source === 'header') {
      await endSessionOf(found.token);
      return;
    }
    // A browser: the refresh cookie (set at this route's Path too, so it is here when the access
    // cookie has run out) and the access cookie, each ending its session.
    const cookieToken = cookieMode ? readCookie(ctx, web.cookies.names.refresh) : undefined;
    if (cookieToken === undefined && found === undefined) {
      // Nothing to end; the cookies are still cleared for a page of this origin (only script on
      // it can add the CSRF header to a request).
      proof.held = !cookieMode || ctx.get(web.csrf.header) !== '';
      throw new AuthError('token_missing', 'Send { "refresh_token": "…" } or an access token.');
    }
    guard(ctx, 'cookie');
    proof.held = true;
    // Both when both are here: a refresh cookie that a deploy or a rollback left at this Path may
    // name a session that is already over, and the access cookie the live one. A 401 of one
    // (a forged or foreign token) stands only if the other ended nothing either.
    let ended = false;
    let refused: AuthError | undefined;
    for (const [end, token] of [
      [(t: string) => auth.invalidateRefreshToken(t, chosen), cookieToken],
      [endSessionOf, found?.token],
    ] as const) {
      if (token === undefined) continue;
      try {
        await end(token);
        ended = true;
      } catch (error) {
        if (!(error instanceof AuthError) || error.status !== 401) throw error;
        refused ??= error;
      }
    }
    if (!ended && refused !== undefined) throw refused;
  }

  /** Ends the session an access token names (an expired one too: see loggingOut). */
  async function endSessionOf(token: string): Promise<void> {
    const user = await loggingOut(strategy, tokens, token);
    if (user?.sid === undefined) return;
    try {
      await auth.revokeSession(user.sub, user.sid, chosen);
    } catch (error) {
      // A stateless strategy keeps no session to end: logging out is forgetting the tokens.
      if (!(error instanceof UnsupportedError)) throw error;
    }
  }

  router.post('/logout', renderErrors, jsonOnly, jsonBody, async (ctx) => {
    const proof = { held: false };
    try {
      await logOut(ctx, proof);
    } catch (error) {
      // Cookies that cannot log out cannot do anything else either: drop them, so the page shows
      // the login. Only once the CSRF proof held: a cross-site request clears nothing.
      if (cookieMode && proof.held && error instanceof AuthError && error.status === 401)
        cookies.clear(ctx, refreshPathsOf(ctx, 1));
      throw error;
    }
    if (cookieMode) cookies.clear(ctx, refreshPathsOf(ctx, 1));
    noStore(ctx);
    ctx.status = 204;
  });

  router.post('/logout-all', renderErrors, jsonOnly, jsonBody, authenticated, async (ctx) => {
    const given = (ctx.request.body as { keep_current?: unknown } | undefined)?.keep_current;
    // A "true" or 1 read as false would end the very session the caller meant to keep.
    if (given !== undefined && typeof given !== 'boolean')
      throw new AuthError('invalid_request', '`keep_current` must be true or false.');
    const keepCurrent = given === true;
    const { sub, sid } = ctx.state.user;
    let revoked: number;
    if (keepCurrent && sid !== undefined) {
      // "Log out other devices": every session but the caller's.
      const others = (await auth.listSessions(sub, chosen)).filter((s) => s.sessionId !== sid);
      const results = await Promise.all(
        others.map((s) => auth.revokeSession(sub, s.sessionId, chosen)),
      );
      revoked = results.filter(Boolean).length;
    } else {
      revoked = await auth.revokeAllSessions(sub, chosen);
      if (cookieMode) cookies.clear(ctx, refreshPathsOf(ctx, 1));
    }
    noStore(ctx);
    ctx.body = { revoked };
  });

  router.get('/sessions', renderErrors, authenticated, async (ctx) => {
    const { sub, sid } = ctx.state.user;
    const sessions = await auth.listSessions(sub, chosen);
    noStore(ctx);
    ctx.body = sessions.map((s) => ({ ...s, current: s.sessionId === sid }));
  });

  router.delete('/sessions/:id', renderErrors, authenticated, async (ctx) => {
    const { sub, sid } = ctx.state.user;
    const id = ctx.params.id ?? '';
    // Another user's session id finds nothing under the caller's own key: 404, never a hint it exists.
    if (!(await auth.revokeSession(sub, id, chosen)))
      throw new AuthError('session_not_found', 'No such session.');
    if (cookieMode && id === sid) cookies.clear(ctx, refreshPathsOf(ctx, 2));
    noStore(ctx);
    ctx.status = 204;
  });

  return router;
}
