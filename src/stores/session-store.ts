/**
 * Whether an answer kept for repeat requests still holds (the middlewares' answer memo asks it on
 * each one). An object with a method rather than a closure: the memo reads it on every repeat
 * request, over as many answers as there are tokens, and a closure is two objects (the function
 * and its context) to reach instead of one.
 */
export interface Holding {
  holds(now: number): boolean;
}

/** One login's session family as the store records it. Times are epoch milliseconds. */
export interface SessionRecord {
  sessionId: string;
  /** The one live refresh-token id (`jti`) of this family. */
  jti: string;
  /** The `jti` it replaced, kept only (and only with a grace period) to recognise a concurrent refresh within the grace window. */
  previousJti: string;
  /**
   * Times are epoch ms. A store may keep `expiresAt` and `rotatedAt` to the second: `expiresAt`
   * rounded down (never a longer session), `rotatedAt` rounded up (never a shorter grace window),
   * as the Redis store's binary records do; `createdAt` to the ms.
   */
  rotatedAt: number;
  createdAt: number;
  /** The last rotation, else creation. */
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
  /**
   * True when `newJti` is derived from `oldJti` alone (the `redis` strategy's successorJti), so
   * every concurrent rotation of `oldJti` names the same `newJti`. A store may then recognise a
   * concurrent rotation by its live `jti` being `newJti`, within `graceMs`, instead of keeping
   * the previous `jti` (the Redis store keeps none then). Absent or false: `newJti` is drawn
   * anew, and only the kept previous `jti` recognises one.
   */
  successor?: boolean | undefined;
}

/**
 * `rotated`: the `jti` was live and is replaced. `missing`: no such live family (logged out,
 * expired, flushed). `superseded`: the `jti` was rotated within the grace window. `reused`: an old
 * `jti` of a live family, so the family has been revoked.
 */
export type RotationResult = 'rotated' | 'missing' | 'superseded' | 'reused';

/**
 * Where sessions live: every session operation of the library goes through these methods, so any
 * backend that implements them (and passes the contract suite in test/contract/) can be plugged
 * in with `createAuth({ store })`. Built in: {@link memoryStore}, {@link redisStore} and
 * {@link postgresStore}.
 *
 * The contract:
 * - A session (one login, a "family") is keyed by `(userId, sessionId)` and holds one live
 *   `jti`: a refresh token's id, or for the opaque `session` strategy a hash of the token.
 * - `create` and `rotate` are atomic per user. `create` enforces `maxSessions` (0: no cap) by
 *   ending the sessions that expire first.
 * - `rotate` judges expiry at `rotation.now`. With a `graceMs` above 0 it stamps the rotation
 *   (`rotatedAt`, `lastUsedAt`) and judges a replaced `jti` against `graceMs` at the time it
 *   runs: a store whose commands can run late (after the app gave up on them: queued in a frozen
 *   Redis, waiting for a pooled connection) takes the later of `now` and its own clock. Stamped
 *   when it was sent, a rotation that ran late put the client's retries of the same token, run
 *   with it or sent after it, outside the grace window, and a freeze longer than it ended the
 *   sessions refreshed during it as stolen. The memory store runs each call when it is made, so
 *   `now` is that time.
 * - `rotate` replaces the live `jti` only when `oldJti` is it (exactly one of any number of
 *   concurrent rotations of one `jti` wins). A stale `jti` within `graceMs` of its rotation is
 *   `superseded` (the one it replaced, or with `successor` the one whose `newJti` is live); any other stale `jti` of a live session is `reused`, and the session is ended in
 *   the same atomic step. `rotate` with `newJti === oldJti` keeps the `jti` and moves `expiresAt`
 *   and `lastUsedAt`: that is how sliding sessions are extended. The built-in stores count it as
 *   a rotation otherwise (`rotatedAt` moves; a `jti` replaced before it is `reused`, no longer
 *   `superseded`); the library never mixes the two in one session.
 * - Nothing is answered for a session whose `expiresAt` has passed; expired sessions are removed
 *   by the store (on writes, by key expiry, or by `prune`), so storage stays bounded.
 * - When the backend cannot answer, a method rejects (with the backend's error) within the
 *   store's timeout; the library turns that into a 503 `store_unavailable`.
 * - Answers are of the types below. createAuth checks those of a store it did not build (see
 *   checkedStore): one of another shape fails that call as a 503, naming the method.
 */
export interface SessionStore {
  /** Records a new session; resolves only once it is stored. */
  create(userId: string, session: NewSession, maxSessions: number): Promise<void>;
  /** Replaces the session's live `jti`, atomically, with reuse detection (see above). */
  rotate(userId: string, rotation: Rotation): Promise<RotationResult>;
  /** The session's record when it is live, else undefined. */
  get(userId: string, sessionId: string, now: number): Promise<SessionRecord | undefined>;
  /** Whether the session is live: the cheap check run on every authenticated request. */
  isLive(userId: string, sessionId: string, now: number): Promise<boolean>;
  /**
   * Optional: `isLive`'s answer without waiting, when the store holds one it can trust (a
   * coherent local cache); undefined sends the check to `isLive`.
   */
  cachedLiveness?(userId: string, sessionId: string, now: number): boolean | undefined;
  /**
   * Optional, with `cachedLiveness`: when it said "live", what tells at a later time whether
   * that answer still holds, without a lookup (the middlewares' answer memo asks it on each
   * repeat request); undefined when there is no such answer.
   */
  livenessCheck?(userId: string, sessionId: string, now: number): Holding | undefined;
  /**
   * Optional: what the store keeps `expiresAt` and `rotatedAt` to, in ms (see SessionRecord); 1
   * when absent. The session strategy slides an expiry only when the kept one would move.
   */
  readonly timeResolution?: number | undefined;
  /**
   * Ends one session; true when it was live (`expiresAt` after `Date.now()`). An expired one may
   * be removed as well, but answers false: nothing was ended.
   */
  revoke(userId: string, sessionId: string): Promise<boolean>;
  /** Ends every session of the user; returns how many were live. */
  revokeAll(userId: string, now: number): Promise<number>;
  /** The user's live sessions, oldest first. */
  list(userId: string, now: number): Promise<SessionRecord[]>;
  /**
   * Deletes sessions that expired before `now`; returns how many. Optional: stores whose data
   * expires by itself (Redis key TTLs) need none.
   */
  prune?(now: number): Promise<number>;
  /**
   * Resolves when the store answers (every node of a cluster), rejects otherwise; backs
   * `auth.ping()`. Optional: a store without it is taken to be always up.
   */
  ping?(): Promise<void>;
  /** Releases what the store opened (connections it created, timers). */
  close(): Promise<void>;
}
