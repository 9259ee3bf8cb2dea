/*
 * Type tests of the public API, checked by `npm run test:types` (tsc) against the BUILT package
 * types (dist/index.d.ts), as a user sees them. A change that breaks a user's types fails here.
 * expectTypeOf is expect-type, as vitest ships it.
 */
import Router from '@koa/router';
import Koa, { type Middleware } from 'koa';
import { expectTypeOf } from 'vitest';
import {
  type AccessTokenPayload,
  type Algorithm,
  ALGORITHMS,
  type Auth,
  type AuthOptions,
  type AuthenticatedState,
  AuthConfigError,
  AuthError,
  type AuthErrorCode,
  type AuthMiddlewareOptions,
  type AuthState,
  type AuthUser,
  checkRefreshToken,
  createAccessToken,
  createAuth,
  createRefreshToken,
  createVerifier,
  generateTokens,
  getData,
  getToken,
  invalidateRefreshToken,
  type IssueOptions,
  listSessions,
  type MasterLeaseOptions,
  memoryStore,
  type PostgresSessionStore,
  postgresStore,
  type PublicJwk,
  type RefreshOptions,
  redisStore,
  type RedisStoreConfig,
  refreshTokens,
  requireAuth,
  revokeAllSessions,
  revokeSession,
  type SessionInfo,
  type Holding,
  type SessionStore,
  type TokenPair,
  type TokenReader,
  type TokenStrategy,
  type Verifier,
  type WriteOptions,
} from 'koa-jwt-redis';

// A user's own claims, declared once, as the README shows.
declare module 'koa-jwt-redis' {
  interface UserClaims {
    role: 'admin' | 'member';
  }
}

const auth = createAuth({ secret: 'x'.repeat(32) });
expectTypeOf(auth).toEqualTypeOf<Auth>();

// UserClaims augmentation reaches every user-facing type.
expectTypeOf<AuthUser['role']>().toEqualTypeOf<'admin' | 'member'>();
expectTypeOf<AuthUser['sub']>().toEqualTypeOf<string>();
expectTypeOf<AuthUser['sid']>().toEqualTypeOf<string | undefined>();
expectTypeOf<AuthUser>().toMatchTypeOf<AccessTokenPayload>();

// Helper return types: the free functions and the instance methods agree.
const user = { id: 1, role: 'admin' as const };
expectTypeOf(generateTokens(user)).toEqualTypeOf<Promise<TokenPair>>();
expectTypeOf(
  auth.generateTokens(user, { ctx: undefined, claims: { role: 'admin' } }),
).toEqualTypeOf<Promise<TokenPair>>();
expectTypeOf(refreshTokens('t')).toEqualTypeOf<Promise<TokenPair>>();
expectTypeOf(auth.refreshTokens('t')).toEqualTypeOf<Promise<TokenPair>>();
// A rotation carries the login's claims: refreshTokens takes the request's metadata only.
expectTypeOf<RefreshOptions>().toEqualTypeOf<Omit<IssueOptions, 'claims'>>();
expectTypeOf(auth.refreshTokens('t', { ip: '127.0.0.1', strategy: 'redis' })).toEqualTypeOf<
  Promise<TokenPair>
>();
// @ts-expect-error claims are not an option of refreshTokens
void auth.refreshTokens('t', { claims: { plan: 'pro' } });
// @ts-expect-error claims are not an option of the free refreshTokens either
void refreshTokens('t', { claims: { plan: 'pro' } });
expectTypeOf(checkRefreshToken('t')).toEqualTypeOf<Promise<boolean>>();
expectTypeOf(invalidateRefreshToken('t')).toEqualTypeOf<Promise<void>>();
expectTypeOf(revokeAllSessions(1)).toEqualTypeOf<Promise<number>>();
expectTypeOf(auth.revokeAllSessions('u1')).toEqualTypeOf<Promise<number>>();
expectTypeOf(listSessions(1)).toEqualTypeOf<Promise<SessionInfo[]>>();
expectTypeOf(revokeSession(1, 'sid')).toEqualTypeOf<Promise<boolean>>();
expectTypeOf<TokenPair>().toEqualTypeOf<{
  access_token: string;
  refresh_token: string;
  token_type: 'bearer';
  expires_in: number;
}>();
expectTypeOf<SessionInfo['createdAt']>().toEqualTypeOf<Date>();
// @ts-expect-error a user needs an id
void generateTokens({ name: 'no id' });
// @ts-expect-error user ids are strings or numbers
void revokeAllSessions({ id: 1 });

// Middleware state types: requireAuth guarantees the user, getData does not.
expectTypeOf(requireAuth()).toEqualTypeOf<Middleware<AuthenticatedState>>();
expectTypeOf(auth.requireAuth({ checkSession: false })).toEqualTypeOf<
  Middleware<AuthenticatedState>
>();
expectTypeOf(getData()).toEqualTypeOf<Middleware<AuthState>>();
expectTypeOf(getToken()).toEqualTypeOf<Middleware<AuthState>>();
expectTypeOf<AuthenticatedState['user']>().toEqualTypeOf<AuthUser>();
expectTypeOf<AuthState['user']>().toEqualTypeOf<AuthUser | undefined>();
expectTypeOf<AuthState['authError']>().toEqualTypeOf<AuthError | undefined>();
// @ts-expect-error checkSession is a boolean
void requireAuth({ checkSession: 'yes' });

const router = new Router();
router.get('/me', auth.requireAuth(), (ctx) => {
  expectTypeOf(ctx.state.user.role).toEqualTypeOf<'admin' | 'member'>();
  expectTypeOf(ctx.state.user.sub).toEqualTypeOf<string>();
  expectTypeOf(ctx.state.token).toEqualTypeOf<string>();
});
router.get('/maybe', auth.getData(), (ctx) => {
  expectTypeOf(ctx.state.user).toEqualTypeOf<AuthUser | undefined>();
  // @ts-expect-error the user may be missing after getData
  void ctx.state.user.sub;
});
const app = new Koa<AuthenticatedState>();
app.use(auth.requireAuth());
app.use(auth.routes({ login: () => null, prefix: '/auth' }).routes());
app.use(auth.jwks({ maxAge: 60 }));

// Options are typed: a misspelt or mistyped option is a compile error.
// @ts-expect-error not an option
createAuth({ secret: 'x'.repeat(32), acessTokenTtl: 60 });
// @ts-expect-error a number of seconds
createAuth({ secret: 'x'.repeat(32), accessTokenTtl: '15m' });
createAuth({ keys: [{ algorithm: 'ES256', privateKey: 'pem' }], tokenDelivery: 'cookie' });
// @ts-expect-error not a supported algorithm
createAuth({ keys: [{ algorithm: 'none', secret: 'x' }] });

// Errors: codes are a closed union callers can switch on.
expectTypeOf<AuthError['code']>().toEqualTypeOf<AuthErrorCode>();
expectTypeOf<AuthConfigError['option']>().toEqualTypeOf<string>();
expectTypeOf<'token_expired'>().toMatchTypeOf<AuthErrorCode>();
expectTypeOf<'no_such_code'>().not.toMatchTypeOf<AuthErrorCode>();

// The algorithm table's names.
expectTypeOf<Algorithm>().toEqualTypeOf<
  | 'HS256'
  | 'HS384'
  | 'HS512'
  | 'RS256'
  | 'RS384'
  | 'RS512'
  | 'PS256'
  | 'PS384'
  | 'PS512'
  | 'ES256'
  | 'ES384'
  | 'ES512'
  | 'EdDSA'
>();
// The newer algorithms in every place an algorithm is named: the key ring, the verifier, the JWKS.
createAuth({
  keys: [
    { algorithm: 'EdDSA', privateKey: 'pem' },
    { algorithm: 'ES512', publicKey: 'pem', verifyOnly: true },
  ],
});
createVerifier({
  jwksUri: 'https://auth.example.com/jwks',
  algorithms: ['EdDSA', 'PS384', 'PS512', 'ES512'],
});
expectTypeOf<PublicJwk['kty']>().toEqualTypeOf<'RSA' | 'EC' | 'OKP'>();
// @ts-expect-error 'Ed25519' is a JWK curve, not the JWS algorithm name (EdDSA)
createAuth({ keys: [{ algorithm: 'Ed25519', privateKey: 'pem' }] });
expectTypeOf(ALGORITHMS).toEqualTypeOf<readonly Algorithm[]>();

// Token readers: strategies and verifiers serve the middlewares alike.
expectTypeOf<TokenStrategy>().toMatchTypeOf<TokenReader>();
expectTypeOf<Verifier>().toMatchTypeOf<TokenReader>();
const verifier = createVerifier({ jwksUri: 'https://auth.example.com/.well-known/jwks.json' });
expectTypeOf(verifier.verify('t')).toEqualTypeOf<Promise<AuthUser>>();
expectTypeOf(verifier.requireAuth()).toEqualTypeOf<Middleware<AuthenticatedState>>();
expectTypeOf(verifier.listSessions).returns.toEqualTypeOf<Promise<never>>();
verifier.on('jwks_refresh', (report) => expectTypeOf(report.kids).toEqualTypeOf<string[]>());

// A store is the SessionStore interface: its method names are part of the API (optional ones may be added).
expectTypeOf<
  'create' | 'rotate' | 'get' | 'isLive' | 'revoke' | 'revokeAll' | 'list' | 'close'
>().toMatchTypeOf<keyof SessionStore>();
expectTypeOf<SessionStore['isLive']>().toEqualTypeOf<
  (userId: string, sessionId: string, now: number) => Promise<boolean>
>();
// A store with a liveness cache tells the answer memo, per cached answer, whether it still holds.
expectTypeOf<ReturnType<NonNullable<SessionStore['livenessCheck']>>>().toEqualTypeOf<
  Holding | undefined
>();
expectTypeOf<Holding['holds']>().toEqualTypeOf<(now: number) => boolean>();

// Built-in stores and the store option; the PostgreSQL store adds its schema management.
expectTypeOf(memoryStore()).toEqualTypeOf<SessionStore>();
// @ts-expect-error memoryStore takes no options (at run time an AuthConfigError).
memoryStore({ ttl: 60 });
expectTypeOf(
  redisStore('redis://127.0.0.1:6379', { keyPrefix: 'a:', timeout: 500 }),
).toEqualTypeOf<SessionStore>();
// The shared layout: a number of hashes, on the store and on createAuth with `redis`.
expectTypeOf<RedisStoreConfig['keyBuckets']>().toEqualTypeOf<number | undefined>();
expectTypeOf<AuthOptions['keyBuckets']>().toEqualTypeOf<number | undefined>();
expectTypeOf<RedisStoreConfig['recordFormat']>().toEqualTypeOf<'binary' | 'text' | undefined>();
expectTypeOf<AuthOptions['recordFormat']>().toEqualTypeOf<'binary' | 'text' | undefined>();
// The Sentinel read lease: on or off, or its interval; on the store and on createAuth alike.
expectTypeOf<RedisStoreConfig['masterLease']>().toEqualTypeOf<
  boolean | MasterLeaseOptions | undefined
>();
expectTypeOf<AuthOptions['masterLease']>().toEqualTypeOf<
  boolean | MasterLeaseOptions | undefined
>();
expectTypeOf<MasterLeaseOptions>().toEqualTypeOf<{ interval?: number }>();
const pgStore = postgresStore('postgres://postgres@127.0.0.1/test', { schema: 's', table: 't' });
expectTypeOf(pgStore).toEqualTypeOf<PostgresSessionStore>();
expectTypeOf(pgStore.migrate()).toEqualTypeOf<Promise<void>>();
expectTypeOf(pgStore.migrationSql()).toEqualTypeOf<string>();
expectTypeOf(pgStore).toMatchTypeOf<SessionStore>();
createAuth({ secret: 'x'.repeat(32), store: pgStore, strategy: 'session', sessionIdleTtl: 3600 });
// @ts-expect-error not a built-in strategy
createAuth({ secret: 'x'.repeat(32), strategy: 'database' });
// @ts-expect-error a store is a SessionStore
createAuth({ secret: 'x'.repeat(32), store: 'redis://127.0.0.1' });

// The reference designs' helpers: create…Token, getData(token) beside getData() the middleware.
expectTypeOf(createAccessToken(user)).toEqualTypeOf<Promise<string>>();
expectTypeOf(auth.createAccessToken(user, { lifetime: 60, audience: 'a' })).toEqualTypeOf<
  Promise<string>
>();
expectTypeOf(createRefreshToken(user, { headers: { 'x-k': 1 } })).toEqualTypeOf<Promise<string>>();
expectTypeOf(getData('token')).toEqualTypeOf<Promise<AuthUser>>();
expectTypeOf(auth.getData('token')).toEqualTypeOf<Promise<AuthUser>>();
expectTypeOf(auth.getData({ checkSession: false })).toEqualTypeOf<Middleware<AuthState>>();
// A header that may be missing is a token that may be missing: the data (token_missing), never
// the middleware, which would pass for a user.
declare const maybe: string | undefined;
expectTypeOf(auth.getData(maybe)).toEqualTypeOf<Promise<AuthUser>>();
expectTypeOf(getData(maybe)).toEqualTypeOf<Promise<AuthUser>>();
expectTypeOf(auth.getData()).toEqualTypeOf<Middleware<AuthState>>();
// Options that may be undefined are refused: undefined is a missing token at run time.
declare const maybeOptions: AuthMiddlewareOptions | undefined;
// @ts-expect-error give options, or call getData() without any
auth.getData(maybeOptions);
expectTypeOf<WriteOptions['lifetime']>().toEqualTypeOf<number | undefined>();
expectTypeOf<WriteOptions['audience']>().toEqualTypeOf<string | string[] | undefined>();
expectTypeOf(
  auth.strategies.get('redis').writeToken(user, 'access', { claims: { a: 1 } }),
).toEqualTypeOf<string | Promise<string>>();
// @ts-expect-error a lifetime is a number of seconds
void createAccessToken(user, { lifetime: '5m' });

// Audit events carry typed payloads.
auth.on('refresh_reused', (event) => {
  expectTypeOf(event.userId).toEqualTypeOf<string>();
  expectTypeOf(event.sessionId).toEqualTypeOf<string>();
});
// @ts-expect-error not an event
auth.on('logged_in', () => {});
