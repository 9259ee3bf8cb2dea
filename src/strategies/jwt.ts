import { AuthError } from '../errors.js';
import {
  appClaims,
  eventMeta,
  type IssueOptions,
  type RefreshOptions,
  newSessionId,
  checkRequestOptions,
  requestMeta,
  sessionIdOption,
  userIdOf,
} from '../tokens/issue.js';
import { sessionClaims, type TokenPair, type TokenUser } from '../tokens/claims.js';
import { checkSignOverrides } from '../tokens/sign-overrides.js';
import { authTimeOf, idleOf, refreshedClaims, signPair } from './issuing.js';
import {
  reusable,
  type StrategyContext,
  type TokenStrategy,
  untilExpiry,
  type WriteOptions,
} from './types.js';

/**
 * Stateless strategy: refresh tokens are signed JWTs with no server record. Nothing can be
 * revoked before it expires; logout only asks the client to forget its tokens.
 */
export function jwtStrategy(context: StrategyContext): TokenStrategy {
  const { tokens, options } = context;
  const strategy: TokenStrategy = {
    readToken(token) {
      return tokens.verify(token, 'access');
    },

    writeToken(user: TokenUser, kind, writeOptions?: WriteOptions) {
      const overrides = checkSignOverrides(writeOptions ?? {});
      const sub = userIdOf(user);
      const claims = appClaims(user, options.userFields, writeOptions?.claims);
      // Nothing is recorded, yet a bad `ctx`, `ip` or `userAgent` fails here as with the others.
      checkRequestOptions(writeOptions);
      const sid = sessionIdOption(writeOptions?.sessionId) ?? newSessionId();
      const now = Date.now();
      const authTime = Math.floor(now / 1000);
      if (kind === 'access')
        return tokens.signPayload(
          'access',
          sessionClaims(claims, sub, sid, authTime),
          now,
          overrides,
        ).token;
      return signPair(context, sub, sid, claims, now, { authTime }, overrides).pair.refresh_token;
    },

    async generateTokens(user: TokenUser, issue?: IssueOptions): Promise<TokenPair> {
      const sub = userIdOf(user);
      // Checked only: the stateless login event carries the user id alone (see Audit events).
      checkRequestOptions(issue);
      const now = Date.now();
      const { pair } = signPair(
        context,
        sub,
        newSessionId(),
        appClaims(user, options.userFields, issue?.claims),
        now,
        { authTime: Math.floor(now / 1000) },
      );
      context.events.emit('login', { userId: sub });
      return pair;
    },

    async checkRefreshToken(token) {
      try {
        tokens.verify(token, 'refresh');
        return true;
      } catch {
        return false;
      }
    },

    async refreshTokens(token, issue?: RefreshOptions) {
      const payload = tokens.verify(token, 'refresh');
      const meta = eventMeta(requestMeta(issue));
      const claims = await refreshedClaims(context, payload);
      if (claims === null) throw new AuthError('token_revoked', 'The user no longer exists.');
      // The login time rides along, so no refresh carries the session past absoluteSessionTtl
      // (signPair refuses a session over, even one whose token is still within the leeway).
      const { pair } = signPair(
        context,
        payload.sub,
        payload.sid,
        claims,
        Date.now(),
        { authTime: authTimeOf(payload) },
        idleOf(payload),
      );
      // Reported only once the pair exists: a refresh that fails is no refresh.
      context.events.emit('refresh', {
        userId: payload.sub,
        sessionId: payload.sid,
        ...meta,
      });
      return pair;
    },

    async invalidateRefreshToken(token) {
      // Nothing is recorded, so nothing can be removed: a bad token is still reported as bad.
      try {
        tokens.verify(token, 'refresh');
      } catch (error) {
        if (error instanceof AuthError && error.code === 'token_expired') return;
        throw error;
      }
    },

    // No revokeAllSessions, listSessions or revokeSession: it keeps no sessions. Left out, not
    // stubs, so that what the strategy can do is read off it (auth.openapi documents the 501s).
  };
  // Stateless: an answer holds until the token expires (the key ring of an instance is fixed).
  return reusable(strategy, { limit: options.verifyCacheSize, check: () => untilExpiry });
}
