import type { Cluster, Redis } from 'ioredis';
import { CREATE_SESSION, REVOKE_ALL, REVOKE_SESSION, ROTATE_SESSION } from './lua.js';
import {
  type NewSession,
  packSession,
  type Rotation,
  type RotationResult,
  type SessionRecord,
  type SessionStore,
  unpackSession,
} from './session-store.js';

export type RedisClient = Redis | Cluster;

/** The commands `defineCommand` adds; prefixed so they cannot clash with the app's own. */
interface ScriptedClient {
  kjrCreateSession(h: string, z: string, ...argv: (string | number)[]): Promise<number>;
  kjrRotateSession(h: string, z: string, ...argv: (string | number)[]): Promise<number>;
  kjrRevokeSession(h: string, z: string, sessionId: string): Promise<number>;
  kjrRevokeAll(h: string, z: string, now: number): Promise<number>;
}

const ROTATION: Record<number, RotationResult> = { 0: 'missing', 1: 'rotated', 2: 'superseded', 3: 'reused' };

export interface RedisStoreOptions {
  keyPrefix: string;
  /** Every call settles within this many ms, whatever the client's own settings. */
  timeout: number;
  /** Quit the client on close (only when this library created it). */
  ownsClient: boolean;
}

class StoreTimeoutError extends Error {
  constructor(ms: number) {
    super(`Redis did not answer within ${ms} ms`);
    this.name = 'StoreTimeoutError';
  }
}

/**
 * Redis store. Data model, per user (one hash tag, so one Cluster slot):
 * - `<prefix>{u:<id>}:s` hash: session id -> packed record (current UUID, previous UUID, times, ip, UA)
 * - `<prefix>{u:<id>}:e` sorted set: session id -> expiresAt (ms), for pruning and TTLs
 */
export class RedisStore implements SessionStore {
  private readonly client: RedisClient & ScriptedClient;

  constructor(
    client: RedisClient,
    private readonly options: RedisStoreOptions,
  ) {
    for (const [name, lua] of [
      ['kjrCreateSession', CREATE_SESSION],
      ['kjrRotateSession', ROTATE_SESSION],
      ['kjrRevokeSession', REVOKE_SESSION],
      ['kjrRevokeAll', REVOKE_ALL],
    ] as const) {
      client.defineCommand(name, { numberOfKeys: 2, lua });
    }
    this.client = client as RedisClient & ScriptedClient;
  }

  private keys(userId: string): [string, string] {
    // encodeURIComponent escapes { and }, so a user id can never break out of its hash tag.
    const base = `${this.options.keyPrefix}{u:${encodeURIComponent(userId)}}:`;
    return [`${base}s`, `${base}e`];
  }

  /** Races the command against a timer so that a hung or offline Redis answers in bounded time. */
  private bounded<T>(command: Promise<T>): Promise<T> {
    const ms = this.options.timeout;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreTimeoutError(ms)), ms);
    });
    // A command that settles after its timeout must not become an unhandled rejection.
    command.catch(() => {});
    return Promise.race([command, timeout]).finally(() => clearTimeout(timer));
  }

  async create(userId: string, s: NewSession, maxSessions: number): Promise<void> {
    const [h, z] = this.keys(userId);
    const packed = packSession({ ...s, previousJti: '', rotatedAt: 0, createdAt: s.now, lastUsedAt: s.now });
    await this.bounded(this.client.kjrCreateSession(h, z, s.sessionId, packed, s.expiresAt, s.now, maxSessions));
  }

  async rotate(userId: string, r: Rotation): Promise<RotationResult> {
    const [h, z] = this.keys(userId);
    const code = await this.bounded(
      this.client.kjrRotateSession(h, z, r.sessionId, r.oldJti, r.newJti, r.now, r.expiresAt, r.graceMs),
    );
    return ROTATION[code] ?? 'missing';
  }

  async get(userId: string, sessionId: string, now: number): Promise<SessionRecord | undefined> {
    const [h] = this.keys(userId);
    const packed = await this.bounded(this.client.hget(h, sessionId));
    const record = packed === null ? undefined : unpackSession(sessionId, packed);
    return record && record.expiresAt > now ? record : undefined;
  }

  async isLive(userId: string, sessionId: string, now: number): Promise<boolean> {
    const [, z] = this.keys(userId);
    const score = await this.bounded(this.client.zscore(z, sessionId));
    return score !== null && Number(score) > now;
  }

  async revoke(userId: string, sessionId: string): Promise<boolean> {
    const [h, z] = this.keys(userId);
    return (await this.bounded(this.client.kjrRevokeSession(h, z, sessionId))) > 0;
  }

  async revokeAll(userId: string, now: number): Promise<number> {
    const [h, z] = this.keys(userId);
    return this.bounded(this.client.kjrRevokeAll(h, z, now));
  }

  async list(userId: string, now: number): Promise<SessionRecord[]> {
    const [h] = this.keys(userId);
    const all = await this.bounded(this.client.hgetall(h));
    const sessions: SessionRecord[] = [];
    for (const [sessionId, packed] of Object.entries(all)) {
      const record = unpackSession(sessionId, packed);
      if (record && record.expiresAt > now) sessions.push(record);
    }
    return sessions.sort((a, b) => a.createdAt - b.createdAt);
  }

  async close(): Promise<void> {
    if (!this.options.ownsClient) return;
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}
