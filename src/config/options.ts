import { AuthConfigError } from '../errors.js';
import type { KeyConfig, KeyMaterial } from '../keys/key-ring.js';
import type { SessionCacheOptions } from '../stores/session-cache.js';
import type { MasterLeaseOptions } from '../stores/master-lease.js';
import { isPrototypeKey, RESERVED_CLAIMS, type TokenUser } from '../tokens/claims.js';
import {
  isOneOrMore,
  keyPrefixOption,
  onlyKnown,
  optionalString,
  shown,
  stripUndefined,
  wholeNumber,
} from './validate.js';
import {
  type CookieOptions,
  type CsrfOptions,
  type TokenDelivery,
  type TokenSource,
  type WebOptions,
  resolveWebOptions,
} from './web.js';
import type { RedisOption } from '../stores/redis-connection.js';
import type { SessionStore } from '../stores/session-store.js';

/** Options of {@link createAuth}. Everything is validated once, when the instance is created. */
export interface AuthOptions {
  /** HS256 secret, at least 32 bytes. Give this or `keys`. */
  secret?: KeyMaterial | undefined;
  /** A key ring: the first key that can sign signs; every key verifies. Give this or `secret`. */
  keys?: KeyConfig[] | undefined;
  /**
   * Where sessions live: a `redis://`/`rediss://` URL, connection options (ioredis options for
   * one node, e.g. `{ host, port, tls }`; `{ sentinels, name }` for Sentinel; `{ cluster: [nodes],
   * ...clusterOptions }` for a Cluster), from which the library creates and owns a client set up
   * for failovers; or your own ioredis `Redis` or `Cluster` instance. Left out (and no `store`):
   * an in-memory store (one process only; warns once under NODE_ENV=production).
   */
  redis?: RedisOption | undefined;
  /**
   * Replicas that must confirm (Redis `WAIT`, within `storeTimeout`) every write that starts,
   * rotates or ends a session before it counts; unconfirmed, the request answers 503, so a
   * failover can never undo a logout, rotation or revocation that was answered as done. With
   * several replicas, 1 does not survive a network split that leaves the master one of them
   * (that one confirms, another is promoted); the number of replicas does.
   * @default 1 with Sentinel or a Cluster with replicas, 0 otherwise
   */
  waitForReplicas?: number | undefined;
  /**
   * The session store, any implementation of {@link SessionStore}: `redisStore(…)`,
   * `postgresStore(…)`, `memoryStore()` or your own. Give this or `redis`, not both.
   */
  store?: SessionStore | undefined;
  /**
   * The strategy the middlewares and helpers use when none is named: `'redis'` (JWT access
   * tokens, refresh tokens recorded in the store), `'jwt'` (stateless) or `'session'` (opaque
   * session tokens checked in the store on every request). @default 'redis'
   */
  strategy?: 'redis' | 'jwt' | 'session' | undefined;
  /**
   * `session` strategy: seconds a session may sit unused before it ends. Use slides it (at most
   * one store write per session per `min(sessionIdleTtl / 10, 60 s)`), up to the absolute cap:
   * `absoluteSessionTtl` after login, or `refreshTokenTtl` if shorter. @default 86400
   */
  sessionIdleTtl?: number | undefined;
  /** Access token lifetime in seconds. @default 900 */
  accessTokenTtl?: number | undefined;
  /** Refresh token lifetime in seconds: the session's idle timeout; each refresh starts it anew. @default 2592000 */
  refreshTokenTtl?: number | undefined;
  /**
   * Absolute session lifetime in seconds, counted from the login (`auth_time`): no refresh
   * extends a session past it, whatever `refreshTokenTtl` says. @default 2592000 (30 days)
   */
  absoluteSessionTtl?: number | undefined;
  /** `iss` claim: set on issued tokens and required on verified ones. */
  issuer?: string | undefined;
  /** `aud` claim: set on issued tokens; a verified token must name one of them. */
  audience?: string | string[] | undefined;
  /** Clock skew tolerated for `exp`, `nbf` and `iat`, in seconds. @default 5 */
  leeway?: number | undefined;
  /** User properties copied into the access token at login. @default [] */
  userFields?: string[] | undefined;
  /** Prefix of every Redis key. @default 'auth:' */
  keyPrefix?: string | undefined;
  /** Whether `requireAuth`/`getData` check that the session is still live. @default true */
  checkSession?: boolean | undefined;
  /** Longest wait for the session store, in ms; past it the request gets 503. @default 1000 */
  storeTimeout?: number | undefined;
  /**
   * Opt-in, with `redis`: session liveness kept in process and kept coherent by Redis, so the
   * session check of `requireAuth()` needs no round trip for a session seen before, yet a
   * revocation on any instance is seen by all within milliseconds. See `redisStore`'s option.
   * @default false
   */
  sessionCache?: boolean | SessionCacheOptions | undefined;
  /**
   * Opt-in, with `redis` on Sentinel: reads trust the master only while enough sentinels vouch
   * for it, so an app cut off with an old master answers 503 rather than accept a session ended
   * on the other side of the split. See `redisStore`'s option. @default false
   */
  masterLease?: boolean | MasterLeaseOptions | undefined;
  /**
   * Opt-in, with `redis`: users' sessions share this many Redis hashes instead of one hash per
   * user, for about 85 bytes of Redis per session instead of 200 when users have one each (170
   * instead of 260 with `recordFormat: 'text'`).
   * See `redisStore`'s option for sizing. @default 0 (a hash per user)
   */
  keyBuckets?: number | undefined;
  /**
   * With `redis`: how new sessions are recorded. `'binary'` keeps a one-session user under 200
   * bytes of Redis; `'text'` is the record of versions before 0.2, for a rolling upgrade from
   * them. See `redisStore`'s option. @default 'binary'
   */
  recordFormat?: 'binary' | 'text' | undefined;
  /**
   * Seconds after a rotation during which the previous refresh token is answered with working
   * tokens of the same session (the live refresh-token id, a fresh access token) instead of
   * revoking the session: two tabs refreshing at once. Past it, the previous token is reuse and
   * ends the session. 0 is strict reuse detection.
   * @default 10
   */
  refreshGracePeriod?: number | undefined;
  /**
   * Live sessions kept per user; a login past it ends the user's other sessions that expire first
   * (never its own). 0 for no cap. @default 100
   */
  maxSessionsPerUser?: number | undefined;
  /**
   * Called on every refresh to reload the user (fresh `userFields`); return null to refuse the
   * refresh and end the session (deleted or disabled users).
   */
  loadUser?:
    | ((userId: string) => TokenUser | null | undefined | Promise<TokenUser | null | undefined>)
    | undefined;
  /** `realm` parameter of `WWW-Authenticate`. */
  realm?: string | undefined;
  /**
   * How `auth.routes()` hands out tokens: `'json'` (the pair in the body), `'cookie'` (HttpOnly
   * cookies, with CSRF protection) or `'both'`. @default 'json'
   */
  tokenDelivery?: TokenDelivery | undefined;
  /** Where the middlewares look for the access token, in order. @default ['header'] in json mode, ['header', 'cookie'] otherwise */
  tokenSources?: TokenSource[] | undefined;
  /** Cookie attributes and names for cookie delivery. @default { secure: true, sameSite: 'lax', prefix: true } */
  cookies?: CookieOptions | undefined;
  /** CSRF protection for cookie delivery. @default { header: 'x-csrf-token', allowedOrigins: [], requireAuth: true } */
  csrf?: CsrfOptions | undefined;
  /**
   * Access tokens remembered after a successful verification (least recently used go first), so
   * a token seen again skips the signature and claims checks; each entry is dropped at the
   * token's `exp`. The session check still runs on every request. 0 turns the cache off.
   * @default 10000
   */
  verifyCacheSize?: number | undefined;
}

export const DEFAULTS = {
  strategy: 'redis',
  sessionIdleTtl: 86_400,
  accessTokenTtl: 900,
  refreshTokenTtl: 2_592_000,
  absoluteSessionTtl: 2_592_000,
  leeway: 5,
  userFields: [] as readonly string[],
  keyPrefix: 'auth:',
  checkSession: true,
  storeTimeout: 1000,
  refreshGracePeriod: 10,
  maxSessionsPerUser: 100,
  verifyCacheSize: 10_000,
} as const;

export interface ResolvedOptions {
  strategy: 'redis' | 'jwt' | 'session';
  sessionIdleTtl: number;
  accessTokenTtl: number;
  refreshTokenTtl: number;
  absoluteSessionTtl: number;
  issuer: string | undefined;
  audience: string | string[] | undefined;
  leeway: number;
  userFields: readonly string[];
  keyPrefix: string;
  checkSession: boolean;
  storeTimeout: number;
  refreshGracePeriod: number;
  maxSessionsPerUser: number;
  /** Undefined: the Redis store decides by topology (1 with Sentinel, else 0). */
  waitForReplicas: number | undefined;
  loadUser: AuthOptions['loadUser'];
  realm: string | undefined;
  /** Cookie delivery and CSRF settings. */
  web: WebOptions;
  verifyCacheSize: number;
}

/**
 * Every option of createAuth, each marked true: `satisfies` makes the compiler refuse this list
 * when an option is added to AuthOptions and not here, so no option escapes validation.
 */
const KNOWN = {
  secret: true,
  keys: true,
  redis: true,
  waitForReplicas: true,
  store: true,
  strategy: true,
  sessionIdleTtl: true,
  accessTokenTtl: true,
  refreshTokenTtl: true,
  absoluteSessionTtl: true,
  issuer: true,
  audience: true,
  leeway: true,
  userFields: true,
  keyPrefix: true,
  checkSession: true,
  storeTimeout: true,
  sessionCache: true,
  masterLease: true,
  keyBuckets: true,
  recordFormat: true,
  refreshGracePeriod: true,
  maxSessionsPerUser: true,
  loadUser: true,
  realm: true,
  tokenDelivery: true,
  tokenSources: true,
  cookies: true,
  csrf: true,
  verifyCacheSize: true,
} as const satisfies Record<keyof AuthOptions, true>;

/** Validates every option but the keys and the store (their own modules check those). */
export function resolveOptions(options: AuthOptions): ResolvedOptions {
  // An array is no options object: createAuth([]) named `keys`, and createAuth([{ … }]) option `0`.
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new AuthConfigError(
      'options',
      'createAuth needs an options object, e.g. createAuth({ secret: process.env.JWT_SECRET })',
    );
  }
  if (Object.hasOwn(options, 'jwksUri')) {
    throw new AuthConfigError(
      'jwksUri',
      'belongs to createVerifier({ jwksUri, issuer, audience }), which verifies tokens from another service’s JWKS; createAuth issues tokens with its own keys',
    );
  }
  onlyKnown('', options, Object.keys(KNOWN));
  const merged = { ...DEFAULTS, ...stripUndefined(options) };
  const accessTokenTtl = wholeNumber('accessTokenTtl', merged.accessTokenTtl, 1, 86_400);
  const refreshTokenTtl = wholeNumber('refreshTokenTtl', merged.refreshTokenTtl, 1, 31_536_000);
  if (refreshTokenTtl <= accessTokenTtl) {
    throw new AuthConfigError(
      'refreshTokenTtl',
      `must be longer than accessTokenTtl (${accessTokenTtl} s)`,
    );
  }
  const absoluteSessionTtl = wholeNumber(
    'absoluteSessionTtl',
    merged.absoluteSessionTtl,
    1,
    31_536_000,
  );
  if (absoluteSessionTtl <= accessTokenTtl) {
    throw new AuthConfigError(
      'absoluteSessionTtl',
      `must be longer than accessTokenTtl (${accessTokenTtl} s)`,
    );
  }
  const audience = merged.audience;
  if (audience !== undefined) {
    if (!isOneOrMore(audience)) {
      throw new AuthConfigError(
        'audience',
        'must be a non-empty string or a non-empty list of them',
      );
    }
  }
  const userFields = merged.userFields;
  if (
    !Array.isArray(userFields) ||
    !userFields.every((f) => typeof f === 'string' && f.length > 0)
  ) {
    throw new AuthConfigError('userFields', 'must be an array of property names, e.g. ["role"]');
  }
  for (const field of userFields) {
    if (RESERVED_CLAIMS.has(field) || field === 'id') {
      throw new AuthConfigError(
        'userFields',
        `"${field}" is a claim the library sets itself; leave it out`,
      );
    }
    if (isPrototypeKey(field))
      throw new AuthConfigError(
        'userFields',
        `"${field}" cannot be a claim name (jsonwebtoken cannot sign it)`,
      );
  }
  keyPrefixOption(merged.keyPrefix);
  if (typeof merged.checkSession !== 'boolean')
    throw new AuthConfigError('checkSession', 'must be true or false');
  if (merged.loadUser !== undefined && typeof merged.loadUser !== 'function') {
    throw new AuthConfigError('loadUser', 'must be a function (userId) => user | null');
  }
  const realm = optionalString('realm', merged.realm);
  // It goes into the WWW-Authenticate header as a quoted string: printable ASCII, no quote or
  // backslash (Node refuses to send other characters, and would fail the request).
  if (realm !== undefined && !/^[\x20\x21\x23-\x5b\x5d-\x7e]*$/.test(realm)) {
    throw new AuthConfigError(
      'realm',
      'must be printable ASCII without quotes or backslashes (it is sent in the WWW-Authenticate header)',
    );
  }
  const strategy = merged.strategy;
  if (strategy !== 'redis' && strategy !== 'jwt' && strategy !== 'session') {
    throw new AuthConfigError(
      'strategy',
      `must be 'redis', 'jwt' or 'session' (got ${shown(strategy)}); register your own with auth.strategies.register(name, strategy).setDefault(name)`,
    );
  }
  const sessionIdleTtl = wholeNumber('sessionIdleTtl', merged.sessionIdleTtl, 1, 31_536_000);
  return {
    strategy,
    sessionIdleTtl,
    accessTokenTtl,
    refreshTokenTtl,
    absoluteSessionTtl,
    issuer: optionalString('issuer', merged.issuer),
    audience,
    leeway: wholeNumber('leeway', merged.leeway, 0, 300),
    userFields: [...userFields],
    keyPrefix: merged.keyPrefix,
    checkSession: merged.checkSession,
    storeTimeout: wholeNumber('storeTimeout', merged.storeTimeout, 10, 60_000),
    refreshGracePeriod: wholeNumber('refreshGracePeriod', merged.refreshGracePeriod, 0, 300),
    maxSessionsPerUser: wholeNumber('maxSessionsPerUser', merged.maxSessionsPerUser, 0, 100_000),
    waitForReplicas:
      merged.waitForReplicas === undefined
        ? undefined
        : wholeNumber('waitForReplicas', merged.waitForReplicas, 0, 16),
    loadUser: merged.loadUser,
    realm,
    web: resolveWebOptions(merged),
    verifyCacheSize: wholeNumber('verifyCacheSize', merged.verifyCacheSize, 0, 1_000_000),
  };
}
