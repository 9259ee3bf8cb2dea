/**
 * Redis memory per live session, and the check that expired sessions leave nothing behind.
 * Runs in the orchestrator's process against the bench's own redis-server.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { createAuth } from 'koa-jwt-redis';
import { SECRET } from './secret.js';

/** What a browser login records: an ip and a typical user agent (70 characters). */
export const BROWSER_META = {
  ip: '203.0.113.7',
  userAgent: 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
};
export const NO_META = { ip: '', userAgent: '' };
/** A longer, Chrome-like user agent (111 characters): one more metadata chunk. */
export const CHROME_META = {
  ip: '203.0.113.7',
  userAgent:
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
};

export interface MemoryResult {
  label: string;
  sessions: number;
  users: number;
  keys: number;
  /** Sum of MEMORY USAGE over every key, divided by the number of sessions. */
  bytesPerSession: number;
}

async function keysUnder(client: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    found.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return found;
}

async function usage(client: Redis, keys: string[]): Promise<number> {
  let total = 0;
  for (let i = 0; i < keys.length; i += 1000) {
    const pipeline = client.pipeline();
    for (const key of keys.slice(i, i + 1000))
      pipeline.call('MEMORY', 'USAGE', key, 'SAMPLES', '0');
    for (const [error, bytes] of (await pipeline.exec()) ?? []) {
      if (error) throw error;
      total += Number(bytes);
    }
  }
  return total;
}

async function login(
  auth: ReturnType<typeof createAuth>,
  sessions: number,
  users: number,
  meta: typeof BROWSER_META,
) {
  const tokens: string[] = [];
  for (let i = 0; i < sessions; i += 500) {
    const batch = Array.from({ length: Math.min(500, sessions - i) }, (_, j) =>
      auth.generateTokens({ id: `user-${(i + j) % users}` }, meta),
    );
    for (const pair of await Promise.all(batch)) tokens.push(pair.refresh_token);
  }
  return tokens;
}

/** Refreshes each token once, 500 at a time. */
async function refreshEach(
  auth: ReturnType<typeof createAuth>,
  tokens: string[],
  meta: typeof BROWSER_META,
): Promise<void> {
  for (let i = 0; i < tokens.length; i += 500)
    await Promise.all(tokens.slice(i, i + 500).map((token) => auth.refreshTokens(token, meta)));
}

/** N sessions over `users` users; optionally each rotated once (the record then also holds its rotation time). */
export async function perSession(
  redisUrl: string,
  label: string,
  sessions: number,
  users: number,
  meta: typeof BROWSER_META,
  rotateOnce = false,
): Promise<MemoryResult> {
  const client = new Redis(redisUrl);
  // The default key prefix, as most apps have it: this database holds nothing else.
  const keyPrefix = 'auth:';
  const auth = createAuth({
    secret: SECRET,
    redis: redisUrl,
    keyPrefix,
    maxSessionsPerUser: 0,
    verifyCacheSize: 0,
  });
  try {
    const tokens = await login(auth, sessions, users, meta);
    if (rotateOnce) await refreshEach(auth, tokens, meta);
    const keys = await keysUnder(client, keyPrefix);
    const bytes = await usage(client, keys);
    await client.unlink(...keys);
    return {
      label,
      sessions,
      users,
      keys: keys.length,
      bytesPerSession: Math.round(bytes / sessions),
    };
  } finally {
    await auth.close();
    client.disconnect();
  }
}

export interface ExpiryResult {
  sessions: number;
  refreshTokenTtl: number;
  keysWhileLive: number;
  keysLeft: number;
  /** Seconds from the last session's expiry until Redis had removed every key. */
  secondsToEmpty: number;
  usedMemoryBaseline: number;
  usedMemoryLive: number;
  usedMemoryAfter: number;
}

/** Sessions with a 2 s refresh TTL: after it, Redis must hold no key of theirs and no extra memory. */
export async function expiry(
  redisUrl: string,
  sessions: number,
  keyBuckets = 0,
): Promise<ExpiryResult> {
  const client = new Redis(redisUrl);
  const keyPrefix = `exp${Math.random().toString(36).slice(2, 8)}:`;
  const refreshTokenTtl = 2;
  const auth = createAuth({
    secret: SECRET,
    redis: redisUrl,
    keyPrefix,
    accessTokenTtl: 1,
    refreshTokenTtl,
    verifyCacheSize: 0,
    keyBuckets,
  });
  const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await client.info('memory'))![1]);
  try {
    await client.call('MEMORY', 'PURGE').catch(() => {});
    const usedMemoryBaseline = await usedMemory();
    const started = Date.now();
    await login(auth, sessions, Math.ceil(sessions / 4), BROWSER_META);
    const keysWhileLive = (await keysUnder(client, keyPrefix)).length;
    const usedMemoryLive = await usedMemory();
    const expiresAt = started + refreshTokenTtl * 1000;
    await sleep(Math.max(0, expiresAt - Date.now()));
    // Redis's active expiry removes keys in the background; DBSIZE counts keys not yet reclaimed.
    let keysLeft = await client.dbsize();
    while (keysLeft > 0 && Date.now() - expiresAt < 15_000) {
      await sleep(100);
      keysLeft = await client.dbsize();
    }
    const secondsToEmpty = (Date.now() - expiresAt) / 1000;
    await client.call('MEMORY', 'PURGE').catch(() => {});
    return {
      sessions,
      refreshTokenTtl,
      keysWhileLive,
      keysLeft,
      secondsToEmpty,
      usedMemoryBaseline,
      usedMemoryLive,
      usedMemoryAfter: await usedMemory(),
    };
  } finally {
    await auth.close();
    client.disconnect();
  }
}

export interface GrowthResult {
  label: string;
  sessions: number;
  users: number;
  /** How the sessions were recorded. */
  recordFormat: 'text' | 'binary';
  /** Growth of INFO memory `used_memory` while the sessions were created, per session. */
  bytesPerSession: number;
}

const usedMemory = async (client: Redis) =>
  Number(/used_memory:(\d+)/.exec(await client.info('memory'))![1]);

/** How the sessions of a used_memory row are recorded, and whether each is refreshed once. */
export interface GrowthOptions {
  keyBuckets?: number;
  recordFormat?: 'text' | 'binary';
  /**
   * Refresh each session once after its login: the record a session that has been used keeps
   * (its rotation time; a text record also part of the replaced jti, with a grace period).
   * Undefined: logins only.
   */
  refreshed?: { refreshGracePeriod: number };
}

/**
 * What a user sizing a Redis sees: the growth of `used_memory` over `sessions` logins (key
 * names, hash tables, expiry entries and allocator rounding included), on an empty database
 * under the default key prefix.
 */
export async function usedMemoryPerSession(
  redisUrl: string,
  label: string,
  sessions: number,
  users: number,
  meta: typeof BROWSER_META,
  { keyBuckets = 0, recordFormat = 'binary', refreshed }: GrowthOptions = {},
): Promise<GrowthResult> {
  const client = new Redis(redisUrl);
  const auth = createAuth({
    secret: SECRET,
    redis: redisUrl,
    keyPrefix: 'auth:',
    maxSessionsPerUser: 0,
    verifyCacheSize: 0,
    keyBuckets,
    recordFormat,
    ...(refreshed ?? {}),
  });
  try {
    await client.flushdb();
    // One login first, so the connection, the script cache and the database's tables exist.
    await auth.generateTokens({ id: 'warm-up' }, meta);
    await client.call('MEMORY', 'PURGE').catch(() => {});
    const before = await usedMemory(client);
    const tokens = await login(auth, sessions, users, meta);
    if (refreshed) await refreshEach(auth, tokens, meta);
    await client.call('MEMORY', 'PURGE').catch(() => {});
    const after = await usedMemory(client);
    const bytesPerSession = Math.round((after - before) / sessions);
    return { label, sessions, users, recordFormat, bytesPerSession };
  } finally {
    await client.flushdb();
    await auth.close();
    client.disconnect();
  }
}
