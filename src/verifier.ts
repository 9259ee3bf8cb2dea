import type { Middleware } from 'koa';
import {
  type ResolvedVerifierOptions,
  resolveVerifierOptions,
  type VerifierOptions,
} from './config/verifier.js';
import {
  AuthConfigError,
  AuthError,
  JwksUnavailableError,
  UnknownKeyError,
  UnsupportedError,
} from './errors.js';
import { Emitter } from './events.js';
import { createVerifyRing, type KeyRing } from './keys/key-ring.js';
import { type JwksRefresh, RemoteKeySet } from './keys/remote-jwks.js';
import type { MiddlewareHost } from './middleware/authenticate.js';
import { createGetData, isMiddlewareCall } from './middleware/get-data.js';
import { createGetToken } from './middleware/get-token.js';
import { realmOnRejection } from './middleware/render-error.js';
import { createRequireAuth } from './middleware/require-auth.js';
import type { AuthenticatedState, AuthMiddlewareOptions, AuthState } from './middleware/state.js';
import { STRATEGY_HELPERS, type StrategyHelper, type TokenReader } from './strategies/types.js';
import type { AuthUser } from './tokens/claims.js';
import { otherStrategy, TokenService } from './tokens/token-service.js';

/** Events of a verifier: each JWKS load, and each failed one (the last good keys stay in use). */
export interface VerifierEventMap {
  jwks_refresh: JwksRefresh;
  /** `unreachable`: the host did not answer (refused, reset, timed out, 5xx, 408, 429), not a wrong JWKS. */
  jwks_error: { error: Error; unreachable: boolean };
}
export type VerifierEventName = keyof VerifierEventMap;

/** The auth service's helpers, which a verifier cannot perform: each rejects with `strategy_unsupported`. */
type RefusedHelpers = { readonly [H in StrategyHelper]: (...args: unknown[]) => Promise<never> };

/** A base class whose helper methods all refuse, built from the one list of strategy helpers. */
function refusingHelpers(): new () => RefusedHelpers {
  const Refusing = class {};
  for (const helper of STRATEGY_HELPERS) {
    Object.defineProperty(Refusing.prototype, helper, {
      configurable: true,
      writable: true,
      value: async () => {
        throw new UnsupportedError(
          'jwks',
          helper,
          'a verifier only checks access tokens against the JWKS; call it on the auth service',
        );
      },
    });
  }
  return Refusing as new () => RefusedHelpers;
}

/**
 * Verifies access tokens issued by another service, with the public keys that service publishes
 * at its JWKS endpoint. It holds no private key and no session store: it cannot log users in,
 * refresh or revoke; those helpers reject with `strategy_unsupported`. Create it with {@link createVerifier}.
 */
export class Verifier extends refusingHelpers() implements TokenReader {
  private readonly options: ResolvedVerifierOptions;
  private readonly remote: RemoteKeySet;
  private readonly host: MiddlewareHost;
  private tokens: TokenService;
  private readonly events = new Emitter<VerifierEventMap>();
  private readonly firstLoad: Promise<boolean>;
  /** Why the last JWKS load failed: ready() reports it (its jwks_error event may have had no listener yet). */
  private lastJwksError: VerifierEventMap['jwks_error'] | undefined;

  /** @internal use createVerifier */
  constructor(options: VerifierOptions) {
    super();
    this.options = resolveVerifierOptions(options);
    this.tokens = this.service(createVerifyRing([]));
    this.remote = new RemoteKeySet({
      uri: this.options.uri,
      timeout: this.options.timeoutMs,
      cooldown: this.options.cooldownMs,
      maxAge: this.options.cacheMaxAgeMs,
      algorithms: this.options.algorithms,
      onKeys: (ring, report) => {
        this.tokens = this.service(ring);
        this.events.emit('jwks_refresh', report);
      },
      onError: (error, unreachable) => {
        this.lastJwksError = { error, unreachable };
        this.events.emit('jwks_error', this.lastJwksError);
      },
    });
    // The middlewares read every token through this verifier: there are no strategies to pick.
    this.host = { options: this.options.shared, tokenReader: () => this };
    // Load the keys now, so the first request does not wait; failures are reported, never thrown.
    this.firstLoad = this.remote.refresh();
  }

  private service(ring: KeyRing): TokenService {
    // TTLs only matter for signing, which a verifier never does.
    return new TokenService({
      ...this.options.shared,
      ring,
      accessTokenTtl: 1,
      refreshTokenTtl: 2,
    });
  }

  /**
   * Verifies an access token; rejects only with AuthError (with the verifier's `realm` in its
   * challenge, as the middlewares answer). A known `kid` is checked at once; an unknown one
   * triggers at most one JWKS fetch per `cooldown` (shared by every request waiting).
   */
  verify(token: string): Promise<AuthUser> {
    return realmOnRejection(() => this.check(token), this.options.shared.realm);
  }

  /** The {@link TokenReader} view of {@link verify}: a verifier has no sessions to check. */
  readToken(token: string): Promise<AuthUser> {
    // The middlewares add the realm themselves, when they refuse.
    return this.check(token);
  }

  private async check(token: string): Promise<AuthUser> {
    const tokens = this.tokens;
    if (this.remote.stale) void this.remote.refresh();
    try {
      return this.ofStrategy(tokens.verify(token, 'access'));
    } catch (error) {
      if (!(error instanceof UnknownKeyError)) throw error;
    }
    await this.remote.refresh();
    if (this.tokens === tokens) throw new UnknownKeyError();
    return this.ofStrategy(this.tokens.verify(token, 'access'));
  }

  /** `user`, when its token's strategy is one the `strategies` option accepts. */
  private ofStrategy(user: AuthUser): AuthUser {
    const { strategies } = this.options;
    if (strategies !== undefined && !strategies.has(user.stg ?? '')) throw otherStrategy();
    return user;
  }

  /**
   * Resolves once the first JWKS load succeeded; rejects with the reason when it failed (the
   * verifier keeps trying on later requests). Optional: await it before `listen` to fail fast.
   * A host that did not answer is a {@link JwksUnavailableError} (retry, or start and let later
   * requests load the keys); a JWKS that answered but is wrong is an {@link AuthConfigError}.
   */
  async ready(): Promise<void> {
    if (await this.firstLoad) return;
    if (this.remote.stale) {
      const last = this.lastJwksError;
      const reason = last ? `: ${last.error.message}` : '';
      const after =
        '(the verifier keeps trying on later requests; each failure is a jwks_error event)';
      if (last?.unreachable)
        throw new JwksUnavailableError(`the JWKS host did not answer${reason} ${after}`, {
          cause: last.error,
        });
      throw new AuthConfigError('jwksUri', `the JWKS could not be loaded${reason} ${after}`, {
        cause: last?.error,
      });
    }
  }

  /** How many JWKS fetches this verifier started. */
  get jwksFetches(): number {
    return this.remote.fetches;
  }

  on<E extends VerifierEventName>(
    event: E,
    listener: (payload: VerifierEventMap[E]) => void,
  ): this {
    this.events.on(event, listener);
    return this;
  }

  off<E extends VerifierEventName>(
    event: E,
    listener: (payload: VerifierEventMap[E]) => void,
  ): this {
    this.events.off(event, listener);
    return this;
  }

  /** Puts the request's raw token on `ctx.state.token` when present. Never fails. */
  getToken(): Middleware<AuthState> {
    // A verifier's options are createAuth's defaults: the Authorization header only.
    return createGetToken(this.options.shared.web);
  }

  /**
   * With a token: its data, as {@link verify} gives it (`token_missing` for `undefined` or `null`,
   * a header that was not there), as `auth.getData(token)` does. With no argument, or with
   * middleware options: optional auth, setting `ctx.state.user` for a valid access token, else
   * leaving it undefined. Never fails.
   */
  getData(token: string | undefined): Promise<AuthUser>;
  getData(options?: Omit<AuthMiddlewareOptions, 'strategy'>): Middleware<AuthState>;
  getData(...args: unknown[]): Promise<AuthUser> | Middleware<AuthState> {
    const [arg, extra] = args;
    if (extra !== undefined)
      return Promise.reject(
        new TypeError(
          'koa-jwt-redis: verifier.getData takes a token, or middleware options, alone (a verifier has no strategies to choose)',
        ),
      );
    if (isMiddlewareCall(args.length, arg))
      return createGetData(this.host, {
        checkSession: false,
        ...(arg as Omit<AuthMiddlewareOptions, 'strategy'> | undefined),
      });
    if (arg === undefined || arg === null)
      return realmOnRejection(async () => {
        throw new AuthError('token_missing', 'No token was given.');
      }, this.options.shared.realm);
    return this.verify(arg as string);
  }

  /** 401 unless the request carries a valid access token signed by a key of the JWKS. */
  requireAuth(options?: Omit<AuthMiddlewareOptions, 'strategy'>): Middleware<AuthenticatedState> {
    return createRequireAuth(this.host, { checkSession: false, ...options });
  }
}

/**
 * Creates a verifier for a service that accepts access tokens but does not issue them: keys come
 * from the auth service's JWKS (`auth.jwks()`), cached, refetched on an unknown `kid` at most once
 * per `cooldown`, and kept when the JWKS host is down. It does not become the default instance.
 * @example
 * const verifier = createVerifier({ jwksUri: 'https://auth.example.com/.well-known/jwks.json', issuer: 'https://auth.example.com' });
 * router.use(verifier.requireAuth());
 */
export function createVerifier(options: VerifierOptions): Verifier {
  return new Verifier(options);
}
