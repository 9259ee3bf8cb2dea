/** One login's session family as the store records it. Times are epoch milliseconds. */
export interface SessionRecord {
  sessionId: string;
  /** The one live refresh-token id (`jti`) of this family. */
  jti: string;
  /** The `jti` it replaced, kept only (and only with a grace period) to recognise a concurrent refresh within the grace window. */
  previousJti: string;
  rotatedAt: number;
  createdAt: number;
  lastUsedAt: number;
  expiresAt: number;
  ip: string;
  userAgent: string;
}

export interface NewSession {
  sessionId: string;
  jti: string;
  now: number;
  expiresAt: number;
  ip: string;
  userAgent: string;
}

export interface Rotation {
  sessionId: string;
  oldJti: string;
  newJti: string;
  now: number;
  expiresAt: number;
  /** How long after a rotation the previous `jti` is answered with `superseded`, not treated as theft. */
  graceMs: number;
}

/**
 * `rotated`: the `jti` was live and is replaced. `missing`: no such live family (logged out,
 * expired, flushed). `superseded`: the `jti` was rotated within the grace window. `reused`: an old
 * `jti` of a live family, so the family has been revoked.
 */
export type RotationResult = 'rotated' | 'missing' | 'superseded' | 'reused';

/**
 * Where refresh-token ids live. Implementations must make `create` and `rotate` atomic per
 * user, bound memory (every entry expires), and reject with the underlying error when they
 * cannot answer; the strategy turns that into a 503.
 */
export interface SessionStore {
  create(userId: string, session: NewSession, maxSessions: number): Promise<void>;
  rotate(userId: string, rotation: Rotation): Promise<RotationResult>;
  /** The family's record when it is live, else undefined. */
  get(userId: string, sessionId: string, now: number): Promise<SessionRecord | undefined>;
  /** Whether the family is live: the cheap check run on every authenticated request. */
  isLive(userId: string, sessionId: string, now: number): Promise<boolean>;
  /** Removes one family; true when it existed. */
  revoke(userId: string, sessionId: string): Promise<boolean>;
  /** Removes every family of the user; returns how many were live. */
  revokeAll(userId: string, now: number): Promise<number>;
  list(userId: string, now: number): Promise<SessionRecord[]>;
  close(): Promise<void>;
}
