import type { Middleware } from 'koa';
import { AuthConfigError, UnknownKeyError, UnsupportedError } from './errors.js';
import { ALGORITHMS, type Algorithm, isAlgorithm, isSymmetric } from './keys/algorithms.js';
import { createVerifyRing, type KeyRing } from './keys/key-ring.js';
import { type JwksRefresh, RemoteKeySet } from './keys/remote-jwks.js';
import type { MiddlewareHost } from './middleware/authenticate.js';
import { createGetData } from './middleware/get-data.js';
import { createGetToken } from './middleware/get-token.js';
import { createRequireAuth } from './middleware/require-auth.js';
import type { AuthenticatedState, AuthMiddlewareOptions, AuthState } from './middleware/state.js';
import { type ResolvedOptions, resolveOptions } from './options.js';
import { StrategyRegistry } from './strategies/registry.js';
import type { StrategyContext, TokenStrategy } from './strategies/types.js';
import type { AuthUser } from './tokens/claims.js';
import { TokenService } from './tokens/token-service.js';

/** Options of {@link createVerifier}. Everything is validated once, when the verifier is created. */
export interface VerifierOptions {
  /** Where the auth service publishes its keys, e.g. `https://auth.example.com/.well-known/jwks.json`. */
  jwksUri: string | URL;
  /** `iss` every token must carry (the auth service's `issuer`). */
  issuer?: string;
  /** `aud` a token must name (one of the auth service's `audience`). */
  audience?: string | string[];
  /** Clock skew tolerated for `exp`, `nbf` and `iat`, in seconds. @default 5 */
  leeway?: number;
  /** Algorithms accepted from the JWKS; keys with any other `alg` are ignored. @default every asymmetric one */
  algorithms?: Algorithm[];
  /** Seconds after which known keys are refreshed in the background (retired keys disappear). @default 600 */
  cacheMaxAge?: number;
  /**
   * Least seconds between two JWKS fetches, whatever triggers them (an unknown `kid`, stale keys).
   * This is what keeps a flood of made-up `kid`s from hammering the auth service. @default 30
   */
  cooldown?: number;
  /** Longest wait for one JWKS fetch, in ms; on timeout the last good keys stay. @default 2000 */
  timeout?: number;
  /** `realm` parameter of `WWW-Authenticate`. */
  realm?: string;
}

export const VERIFIER_DEFAULTS = {
  leeway: 5,
  cacheMaxAge: 600,
  cooldown: 30,
  timeout: 2000,
} as const;

/** Events of a verifier: each JWKS load, and each failed one (the last good keys stay in use). */
export interface VerifierEventMap {
  jwks_refresh: JwksRefresh;
  jwks_error: { error: Error };
}
export type VerifierEventName = keyof VerifierEventMap;

const KNOWN = new Set([
  'jwksUri',
  'issuer',
  'audience',
  'leeway',
  'algorithms',
  'cacheMaxAge',
  'cooldown',
  'timeout',
  'realm',
]);
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);
let insecureWarned = false;

function wholeNumber(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new AuthConfigError(
      name,
      `must be a whole number from ${min} to ${max} (got ${JSON.stringify(value)})`,
    );
  }
  return value;
}

function jwksUrl(value: unknown): URL {
  let url: URL;
  try {
    url = new URL(value as string);
  } catch {
    throw new AuthConfigError(
      'jwksUri',
      'must be an absolute http(s) URL, e.g. https://auth.example.com/.well-known/jwks.json',
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new AuthConfigError('jwksUri', 'must be an http: or https: URL');
  if (url.username || url.password)
    throw new AuthConfigError('jwksUri', 'must not carry credentials');
  if (url.protocol === 'http:' && !LOOPBACK.has(url.hostname) && !insecureWarned) {
    insecureWarned = true;
    process.emitWarning(
      'koa-jwt-redis: `jwksUri` is plain http: anyone on the network path can substitute keys and forge tokens. Use https.',
      { code: 'KOA_JWT_REDIS_INSECURE_JWKS' },
    );
  }
  return url;
}

/**
 * Verifies access tokens issued by another service, with the public keys that service publishes
 * at its JWKS endpoint. It holds no private key and no session store: it cannot log users in,
 * refresh or revoke; those helpers throw `strategy_unsupported`. Create it with {@link createVerifier}.
 */
export class Verifier {
  private readonly options: Readonly<ResolvedOptions>;
  private readonly remote: RemoteKeySet;
  private readonly host: MiddlewareHost;
  private tokens: TokenService;
  private readonly listeners = new Map<VerifierEventName, Set<(payload: never) => void>>();
  private readonly firstLoad: Promise<boolean>;

  /** @internal use createVerifier */
  constructor(options: VerifierOptions) {
    if (options === null || typeof options !== 'object') {
      throw new AuthConfigError(
        'options',
        'createVerifier needs an options object, e.g. createVerifier({ jwksUri, issuer })',
      );
    }
    for (const name of Object.keys(options)) {
      if (!KNOWN.has(name))
        throw new AuthConfigError(
          name,
          `is not a verifier option; known options: ${[...KNOWN].join(', ')}`,
        );
    }
    if (options.jwksUri === undefined)
      throw new AuthConfigError('jwksUri', 'is required: the URL of the auth service’s JWKS');
    const uri = jwksUrl(options.jwksUri);
    // The shared options (issuer, audience, leeway, realm) get the very checks createAuth gives them.
    this.options = Object.freeze(
      resolveOptions({
        issuer: options.issuer,
        audience: options.audience,
        leeway: options.leeway,
        realm: options.realm,
        checkSession: false,
      }),
    );
    const algorithms = options.algorithms ?? ALGORITHMS.filter((alg) => !isSymmetric(alg));
    if (
      !Array.isArray(algorithms) ||
      algorithms.length === 0 ||
      !algorithms.every((alg) => isAlgorithm(alg) && !isSymmetric(alg))
    ) {
      throw new AuthConfigError(
        'algorithms',
        'must be a non-empty array of RS256, RS384, RS512, PS256, ES256, ES384 (HS keys are never published)',
      );
    }
    const cacheMaxAge = wholeNumber(
      'cacheMaxAge',
      options.cacheMaxAge ?? VERIFIER_DEFAULTS.cacheMaxAge,
      1,
      86_400,
    );
    const cooldown = wholeNumber(
      'cooldown',
      options.cooldown ?? VERIFIER_DEFAULTS.cooldown,
      1,
      3600,
    );
    const timeout = wholeNumber(
      'timeout',
      options.timeout ?? VERIFIER_DEFAULTS.timeout,
      10,
      60_000,
    );
    this.tokens = this.service(createVerifyRing([]));
    this.remote = new RemoteKeySet({
      uri,
      timeout,
      cooldown: cooldown * 1000,
      maxAge: cacheMaxAge * 1000,
      algorithms: new Set(algorithms),
      onKeys: (ring, report) => {
        this.tokens = this.service(ring);
        this.emit('jwks_refresh', report);
      },
      onError: (error) => this.emit('jwks_error', { error }),
    });

    const strategy: TokenStrategy = {
      readToken: (token) => this.verify(token),
      writeToken: () => {
        throw this.unsupported('writeToken');
      },
    };
    // The registry never calls a factory here, so it never reads the context.
    const registry = new StrategyRegistry({} as StrategyContext).register('jwks', strategy);
    this.host = { strategies: registry, options: this.options };
    // Load the keys now, so the first request does not wait; failures are reported, never thrown.
    this.firstLoad = this.remote.refresh();
  }

  private service(ring: KeyRing): TokenService {
    // TTLs only matter for signing, which a verifier never does.
    return new TokenService({ ...this.options, ring, accessTokenTtl: 1, refreshTokenTtl: 2 });
  }

  /**
   * Verifies an access token; rejects only with AuthError. A known `kid` is checked at once; an
   * unknown one triggers at most one JWKS fetch per `cooldown` (shared by every request waiting).
   */
  async verify(token: string): Promise<AuthUser> {
    const tokens = this.tokens;
    if (this.remote.stale) void this.remote.refresh();
    try {
      return tokens.verify(token, 'access');
    } catch (error) {
      if (!(error instanceof UnknownKeyError)) throw error;
    }
    await this.remote.refresh();
    if (this.tokens === tokens) throw new UnknownKeyError();
    return this.tokens.verify(token, 'access');
  }

  /**
   * Resolves once the first JWKS load succeeded; rejects with the reason when it failed (the
   * verifier keeps trying on later requests). Optional: await it before `listen` to fail fast.
   */
  async ready(): Promise<void> {
    if (await this.firstLoad) return;
    if (this.remote.stale)
      throw new Error('koa-jwt-redis: the JWKS could not be loaded; see the jwks_error event');
  }

  /** How many JWKS fetches this verifier started. */
  get jwksFetches(): number {
    return this.remote.fetches;
  }

  on<E extends VerifierEventName>(
    event: E,
    listener: (payload: VerifierEventMap[E]) => void,
  ): this {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as (payload: never) => void);
    return this;
  }

  off<E extends VerifierEventName>(
    event: E,
    listener: (payload: VerifierEventMap[E]) => void,
  ): this {
    this.listeners.get(event)?.delete(listener as (payload: never) => void);
    return this;
  }

  private emit<E extends VerifierEventName>(event: E, payload: VerifierEventMap[E]): void {
    for (const listener of this.listeners.get(event) ?? []) {
      try {
        (listener as (payload: VerifierEventMap[E]) => void)(payload);
      } catch (error) {
        process.emitWarning(`koa-jwt-redis: a "${event}" listener threw: ${String(error)}`);
      }
    }
  }

  /** Puts the request's raw token on `ctx.state.token` when present. Never fails. */
  getToken(): Middleware<AuthState> {
    // A verifier's options are createAuth's defaults: the Authorization header only.
    return createGetToken(this.options.web);
  }

  /** Optional auth: sets `ctx.state.user` for a valid access token, else leaves it undefined. Never fails. */
  getData(options?: Omit<AuthMiddlewareOptions, 'strategy'>): Middleware<AuthState> {
    return createGetData(this.host, { checkSession: false, ...options });
  }

  /** 401 unless the request carries a valid access token signed by a key of the JWKS. */
  requireAuth(options?: Omit<AuthMiddlewareOptions, 'strategy'>): Middleware<AuthenticatedState> {
    return createRequireAuth(this.host, { checkSession: false, ...options });
  }

  /* Helpers of the auth service: a verifier holds no private key and no sessions. */
  private unsupported(helper: string): UnsupportedError {
    return new UnsupportedError(
      'jwks',
      helper,
      'a verifier only checks access tokens against the JWKS; call it on the auth service',
    );
  }

  /** Unsupported: rejects with `strategy_unsupported` (log users in on the auth service). */
  async generateTokens(..._args: unknown[]): Promise<never> {
    throw this.unsupported('generateTokens');
  }

  /** Unsupported: rejects with `strategy_unsupported`. */
  async checkRefreshToken(..._args: unknown[]): Promise<never> {
    throw this.unsupported('checkRefreshToken');
  }

  /** Unsupported: rejects with `strategy_unsupported` (refresh on the auth service). */
  async refreshTokens(..._args: unknown[]): Promise<never> {
    throw this.unsupported('refreshTokens');
  }

  /** Unsupported: rejects with `strategy_unsupported`. */
  async invalidateRefreshToken(..._args: unknown[]): Promise<never> {
    throw this.unsupported('invalidateRefreshToken');
  }

  /** Unsupported: rejects with `strategy_unsupported`. */
  async revokeAllSessions(..._args: unknown[]): Promise<never> {
    throw this.unsupported('revokeAllSessions');
  }

  /** Unsupported: rejects with `strategy_unsupported`. */
  async listSessions(..._args: unknown[]): Promise<never> {
    throw this.unsupported('listSessions');
  }

  /** Unsupported: rejects with `strategy_unsupported`. */
  async revokeSession(..._args: unknown[]): Promise<never> {
    throw this.unsupported('revokeSession');
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
