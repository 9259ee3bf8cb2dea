/** One login's session family as the store records it. Times are epoch milliseconds. */
export interface SessionRecord {
  sessionId: string;
  /** The one live refresh-token UUID of this family. */
  jti: string;
  /** The UUID it replaced, kept only to recognise a concurrent refresh within the grace window. */
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
  /** How long after a rotation the previous UUID is answered with `superseded`, not treated as theft. */
  graceMs: number;
}

/**
 * `rotated`: the UUID was live and is replaced. `missing`: no such live family (logged out,
 * expired, flushed). `superseded`: the UUID was rotated within the grace window. `reused`: an old
 * UUID of a live family, so the family has been revoked.
 */
export type RotationResult = 'rotated' | 'missing' | 'superseded' | 'reused';

/**
 * Where refresh-token UUIDs live. Implementations must make `create` and `rotate` atomic per
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

const SEP = '|';

/** Fields are packed into one string per family to keep Redis memory per session small. */
export function packSession(s: Omit<SessionRecord, 'sessionId'>): string {
  return [s.jti, s.previousJti, s.rotatedAt, s.createdAt, s.lastUsedAt, s.expiresAt, s.ip, s.userAgent].join(SEP);
}

export function unpackSession(sessionId: string, packed: string): SessionRecord | undefined {
  const parts = packed.split(SEP);
  if (parts.length < 8) return undefined;
  const [jti, previousJti, rotatedAt, createdAt, lastUsedAt, expiresAt, ip] = parts as [string, string, string, string, string, string, string];
  return {
    sessionId,
    jti,
    previousJti,
    rotatedAt: Number(rotatedAt),
    createdAt: Number(createdAt),
    lastUsedAt: Number(lastUsedAt),
    expiresAt: Number(expiresAt),
    ip,
    // The user agent is last and may itself contain the separator.
    userAgent: parts.slice(7).join(SEP),
  };
}

/** Bounded, separator-free metadata: a hostile User-Agent cannot grow Redis or break the packing. */
export function cleanMeta(value: unknown, max: number, allowSeparator: boolean): string {
  if (typeof value !== 'string') return '';
  // eslint-disable-next-line no-control-regex
  let cleaned = value.replace(/[\u0000-\u001f\u007f]/g, '');
  if (!allowSeparator) cleaned = cleaned.replaceAll(SEP, '');
  return cleaned.slice(0, max);
}
