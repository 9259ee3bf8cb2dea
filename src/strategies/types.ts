import type { ResolvedOptions } from '../config/options.js';
import type { AuthEvents } from '../events.js';
import type { Holding, SessionStore } from '../stores/session-store.js';
import type { AuthUser, TokenKind, TokenPair, TokenUser } from '../tokens/claims.js';
import type { DeviceInfo } from '../tokens/device.js';
import type { IssueOptions, RefreshOptions } from '../tokens/issue.js';
import type { TokenService } from '../tokens/token-service.js';

export type { Holding };

export interface ReadOptions {
  /** Also check that the token's session is still live in the store. */
  checkSession: boolean;
}

export interface WriteOptions extends IssueOptions {
  /**
   * An existing session's id (at most 64 characters): with the `redis` strategy, an access token
   * for that live session; with `jwt`, the tokens' `sid`. Refused by the `session` strategy, and
   * for the `redis` strategy's refresh tokens.
   */
  sessionId?: string | undefined;
  /** This token's lifetime in seconds, instead of `accessTokenTtl` / `refreshTokenTtl`. */
  lifetime?: number | undefined;
  /** This token's `aud`, instead of the instance's `audience`. */
  audience?: string | string[] | undefined;
  /** Extra JWS header parameters; `alg`, `typ`, `kid` and key-locating ones are refused. */
  headers?: Record<string, unknown> | undefined;
}

/**
 * Which registered strategy a helper uses; the default one when left out. Tokens are bound to
 * the strategy that issued them, so a helper refuses another strategy's tokens.
 */
export interface StrategyChoice {
  strategy?: string | undefined;
}

/** One live session, as `listSessions` reports it. */
export interface SessionInfo {
  sessionId: string;
  createdAt: Date;
  lastUsedAt: Date;
  expiresAt: Date;
  /**
   * The device's short label ("Firefox on Linux"), the same as `device.label`. Since 0.2 the
   * session store keeps only the parsed device, not the raw user agent.
   */
  userAgent?: string | undefined;
  /** The device the session was started from, parsed from its user agent at login. */
  device?: DeviceInfo | undefined;
  ip?: string | undefined;
}

/**
 * What the middlewares need from whoever checks tokens: read an access token into its claims,
 * checking the session when asked. Strategies implement it, and so does a verifier, which holds
 * only public keys from a JWKS.
 */
export interface TokenReader {
  /** Verifies an access token and returns its payload; rejects only with AuthError. */
  readToken(token: string, options: ReadOptions): AuthUser | Promise<AuthUser>;
}

/**
 * How a reader's synchronous answers may be reused for repeat requests (the middlewares' answer
 * memo: Authorization header -> token and user). Internal: only the built-in readers have one.
 */
export interface Reuse {
  /** How many answers the memo may keep (the instance's `verifyCacheSize`); 0: none. */
  readonly limit: number;
  /**
   * Called right after `readToken(token, options)` answered `user` synchronously, at `now`: what
   * tells, cheaply enough for every request, that the same answer holds at a later time (the
   * memo itself stops at the token's `exp`); undefined when the answer must be read again.
   */
  check(user: AuthUser, options: ReadOptions, now: number): Holding | undefined;
}

// By identity, never by property: a copy or a wrapper of a built-in strategy (`{ ...strategy,
// readToken }`, Object.create) is another object, gets no memo, and its own checks run on
// every request.
const reuses = new WeakMap<TokenReader, Reuse>();

/** Marks a built-in reader's answers as reusable; returns the reader. */
export function reusable<R extends TokenReader>(reader: R, reuse: Reuse): R {
  reuses.set(reader, reuse);
  return reader;
}

/** How the reader's answers may be reused, if they may. */
export const reuseOf = (reader: TokenReader): Reuse | undefined => reuses.get(reader);

/** For answers that hold until the token expires (no session to check). */
export const untilExpiry: Holding = { holds: () => true };

/**
 * A way of reading and writing tokens. The middlewares need `readToken`; `generateTokens` falls
 * back to `writeToken`; the other helpers are optional and report `strategy_unsupported` when absent.
 */
export interface TokenStrategy extends TokenReader {
  /** Signs (and, for session strategies, records) one token of `kind` for `user`. */
  writeToken(user: TokenUser, kind: TokenKind, options?: WriteOptions): string | Promise<string>;
  generateTokens?(user: TokenUser, options?: IssueOptions): Promise<TokenPair>;
  checkRefreshToken?(token: string): Promise<boolean>;
  refreshTokens?(token: string, options?: RefreshOptions): Promise<TokenPair>;
  invalidateRefreshToken?(token: string): Promise<void>;
  revokeAllSessions?(userId: string | number): Promise<number>;
  listSessions?(userId: string | number): Promise<SessionInfo[]>;
  revokeSession?(userId: string | number, sessionId: string): Promise<boolean>;
}

/** What a strategy factory receives: the instance's keys, store and options, all built once. */
export interface StrategyContext {
  readonly tokens: TokenService;
  readonly store: SessionStore;
  readonly options: ResolvedOptions;
  readonly events: AuthEvents;
}

export type StrategyFactory = (context: StrategyContext) => TokenStrategy;

/** The helpers a strategy may implement beyond reading and writing tokens, as Auth exposes them. */
export const STRATEGY_HELPERS = [
  'generateTokens',
  'checkRefreshToken',
  'refreshTokens',
  'invalidateRefreshToken',
  'revokeAllSessions',
  'listSessions',
  'revokeSession',
] as const satisfies readonly (keyof TokenStrategy)[];

export type StrategyHelper = (typeof STRATEGY_HELPERS)[number];
