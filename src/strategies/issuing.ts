import { randomUUID } from 'node:crypto';
import { appClaims, tokenPair } from '../tokens/issue.js';
import {
  isPrototypeKey,
  RESERVED_CLAIMS,
  type RefreshTokenPayload,
  type TokenPair,
  type TokenUser,
} from '../tokens/claims.js';
import type { SignOverrides } from '../tokens/token-service.js';
import type { StrategyContext } from './types.js';

/** A signed pair not yet handed out: session strategies record `jti` before returning `pair`. */
export interface PendingPair {
  pair: TokenPair;
  jti: string;
  /** The session's expiry in epoch ms: the refresh token's lifetime at ms precision, so logins order by age. */
  expiresAt: number;
}

/**
 * Signs an access + refresh pair for one session family. The app claims ride along in the
 * refresh token (`usr`, signed) so that a refresh can re-issue them without the user object.
 */
export function signPair(
  context: StrategyContext,
  sub: string,
  sessionId: string,
  claims: Record<string, unknown>,
  now: number,
  refreshOverrides?: SignOverrides,
): PendingPair {
  // A random UUID (122 bits); the Redis store keeps it in 22 characters (compactUuid).
  const jti = randomUUID();
  const refreshClaims: Record<string, unknown> = { sub, sid: sessionId, jti };
  if (Object.keys(claims).length > 0) refreshClaims.usr = claims;
  const refresh = context.tokens.sign('refresh', refreshClaims, now, refreshOverrides);
  const access = context.tokens.sign('access', { ...claims, sub, sid: sessionId }, now);
  const lifetime = refreshOverrides?.lifetime ?? context.tokens.refreshTokenTtl;
  return {
    pair: tokenPair(access.token, refresh.token, context.tokens.accessTokenTtl),
    jti,
    expiresAt: now + lifetime * 1000,
  };
}

/**
 * The claims a refreshed access token carries: the ones from login, or freshly loaded ones when
 * `loadUser` is set. Null when `loadUser` says the user is gone.
 */
export async function refreshedClaims(
  context: StrategyContext,
  payload: RefreshTokenPayload & { usr?: unknown },
): Promise<Record<string, unknown> | null> {
  const { loadUser, userFields } = context.options;
  if (loadUser) {
    const user: TokenUser | null | undefined = await loadUser(payload.sub);
    return user ? appClaims(user, userFields, undefined) : null;
  }
  const usr = payload.usr;
  if (usr === null || typeof usr !== 'object' || Array.isArray(usr)) return {};
  // Only app claims were put in `usr` at login; anything else (a library claim, `constructor`, …) is
  // dropped rather than handed to jwt.sign, which would override ours or throw.
  const claims: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(usr)) {
    if (!RESERVED_CLAIMS.has(name) && !isPrototypeKey(name)) claims[name] = value;
  }
  return claims;
}
