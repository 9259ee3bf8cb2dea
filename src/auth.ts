import type { Middleware } from 'koa';
import { type AuthOptions, type ResolvedOptions, resolveOptions } from './config/options.js';
import { helperOptions, warn } from './config/validate.js';
import { createStore } from './config/store.js';
import { debug, describeError } from './debug.js';
import { AuthError, storeUnavailable, UnsupportedError } from './errors.js';
import {
  type AuthEventListener,
  type AuthEventMap,
  type AuthEventName,
  Emitter,
} from './events.js';
import type { PublicJwk } from './keys/jwk.js';
import { createKeyRing, publicJwks } from './keys/key-ring.js';
import type { MiddlewareHost } from './middleware/authenticate.js';
import { type AuthorizeRule, createAuthorize } from './middleware/authorization.js';
import { createGetData, isMiddlewareCall } from './middleware/get-data.js';
import { createGetToken } from './middleware/get-token.js';
import { createJwksMiddleware, type JwksOptions } from './middleware/jwks.js';
import { realmOnRejection } from './middleware/render-error.js';
import { createRequireAuth } from './middleware/require-auth.js';
import type { AuthenticatedState, AuthMiddlewareOptions, AuthState } from './middleware/state.js';
import { createOpenApiDocument, type OpenApiOptions } from './openapi.js';
import type { OpenApiDocument } from './openapi/types.js';
import { createAuthRouter, type RoutesOptions } from './router.js';
import { jwtStrategy } from './strategies/jwt.js';
import { redisStrategy } from './strategies/redis.js';
import { sessionStrategy } from './strategies/session.js';
import { StrategyRegistry } from './strategies/registry.js';
import {
  type Holding,
  type ReadOptions,
  reuseOf,
  reusable,
  type SessionInfo,
  type StrategyChoice,
  type StrategyContext,
  type StrategyHelper,
  type TokenStrategy,
  type WriteOptions,
} from './strategies/types.js';
import { bounded } from './stores/bounded.js';
import type { SessionStore } from './stores/session-store.js';
import type { AuthUser, TokenPair, TokenUser } from './tokens/claims.js';
import {
  ISSUE_OPTION_NAMES,
  type IssueOptions,
  REFRESH_OPTION_NAMES,
  type RefreshOptions,
  WRITE_OPTION_NAMES,
} from './tokens/issue.js';
import { TokenService } from './tokens/token-service.js';
import { COMPATIBLE_VERSIONS } from './version.js';

/** Helpers that act on refresh tokens and sessions, per strategy (generateTokens has a fallback). */
type Helper = Exclude<StrategyHelper, 'generateTokens'>;

/**
 * One configured authentication setup: keys, session store, strategies, middlewares and helpers.
 * Create it with {@link createAuth}.
 */
export class Auth {
  readonly strategies: StrategyRegistry;
  readonly options: Readonly<ResolvedOptions>;
  private readonly store: SessionStore;
  /** @internal the router emits `login_failed` through it */
  readonly events = new Emitter<AuthEventMap>();
  /** The public keys, built once at creation (asymmetric keys only, never a private part). */
  private readonly publicKeys: { keys: PublicJwk[] };
  /** What the middlewares read tokens through. */
  private readonly host: MiddlewareHost;

  /** @internal use createAuth */
  constructor(options: AuthOptions) {
    this.options = Object.freeze(resolveOptions(options));
    const ring = createKeyRing({ secret: options.secret, keys: options.keys });
    const tokens = new TokenService({ ring, ...this.options });
    this.publicKeys = publicJwks(ring);
    this.store = createStore(options, this.options);
    const context: StrategyContext = {
      tokens,
      store: this.store,
      options: this.options,
      events: this.events,
    };
    this.logSetup(ring.keys, (options.store ?? this.store).constructor?.name ?? 'Object');
    this.strategies = new StrategyRegistry(context);
    try {
      this.strategies
        .register('redis', redisStrategy)
        .register('jwt', jwtStrategy)
        .register('session', sessionStrategy)
        .setDefault(this.options.strategy);
    } catch (error) {
      // A strategy's own options are checked as it registers, after the store was made: the
      // caller gets no instance to close, so a store of ours (its connections) is closed here.
      if (options.store === undefined) this.store.close().catch(() => {});
      throw error;
    }
    const { strategies } = this;
    // The default strategy may change after a middleware is made, so it is looked up per request.
    const defaultReader = reusable(
      {
        readToken: (token: string, read: ReadOptions) =>
          strategies.get(strategies.defaultStrategyName).readToken(token, read),
      },
      {
        limit: this.options.verifyCacheSize,
        check(user, read, now) {
          const name = strategies.defaultStrategyName;
          const reuse = reuseOf(strategies.get(name));
          const holding = reuse && reuse.limit > 0 ? reuse.check(user, read, now) : undefined;
          return holding && new WhileDefault(strategies, name, holding);
        },
      },
    );
    this.host = {
      options: this.options,
      tokenReader: (name) => (name === undefined ? defaultReader : strategies.get(name)),
    };
  }

  /** Debug output of the setup, and of every audit event: ids and codes, never a token or a key. */
  private logSetup(
    keys: readonly { kid: string; algorithm: string; verifyOnly: boolean }[],
    storeName: string,
  ): void {
    const { web } = this.options;
    debug.config(
      'created: store %s, delivery %s, access %ds, refresh %ds, keys %s',
      storeName,
      web.tokenDelivery,
      this.options.accessTokenTtl,
      this.options.refreshTokenTtl,
      keys.map((k) => `${k.kid} (${k.algorithm}${k.verifyOnly ? ', verify only' : ''})`).join(', '),
    );
    const events = this.events;
    events.on('login', (e) => debug.events('login: user %s, session %s', e.userId, e.sessionId));
    events.on('refresh', (e) =>
      debug.events('refresh: user %s, session %s', e.userId, e.sessionId),
    );
    events.on('logout', (e) => debug.events('logout: user %s, session %s', e.userId, e.sessionId));
    events.on('revoke_all', (e) =>
      debug.events('revoke_all: user %s, %d sessions', e.userId, e.count),
    );
    events.on('refresh_reused', (e) =>
      debug.events('refresh_reused: user %s, session %s revoked', e.userId, e.sessionId),
    );
    events.on('store_unavailable', (e) =>
      debug.store('%s failed: %s', e.operation, describeError(e.error)),
    );
  }

  private helper<H extends Helper>(
    name: H,
    options: StrategyChoice | undefined,
    known: readonly string[] = ['strategy'],
  ): NonNullable<TokenStrategy[H]> {
    helperOptions(name, options, known);
    const strategyKey = this.strategyNameOf(options);
    const strategy = this.strategies.get(strategyKey);
    const fn = strategy[name];
    if (typeof fn !== 'function')
      throw new UnsupportedError(
        strategyKey,
        name,
        'the strategy does not implement it (one that keeps no sessions, as "jwt", has no session helpers; use "redis" or "session")',
      );
    if (this.options.realm === undefined) return fn.bind(strategy) as NonNullable<TokenStrategy[H]>;
    return ((...args: unknown[]) =>
      this.realmed(() =>
        (fn as (...args: unknown[]) => unknown).apply(strategy, args),
      )) as NonNullable<TokenStrategy[H]>;
  }

  /** The strategy a helper's options choose, else the default one. */
  private strategyOf(choice: StrategyChoice | undefined): TokenStrategy {
    return this.strategies.get(this.strategyNameOf(choice));
  }

  /** The strategy name a helper's options give; only one left out means the default (`null` is refused by get). */
  private strategyNameOf(choice: StrategyChoice | undefined): string {
    const name = choice?.strategy;
    return name === undefined ? this.strategies.defaultStrategyName : name;
  }

  /**
   * Runs a helper's work, putting the instance's realm into the challenge of a 401 it rejects
   * with, so that authErrors() (which knows no instance) renders it as the middlewares and routes
   * do. Without a realm, the work's own promise (nothing added to a login's path). Never throws:
   * a synchronous throw of `work` is a rejection, as it is with a realm.
   */
  private realmed<T>(work: () => T | PromiseLike<T>): Promise<T> {
    const { realm } = this.options;
    if (realm === undefined) {
      try {
        return Promise.resolve(work());
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return realmOnRejection(work, realm);
  }

  /** Subscribes to an audit event (`login`, `login_failed`, `refresh`, `logout`, `revoke_all`, `refresh_reused`, `store_unavailable`). */
  on<E extends AuthEventName>(event: E, listener: AuthEventListener<E>): this {
    this.events.on(event, listener);
    return this;
  }

  off<E extends AuthEventName>(event: E, listener: AuthEventListener<E>): this {
    this.events.off(event, listener);
    return this;
  }

  /**
   * Logs a user in: starts a session and returns `{ access_token, refresh_token, token_type, expires_in }`.
   * Pass `{ ctx }` to record the user agent and ip shown by `listSessions`.
   * @example ctx.body = await auth.generateTokens(user, { ctx });
   */
  async generateTokens(
    user: TokenUser,
    options?: IssueOptions & StrategyChoice,
  ): Promise<TokenPair> {
    helperOptions('generateTokens', options, ISSUE_OPTION_NAMES);
    const strategy = this.strategyOf(options);
    const generate = strategy.generateTokens;
    if (generate) return this.realmed(() => generate.call(strategy, user, options));
    // A minimal custom strategy: compose the pair from writeToken, the refresh token first. A login
    // fails whole: when the access token cannot be written, the refresh token just written is
    // ended (where the strategy can end one) rather than left as a session nobody holds.
    return this.realmed(async (): Promise<TokenPair> => {
      const refresh = await strategy.writeToken(user, 'refresh', options);
      let access: string;
      try {
        access = await strategy.writeToken(user, 'access', options);
      } catch (error) {
        try {
          // Bounded as a store call is: an end that never comes must not hold the login's answer.
          const ending = strategy.invalidateRefreshToken?.(refresh);
          if (ending !== undefined)
            await bounded(
              Promise.resolve(ending),
              this.options.storeTimeout,
              "the strategy's invalidateRefreshToken",
            );
        } catch (undo) {
          // The login's own error is the one to report; the session left behind is said once.
          warn(
            'KOA_JWT_REDIS_HALF_LOGIN',
            `a login failed after its refresh token was written, and ending that token failed too (${(undo as Error)?.message ?? String(undo)}): the session may stay until it expires`,
          );
        }
        throw error;
      }
      return {
        access_token: access,
        refresh_token: refresh,
        token_type: 'bearer',
        expires_in: this.options.accessTokenTtl,
      };
    });
  }

  /**
   * True only when the refresh token is genuine, unexpired, a refresh token of the strategy
   * (`options.strategy`, else the default one), and its UUID is live.
   */
  async checkRefreshToken(token: string, options?: StrategyChoice): Promise<boolean> {
    return this.helper('checkRefreshToken', options)(token);
  }

  /**
   * Rotates a refresh token: the old one stops working and a new pair of the same strategy is
   * returned. A token of another strategy than `options.strategy` (else the default) is refused.
   */
  async refreshTokens(
    token: string,
    options?: RefreshOptions & StrategyChoice,
  ): Promise<TokenPair> {
    return this.helper('refreshTokens', options, REFRESH_OPTION_NAMES)(token, options);
  }

  /** Logs out the session the refresh token belongs to. Idempotent. */
  async invalidateRefreshToken(token: string, options?: StrategyChoice): Promise<void> {
    return this.helper('invalidateRefreshToken', options)(token);
  }

  /** Ends every session of the user; returns how many were live. */
  async revokeAllSessions(userId: string | number, options?: StrategyChoice): Promise<number> {
    return this.helper('revokeAllSessions', options)(userId);
  }

  /** The user's live sessions, oldest first. */
  async listSessions(userId: string | number, options?: StrategyChoice): Promise<SessionInfo[]> {
    return this.helper('listSessions', options)(userId);
  }

  /** Ends one session of the user; false when it was not theirs or not live. */
  async revokeSession(
    userId: string | number,
    sessionId: string,
    options?: StrategyChoice,
  ): Promise<boolean> {
    return this.helper('revokeSession', options)(userId, sessionId);
  }

  /** Puts the request's raw token on `ctx.state.token` when present. Never fails. */
  getToken(): Middleware<AuthState> {
    return createGetToken(this.options.web);
  }

  /**
   * With a token string: resolves to its data after exactly the checks `requireAuth()` makes
   * (signature, claims, kind, and the session unless `checkSession: false`), or rejects with the
   * same AuthError — for tokens that arrive outside a Koa request (a WebSocket, a job).
   * Given `undefined` or `null` (a header that was not there) it rejects with `token_missing`.
   * With no argument, or with middleware options: optional auth middleware that sets
   * `ctx.state.user` for a valid token, else leaves it undefined. Never fails.
   * @example const user = await auth.getData(token);
   */
  getData(token: string | undefined, options?: StrategyChoice): Promise<AuthUser>;
  getData(): Middleware<AuthState>;
  getData(options: AuthMiddlewareOptions): Middleware<AuthState>;
  getData(...args: unknown[]): Promise<AuthUser> | Middleware<AuthState> {
    const [arg, choice] = args;
    if (isMiddlewareCall(args.length, arg))
      return createGetData(this.host, arg as AuthMiddlewareOptions | undefined);
    return this.readData(arg, choice as StrategyChoice | undefined);
  }

  private async readData(token: unknown, choice: StrategyChoice | undefined): Promise<AuthUser> {
    helperOptions('getData', choice, ['strategy']);
    // A token that was not there: never the middleware, a function that would pass for a user.
    if (token === undefined || token === null)
      throw new AuthError('token_missing', 'No token was given.');
    const strategy = this.strategyOf(choice);
    return this.realmed(() =>
      // Anything else that is no string is the strategy's to refuse (token_invalid).
      strategy.readToken(token as string, { checkSession: this.options.checkSession }),
    );
  }

  /**
   * An access token for `user`, accepted by `requireAuth()` with default options. With the
   * default strategy it is bound to a session of its own that ends when the token expires (or
   * with `revokeAllSessions`); it comes without a refresh token.
   * @example const token = await auth.createAccessToken({ id: 5, role: 'admin' }, { lifetime: 300 });
   */
  async createAccessToken(
    user: TokenUser,
    options?: WriteOptions & StrategyChoice,
  ): Promise<string> {
    helperOptions('createAccessToken', options, WRITE_OPTION_NAMES);
    const strategy = this.strategyOf(options);
    return this.realmed(() => strategy.writeToken(user, 'access', options));
  }

  /**
   * A refresh token for `user`: starts a session (recorded before it is returned), which
   * `refreshTokens` turns into a pair and `invalidateRefreshToken` ends.
   * @example const refresh = await auth.createRefreshToken({ id: 5 });
   */
  async createRefreshToken(
    user: TokenUser,
    options?: WriteOptions & StrategyChoice,
  ): Promise<string> {
    helperOptions('createRefreshToken', options, WRITE_OPTION_NAMES);
    const strategy = this.strategyOf(options);
    return this.realmed(() => strategy.writeToken(user, 'refresh', options));
  }

  /** 401 unless a valid access token is present; 503 when the session store cannot answer. */
  requireAuth(options?: AuthMiddlewareOptions): Middleware<AuthenticatedState> {
    return createRequireAuth(this.host, options);
  }

  /**
   * 403 `insufficient_scope` (with an RFC 6750 `WWW-Authenticate` challenge) unless the user that
   * `requireAuth()` put on `ctx.state.user` has the scopes, a role, the claims, or passes the
   * predicate the rule names.
   * @example router.delete('/notes/:id', auth.requireAuth(), auth.authorize({ scope: 'notes:write' }), remove);
   */
  authorize(rule: AuthorizeRule): Middleware<AuthState> {
    return createAuthorize(rule, this.options.realm);
  }

  /**
   * A ready-made @koa/router router: `POST /login` (your `login(ctx)` checks the credentials),
   * `POST /refresh`, `POST /logout`, `POST /logout-all`, `GET /sessions`, `DELETE /sessions/:id`,
   * under `prefix` (default `/auth`). Tokens go out as the instance's `tokenDelivery` says.
   * @example app.use(auth.routes({ login: (ctx) => checkPassword(ctx.request.body) }).routes());
   */
  routes(options: RoutesOptions): ReturnType<typeof createAuthRouter> {
    return createAuthRouter(this, options);
  }

  /**
   * An OpenAPI 3.1 document describing `auth.routes()` for this instance's token delivery (the
   * bearer pair, or cookies with their names and the CSRF header). Give it the same `prefix`.
   * @example router.get('/openapi.json', (ctx) => { ctx.body = auth.openapi({ prefix: '/auth' }); });
   */
  openapi(options?: OpenApiOptions): OpenApiDocument {
    const { web, accessTokenTtl } = this.options;
    const { strategies } = this;
    return createOpenApiDocument(
      {
        web,
        accessTokenTtl,
        strategies: strategies.names(),
        defaultStrategy: strategies.defaultStrategyName,
        supports: (name, helper) => typeof strategies.get(name)[helper] === 'function',
      },
      options,
    );
  }

  /**
   * Serves the public keys as a JWK Set (RFC 7517) on `GET /.well-known/jwks.json`, for verifiers
   * (`createVerifier`, jose, jwks-rsa): RS/PS/ES/EdDSA keys only, verify-only ones included, each with
   * `kid`, `alg` and `use: 'sig'`; `Cache-Control: public, max-age=300` and an ETag.
   * @example app.use(auth.jwks());
   */
  jwks(options?: JwksOptions): Middleware {
    return createJwksMiddleware(this.publicKeys, options);
  }

  /**
   * For readiness probes: resolves when the session store answers (every master of a Cluster),
   * rejects with AuthError `store_unavailable` when it does not within `storeTimeout`.
   * @example router.get('/ready', async (ctx) => { await auth.ping(); ctx.body = 'ok'; });
   */
  async ping(): Promise<void> {
    try {
      await this.store.ping?.();
    } catch (error) {
      debug.store('ping failed: %s', describeError(error));
      throw storeUnavailable(error);
    }
  }

  /**
   * Closes the store: the Redis client or PostgreSQL pool if this instance opened it (from a URL
   * or options), and the connections the library adds beside a client of yours (the session
   * cache's feeds, confirmed writes' own). Call it on shutdown; later calls return the first's
   * promise.
   */
  close(): Promise<void> {
    this.closing ??= Promise.resolve()
      .then(() => this.store.close())
      .then(
        () => {
          if (slot[DEFAULT] === this) slot[DEFAULT] = undefined;
        },
        (error: unknown) => {
          // A failed close may be tried again.
          this.closing = undefined;
          throw error;
        },
      );
    return this.closing;
  }

  private closing: Promise<void> | undefined;
}

/**
 * The default instance, kept on globalThis under a registered symbol so that the package's ESM
 * and CommonJS builds, loaded side by side, share it (see errors.ts, sharedAcrossBuilds); the
 * symbol names the compatible versions, so another version's copy keeps a default of its own.
 */
const DEFAULT = Symbol.for(`koa-jwt-redis@${COMPATIBLE_VERSIONS}.defaultAuth`);
const slot = globalThis as { [DEFAULT]?: Auth | undefined };

/**
 * Creates an Auth instance and makes it the default one that the free functions
 * (`requireAuth()`, `generateTokens()`, …) use. Every option is checked now: a wrong one throws
 * an AuthConfigError that says what to change.
 * @example
 * const auth = createAuth({ secret: process.env.JWT_SECRET!, redis: new Redis(process.env.REDIS_URL!) });
 */
export function createAuth(options: AuthOptions): Auth {
  const auth = new Auth(options);
  slot[DEFAULT] = auth;
  return auth;
}

/** The instance the free functions use: the one most recently created. */
export function defaultAuth(): Auth {
  const current = slot[DEFAULT];
  if (!current) {
    throw new TypeError(
      'koa-jwt-redis: call createAuth({ secret, redis }) before using requireAuth(), generateTokens() or the other helpers',
    );
  }
  return current;
}

/** An answer of the default strategy holds only while that strategy stays the default. */
class WhileDefault implements Holding {
  constructor(
    private readonly strategies: StrategyRegistry,
    private readonly name: string,
    private readonly inner: Holding,
  ) {}

  holds(now: number): boolean {
    return this.strategies.defaultStrategyName === this.name && this.inner.holds(now);
  }
}
