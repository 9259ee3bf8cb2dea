import type { Middleware } from 'koa';
import { defaultAuth } from './auth.js';
import type { AuthorizeRule } from './middleware/authorization.js';
import { isMiddlewareCall } from './middleware/get-data.js';
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

/*
 * The helpers as free functions bound to the default instance (the last one createAuth made).
 * Those that answer with a promise reject (never throw) when createAuth was not called yet; the
 * middleware factories throw, at start-up.
 */

export const generateTokens = async (
  user: TokenUser,
  options?: IssueOptions & StrategyChoice,
): Promise<TokenPair> => defaultAuth().generateTokens(user, options);
export const checkRefreshToken = async (
  token: string,
  options?: StrategyChoice,
): Promise<boolean> => defaultAuth().checkRefreshToken(token, options);
export const refreshTokens = async (
  token: string,
  options?: RefreshOptions & StrategyChoice,
): Promise<TokenPair> => defaultAuth().refreshTokens(token, options);
export const invalidateRefreshToken = async (
  token: string,
  options?: StrategyChoice,
): Promise<void> => defaultAuth().invalidateRefreshToken(token, options);
export const revokeAllSessions = async (
  userId: string | number,
  options?: StrategyChoice,
): Promise<number> => defaultAuth().revokeAllSessions(userId, options);
export const listSessions = async (
  userId: string | number,
  options?: StrategyChoice,
): Promise<SessionInfo[]> => defaultAuth().listSessions(userId, options);
export const revokeSession = async (
  userId: string | number,
  sessionId: string,
  options?: StrategyChoice,
): Promise<boolean> => defaultAuth().revokeSession(userId, sessionId, options);

export const getToken = (): Middleware<AuthState> => defaultAuth().getToken();
/**
 * `getData(token)`: the token's data after requireAuth's checks (`token_missing` for undefined);
 * `getData()` or `getData(options)`: the middleware.
 */
export function getData(token: string | undefined, options?: StrategyChoice): Promise<AuthUser>;
export function getData(): Middleware<AuthState>;
export function getData(options: AuthMiddlewareOptions): Middleware<AuthState>;
export function getData(...args: unknown[]): Promise<AuthUser> | Middleware<AuthState> {
  const [arg, choice] = args;
  if (!isMiddlewareCall(args.length, arg))
    return readData(arg as string | undefined, choice as StrategyChoice | undefined);
  return args.length === 0
    ? defaultAuth().getData()
    : defaultAuth().getData(arg as AuthMiddlewareOptions);
}
const readData = async (token: string | undefined, choice?: StrategyChoice): Promise<AuthUser> =>
  defaultAuth().getData(token, choice);
export const createAccessToken = async (
  user: TokenUser,
  options?: WriteOptions & StrategyChoice,
): Promise<string> => defaultAuth().createAccessToken(user, options);
export const createRefreshToken = async (
  user: TokenUser,
  options?: WriteOptions & StrategyChoice,
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
