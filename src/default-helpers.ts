import type { Middleware } from 'koa';
import { defaultAuth } from './auth.js';
import type { AuthorizeRule } from './middleware/authorization.js';
import type { AuthenticatedState, AuthMiddlewareOptions, AuthState } from './middleware/state.js';
import type { StrategyRegistry } from './strategies/registry.js';
import type {
  SessionInfo,
  StrategyChoice,
  StrategyFactory,
  TokenStrategy,
  WriteOptions,
} from './strategies/types.js';
import type { AuthUser, TokenPair, TokenUser } from './tokens/claims.js';
import type { IssueOptions, RefreshOptions } from './tokens/issue.js';

/* The helpers as free functions bound to the default instance (the last one createAuth made). */

export const generateTokens = (
  user: TokenUser,
  options?: IssueOptions & StrategyChoice,
): Promise<TokenPair> => defaultAuth().generateTokens(user, options);
export const checkRefreshToken = (token: string, options?: StrategyChoice): Promise<boolean> =>
  defaultAuth().checkRefreshToken(token, options);
export const refreshTokens = (
  token: string,
  options?: RefreshOptions & StrategyChoice,
): Promise<TokenPair> => defaultAuth().refreshTokens(token, options);
export const invalidateRefreshToken = (token: string, options?: StrategyChoice): Promise<void> =>
  defaultAuth().invalidateRefreshToken(token, options);
export const revokeAllSessions = (
  userId: string | number,
  options?: StrategyChoice,
): Promise<number> => defaultAuth().revokeAllSessions(userId, options);
export const listSessions = (
  userId: string | number,
  options?: StrategyChoice,
): Promise<SessionInfo[]> => defaultAuth().listSessions(userId, options);
export const revokeSession = (
  userId: string | number,
  sessionId: string,
  options?: StrategyChoice,
): Promise<boolean> => defaultAuth().revokeSession(userId, sessionId, options);

export const getToken = (): Middleware<AuthState> => defaultAuth().getToken();
/** `getData(token)`: the token's data after requireAuth's checks; `getData(options?)`: the middleware. */
export function getData(token: string, options?: StrategyChoice): Promise<AuthUser>;
export function getData(options?: AuthMiddlewareOptions): Middleware<AuthState>;
export function getData(
  arg?: string | AuthMiddlewareOptions,
  choice?: StrategyChoice,
): Promise<AuthUser> | Middleware<AuthState> {
  return typeof arg === 'string' ? defaultAuth().getData(arg, choice) : defaultAuth().getData(arg);
}
export const createAccessToken = (
  user: TokenUser,
  options?: WriteOptions & StrategyChoice,
): Promise<string> => defaultAuth().createAccessToken(user, options);
export const createRefreshToken = (
  user: TokenUser,
  options?: Omit<WriteOptions, 'sessionId'> & StrategyChoice,
): Promise<string> => defaultAuth().createRefreshToken(user, options);
export const requireAuth = (options?: AuthMiddlewareOptions): Middleware<AuthenticatedState> =>
  defaultAuth().requireAuth(options);
export const authorize = (rule: AuthorizeRule): Middleware<AuthState> =>
  defaultAuth().authorize(rule);

/** The default instance's strategy registry. */
export const strategies: Pick<StrategyRegistry, 'register' | 'get' | 'setDefault' | 'names'> = {
  register(name: string, strategy: TokenStrategy | StrategyFactory) {
    return defaultAuth().strategies.register(name, strategy);
  },
  get: (name: string) => defaultAuth().strategies.get(name),
  setDefault(name: string) {
    return defaultAuth().strategies.setDefault(name);
  },
  names: () => defaultAuth().strategies.names(),
};
