export { Auth, createAuth } from './auth.js';
export {
  authorize,
  checkRefreshToken,
  createAccessToken,
  createRefreshToken,
  generateTokens,
  getData,
  getToken,
  invalidateRefreshToken,
  listSessions,
  refreshTokens,
  requireAuth,
  revokeAllSessions,
  revokeSession,
  strategies,
} from './default-helpers.js';
export { AuthConfigError, AuthError, JwksUnavailableError, UnsupportedError } from './errors.js';
export { authErrors } from './middleware/render-error.js';
export { StrategyRegistry } from './strategies/registry.js';
export { koaJwtStrategy } from './strategies/koa-jwt.js';
export { ALGORITHMS } from './keys/algorithms.js';
export { createVerifier, Verifier } from './verifier.js';
export { memoryStore } from './stores/memory-store.js';
export { redisStore } from './stores/redis-store.js';
export { postgresStore } from './stores/postgres-store.js';
export { postgresMigrationSql } from './stores/postgres-schema.js';

export type { AuthErrorCode } from './errors.js';
export type { AuthEventListener, AuthEventMap, AuthEventName } from './events.js';
export type { Algorithm } from './keys/algorithms.js';
export type { KeyConfig, KeyMaterial } from './keys/key-ring.js';
export type { PublicJwk } from './keys/jwk.js';
export type { JwksRefresh } from './keys/remote-jwks.js';
export type { JwksOptions } from './middleware/jwks.js';
export type { VerifierEventMap, VerifierEventName } from './verifier.js';
export type { VerifierOptions } from './config/verifier.js';
export type { AuthenticatedState, AuthMiddlewareOptions, AuthState } from './middleware/state.js';
export type {
  AuthorizePredicate,
  AuthorizeRequirements,
  AuthorizeRule,
  ClaimRequirements,
} from './middleware/authorization.js';
export type { AuthOptions } from './config/options.js';
export type { CookieOptions, CsrfOptions, TokenDelivery, TokenSource } from './config/web.js';
export type { LoginRateLimiter, RouteContext, RoutesOptions } from './router.js';
export type { KoaJwtStrategyOptions, LegacyAlgorithm } from './strategies/koa-jwt.js';
export type { OpenApiOptions } from './openapi.js';
export type { JsonValue, OpenApiDocument } from './openapi/types.js';
export type {
  ReadOptions,
  SessionInfo,
  StrategyChoice,
  StrategyContext,
  StrategyFactory,
  TokenReader,
  TokenStrategy,
  WriteOptions,
} from './strategies/types.js';
export type { IssueOptions, RefreshOptions } from './tokens/issue.js';
export type {
  Holding,
  NewSession,
  Rotation,
  RotationResult,
  SessionRecord,
  SessionStore,
} from './stores/session-store.js';
export type { RedisClient } from './stores/redis-store.js';
export type { RedisStoreConfig } from './stores/redis-store-config.js';
export type { MasterLeaseOptions } from './stores/master-lease.js';
export type { PostgresSessionStore, PostgresStoreOptions } from './stores/postgres-store.js';
export type { PostgresConnection } from './stores/postgres-connection.js';
export type {
  ClusterConnectionOptions,
  RedisConnectionOptions,
  RedisOption,
} from './stores/redis-connection.js';
export type {
  AccessTokenPayload,
  AuthUser,
  RefreshTokenPayload,
  TokenKind,
  TokenPair,
  TokenUser,
  UserClaims,
} from './tokens/claims.js';
import type { TokenService as TokenServiceClass } from './tokens/token-service.js';
/**
 * What a strategy's `context.tokens` is (signs and verifies with the key ring). A type only: the
 * class is internal, and an alias keeps its declaration from reading as a runtime export.
 */
export type TokenService = TokenServiceClass;
export type { DeviceInfo, DeviceType } from './tokens/device.js';
