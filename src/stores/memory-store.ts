import { shown } from '../config/validate.js';
import { AuthConfigError } from '../errors.js';
import { trustStore } from './checked-store.js';
import type {
  NewSession,
  Rotation,
  RotationResult,
  SessionRecord,
  SessionStore,
} from './session-store.js';

const SWEEP_INTERVAL_MS = 60_000;

/**
 * In-process store with the same semantics as the Redis store, for quick starts, development and
 * tests of apps. Sessions vanish with the process and are not shared between processes.
 */
export class MemoryStore implements SessionStore {
  private readonly users = new Map<string, Map<string, SessionRecord>>();
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor() {
    trustStore(this);
    // Users who never come back would otherwise keep their expired sessions forever.
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const userId of this.users.keys()) this.sessions(userId, now, false);
    }, SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  /**
   * After close() every call fails (503 store_unavailable), as with a Redis client or PostgreSQL
   * pool the library closed: no login is accepted that nothing would keep or sweep.
   */
  private open(): void {
    if (this.closed) throw new Error('the memory store is closed');
  }

  /** The user's live sessions, pruned of expired ones. */
  private sessions(userId: string, now: number, create: true): Map<string, SessionRecord>;
  private sessions(
    userId: string,
    now: number,
    create: false,
  ): Map<string, SessionRecord> | undefined;
  private sessions(
    userId: string,
    now: number,
    create: boolean,
  ): Map<string, SessionRecord> | undefined {
    let map = this.users.get(userId);
    if (map) {
      for (const [id, record] of map) if (record.expiresAt <= now) map.delete(id);
      if (map.size === 0 && !create) {
        this.users.delete(userId);
        return undefined;
      }
    } else if (create) {
      map = new Map();
      this.users.set(userId, map);
    }
    return map;
  }

  async create(userId: string, s: NewSession, maxSessions: number): Promise<void> {
    this.open();
    const map = this.sessions(userId, s.now, true);
    map.set(s.sessionId, {
      sessionId: s.sessionId,
      jti: s.jti,
      previousJti: '',
      rotatedAt: 0,
      createdAt: s.now,
      lastUsedAt: s.now,
      expiresAt: s.expiresAt,
      ip: s.ip,
      userAgent: s.userAgent,
    });
    if (maxSessions > 0 && map.size > maxSessions) {
      // The others, those that expire first: never the session just created, even when it
      // expires before them (a shorter lifetime, another strategy's, a lowered refreshTokenTtl).
      const byExpiry = [...map.values()]
        .filter((other) => other.sessionId !== s.sessionId)
        // Expiries are whole seconds: of one second's, the older login goes first.
        .sort((a, b) => a.expiresAt - b.expiresAt || a.createdAt - b.createdAt);
      for (const old of byExpiry.slice(0, map.size - maxSessions)) map.delete(old.sessionId);
    }
  }

  async rotate(userId: string, r: Rotation): Promise<RotationResult> {
    this.open();
    const map = this.sessions(userId, r.now, false);
    const record = map?.get(r.sessionId);
    if (!map || !record) return 'missing';
    if (record.jti === r.oldJti) {
      map.set(r.sessionId, {
        ...record,
        jti: r.newJti,
        previousJti: r.oldJti,
        rotatedAt: r.now,
        lastUsedAt: r.now,
        expiresAt: r.expiresAt,
      });
      return 'rotated';
    }
    if (r.graceMs > 0 && record.previousJti === r.oldJti && r.now - record.rotatedAt <= r.graceMs) {
      return 'superseded';
    }
    map.delete(r.sessionId);
    return 'reused';
  }

  async get(userId: string, sessionId: string, now: number): Promise<SessionRecord | undefined> {
    this.open();
    return this.sessions(userId, now, false)?.get(sessionId);
  }

  async isLive(userId: string, sessionId: string, now: number): Promise<boolean> {
    this.open();
    const record = this.users.get(userId)?.get(sessionId);
    return record !== undefined && record.expiresAt > now;
  }

  async revoke(userId: string, sessionId: string): Promise<boolean> {
    this.open();
    const map = this.users.get(userId);
    const record = map?.get(sessionId);
    if (!map || !record) return false;
    map.delete(sessionId);
    // An expired session is removed too, but it was not live: nothing was ended.
    return record.expiresAt > Date.now();
  }

  async revokeAll(userId: string, now: number): Promise<number> {
    this.open();
    const count = this.sessions(userId, now, false)?.size ?? 0;
    this.users.delete(userId);
    return count;
  }

  async list(userId: string, now: number): Promise<SessionRecord[]> {
    this.open();
    const map = this.sessions(userId, now, false);
    return map ? [...map.values()].sort((a, b) => a.createdAt - b.createdAt) : [];
  }

  async ping(): Promise<void> {
    this.open();
  }

  async prune(now: number): Promise<number> {
    let removed = 0;
    for (const [userId, map] of this.users) {
      for (const [id, record] of map) {
        if (record.expiresAt <= now) {
          map.delete(id);
          removed++;
        }
      }
      if (map.size === 0) this.users.delete(userId);
    }
    return removed;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    this.users.clear();
  }
}

/**
 * The in-process store: for development, tests and single-process tools. Sessions are lost on
 * restart and not shared between processes (createAuth warns once under NODE_ENV=production).
 */
export function memoryStore(...given: []): SessionStore {
  // It takes no options: one given from JavaScript (a ttl, a size) would do nothing, silently.
  const stray = (given as unknown[]).find((option) => option !== undefined);
  if (stray !== undefined)
    throw new AuthConfigError(
      'memoryStore options',
      `memoryStore() takes no options (got ${shown(stray)}); sessions last as createAuth's own options say`,
    );
  return new MemoryStore();
}
