import { randomUUID } from 'node:crypto';
import { AuthError, storeUnavailable } from '../errors.js';
import { checkSignOverrides, type SignOverrides } from '../tokens/sign-overrides.js';
import {
  type AuthUser,
  type RefreshTokenPayload,
  type TokenPair,
  sessionClaims,
  type TokenUser,
} from '../tokens/claims.js';
import {
  appClaims,
  eventMeta,
  type IssueOptions,
  isSessionId,
  type RefreshOptions,
  newSessionId,
  normalizeUserId,
  requestMeta,
  sessionIdOption,
  sessionMeta,
  successorJti,
  userIdOf,
} from '../tokens/issue.js';
import type { SessionRecord } from '../stores/session-store.js';
import { describeDevice } from '../tokens/device.js';
import { authTimeOf, idleOf, refreshedClaims, signPair, storeCaller } from './issuing.js';
import {
  reusable,
  type SessionInfo,
  type StrategyContext,
  type TokenStrategy,
  untilExpiry,
  type WriteOptions,
} from './types.js';

const revoked = () => new AuthError('token_revoked', 'The session has ended; log in again.');

function toSessionInfo(record: SessionRecord): SessionInfo {
  const info: SessionInfo = {
    sessionId: record.sessionId,
    createdAt: new Date(record.createdAt),
    lastUsedAt: new Date(record.lastUsedAt),
    expiresAt: new Date(record.expiresAt),
  };
  const device = describeDevice(record.userAgent);
  if (device) {
    info.device = device;
    // What apps showed as "the user agent" is now the short label: the raw one is not stored.
    info.userAgent = device.label;
  }
  if (record.ip) info.ip = record.ip;
  return info;
}

/**
 * The default strategy: each login is a session family whose one live refresh-token UUID is
 * recorded in the store (an allowlist). Rotation and reuse detection are atomic in the store;
 * access tokens carry the family id so `requireAuth` can check the session is still live.
 */
export function redisStrategy(context: StrategyContext): TokenStrategy {
  const { tokens, store, options, events } = context;

  const stored = storeCaller(events);

  // On every request: written out rather than through stored(), and as one promise chain with no
  // async function of its own (each await is a promise and microtasks more per request).
  const unavailable = (error: unknown): never => {
    events.emit('store_unavailable', { operation: 'checkSession', error });
    throw storeUnavailable(error);
  };
  function liveSession(payload: AuthUser): Promise<AuthUser> {
    let live: Promise<boolean>;
    try {
      live = store.isLive(payload.sub, payload.sid!, Date.now());
    } catch (error) {
      return Promise.reject(error).catch(unavailable);
    }
    return live.then((isLive) => {
      if (!isLive) throw revoked();
      return payload;
    }, unavailable);
  }

  async function startSession(
    user: TokenUser,
    issue: IssueOptions | undefined,
    refreshOverrides?: SignOverrides,
  ): Promise<TokenPair> {
    const sub = userIdOf(user);
    const claims = appClaims(user, options.userFields, issue?.claims);
    const seen = requestMeta(issue);
    const meta = sessionMeta(seen);
    const now = Date.now();
    const sessionId = newSessionId();
    const pending = signPair(
      context,
      sub,
      sessionId,
      claims,
      now,
      { authTime: Math.floor(now / 1000) },
      refreshOverrides,
    );
    // Recorded before it is returned: a token Redis did not store is never handed out.
    await stored('login', () =>
      store.create(
        sub,
        { sessionId, jti: pending.jti, now, expiresAt: pending.expiresAt, ...meta },
        options.maxSessionsPerUser,
      ),
    );
    events.emit('login', { userId: sub, sessionId, ...eventMeta(seen) });
    return pending.pair;
  }

  function verifyRefresh(token: string): RefreshTokenPayload {
    return tokens.verify(token, 'refresh');
  }

  const strategy: TokenStrategy = {
    readToken(token, read) {
      const payload = tokens.verify(token, 'access');
      if (!read.checkSession) return payload;
      // A token without a session id cannot be checked, so it is refused (fail closed).
      if (payload.sid === undefined) throw revoked();
      // A coherent local answer needs no promise: the request goes on synchronously.
      const cached = store.cachedLiveness?.(payload.sub, payload.sid, Date.now());
      if (cached === true) return payload;
      if (cached === false) throw revoked();
      return liveSession(payload);
    },

    async writeToken(user: TokenUser, kind, write?: WriteOptions) {
      const overrides = checkSignOverrides(write ?? {});
      const sid = sessionIdOption(write?.sessionId);
      if (kind === 'refresh') {
        if (sid !== undefined)
          throw new TypeError(
            'koa-jwt-redis: `sessionId` is for access tokens: a refresh token starts a session of its own',
          );
        return (await startSession(user, write, overrides)).refresh_token;
      }
      const sub = userIdOf(user);
      const claims = appClaims(user, options.userFields, write?.claims);
      const seen = requestMeta(write);
      const now = Date.now();
      if (sid === undefined) {
        // A lone access token gets a session of its own that ends with it, so requireAuth
        // accepts it and revokeAllSessions ends it. Its jti is never handed out: no refresh.
        const sessionId = newSessionId();
        const meta = sessionMeta(seen);
        const authTime = Math.floor(now / 1000);
        const lifetime = overrides?.lifetime ?? options.accessTokenTtl;
        // The token's `exp`: the session ends when the token does, to the second, on every store.
        const notAfter = Math.min(
          Math.floor((now + lifetime * 1000) / 1000),
          authTime + options.absoluteSessionTtl,
        );
        // Signed before the session is recorded: claims that cannot be signed record nothing.
        const { token } = tokens.signPayload(
          'access',
          sessionClaims(claims, sub, sessionId, authTime),
          now,
          overrides,
          notAfter,
        );
        await stored('login', () =>
          store.create(
            sub,
            { sessionId, jti: randomUUID(), now, expiresAt: notAfter * 1000, ...meta },
            options.maxSessionsPerUser,
          ),
        );
        events.emit('login', { userId: sub, sessionId, ...eventMeta(seen) });
        return token;
      }
      // An access token for an existing session: its login time, and no life past the session's.
      const record = await stored('writeToken', () => store.get(sub, sid, now));
      if (record === undefined) throw revoked();
      const authTime = Math.floor(record.createdAt / 1000);
      return tokens.signPayload(
        'access',
        sessionClaims(claims, sub, sid, authTime),
        now,
        overrides,
        Math.min(Math.floor(record.expiresAt / 1000), authTime + options.absoluteSessionTtl),
      ).token;
    },

    generateTokens: startSession,

    async checkRefreshToken(token) {
      let payload: RefreshTokenPayload;
      try {
        payload = verifyRefresh(token);
      } catch {
        return false;
      }
      const record = await stored('checkRefreshToken', () =>
        store.get(payload.sub, payload.sid, Date.now()),
      );
      return record !== undefined && record.jti === payload.jti;
    },

    async refreshTokens(token, issue?: RefreshOptions) {
      const payload = verifyRefresh(token);
      // Read before anything is written: a bad `ctx` fails the call while the token still works.
      const meta = eventMeta(requestMeta(issue));
      const claims = await refreshedClaims(context, payload);
      if (claims === null) {
        await stored('refresh', () => store.revoke(payload.sub, payload.sid));
        throw revoked();
      }
      const now = Date.now();
      const authTime = authTimeOf(payload);
      const jti = successorJti(payload.sid, payload.jti);
      const idle = idleOf(payload);
      /** The rotation's pair, ending at `notAfter` at the latest (epoch ms). */
      const sign = (notAfter?: number) =>
        signPair(context, payload.sub, payload.sid, claims, now, { authTime, jti, notAfter }, idle);
      const pending = sign();
      const result = await stored('refresh', () =>
        store.rotate(payload.sub, {
          sessionId: payload.sid,
          oldJti: payload.jti,
          newJti: pending.jti,
          now,
          expiresAt: pending.expiresAt,
          graceMs: options.refreshGracePeriod * 1000,
          successor: true,
        }),
      );
      switch (result) {
        case 'rotated':
          events.emit('refresh', { userId: payload.sub, sessionId: payload.sid, ...meta });
          return pending.pair;
        case 'superseded': {
          // A concurrent request (another tab, or a retry after a timeout) rotated this token
          // moments ago, to the same derived successor id: this pair carries it too, so both
          // clients end up on the one live chain and neither sees an error.
          // The chain's live record ends where the winning rotation put it, earlier than this
          // pair would (signed from a later now): signed again to end with it, so that neither
          // token outlives the session by up to the grace period (the refresh cookie neither).
          const record = await stored('refresh', () => store.get(payload.sub, payload.sid, now));
          if (record === undefined) throw revoked();
          const pair =
            record.expiresAt >= pending.expiresAt ? pending.pair : sign(record.expiresAt).pair;
          events.emit('refresh', {
            userId: payload.sub,
            sessionId: payload.sid,
            concurrent: true,
            ...meta,
          });
          return pair;
        }
        case 'reused':
          events.emit('refresh_reused', { userId: payload.sub, sessionId: payload.sid, ...meta });
          throw new AuthError(
            'refresh_reused',
            'This refresh token was already used; the session has been revoked.',
          );
        default:
          throw revoked();
      }
    },

    async invalidateRefreshToken(token) {
      let payload: RefreshTokenPayload;
      try {
        payload = verifyRefresh(token);
      } catch (error) {
        // An expired token's session has expired with it: logging it out is already done.
        if (error instanceof AuthError && error.code === 'token_expired') return;
        throw error;
      }
      if (await stored('logout', () => store.revoke(payload.sub, payload.sid))) {
        events.emit('logout', { userId: payload.sub, sessionId: payload.sid });
      }
    },

    async revokeAllSessions(userId) {
      const id = normalizeUserId(userId);
      const count = await stored('revokeAllSessions', () => store.revokeAll(id, Date.now()));
      events.emit('revoke_all', { userId: id, count });
      return count;
    },

    async listSessions(userId) {
      const id = normalizeUserId(userId);
      const records = await stored('listSessions', () => store.list(id, Date.now()));
      return records.map(toSessionInfo);
    },

    async revokeSession(userId, sessionId) {
      const id = normalizeUserId(userId);
      if (!isSessionId(sessionId)) return false;
      const removed = await stored('revokeSession', () => store.revoke(id, sessionId));
      if (removed) events.emit('logout', { userId: id, sessionId });
      return removed;
    },
  };
  // A repeat request may reuse an answer while the session cache still vouches for the session
  // (or, without the session check, until the token expires).
  return reusable(strategy, {
    limit: options.verifyCacheSize,
    check(user, read, now) {
      if (!read.checkSession) return untilExpiry;
      return store.livenessCheck?.(user.sub, user.sid!, now);
    },
  });
}
