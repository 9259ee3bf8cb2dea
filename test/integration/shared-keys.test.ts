import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuthConfigError,
  AuthError,
  createAuth,
  memoryStore,
  redisStore,
  type SessionStore,
} from '../../src/index.js';
import { SCAN_FIELDS } from '../../src/stores/lua.js';
import {
  harnessRedisUrl,
  passesSessionCheck as check,
  uniquePrefix,
  untilCached,
} from '../helpers/auth.js';
import { SECRET } from '../helpers/forge.js';
import { compactHashEncoding } from '../helpers/redis-server.js';

/*
 * The shared layout (`keyBuckets`): many users' sessions in one hash. What it must keep from the
 * per-user layout (users apart, keys that expire with their last session, bounded memory, the
 * session cache's coherence) and what it is for (under 200 bytes per one-session user).
 */

const CHROME = {
  ip: '203.0.113.7',
  userAgent:
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
};

let client: Redis;
const opened: { close(): Promise<unknown> }[] = [];
beforeAll(() => {
  client = new Redis(harnessRedisUrl());
});
afterAll(async () => {
  for (const auth of opened) await auth.close();
  await client.quit();
});

function shared(keyBuckets: number, options: Parameters<typeof createAuth>[0] | object = {}) {
  const keyPrefix = uniquePrefix();
  const auth = createAuth({
    secret: SECRET,
    redis: harnessRedisUrl(),
    keyPrefix,
    keyBuckets,
    ...options,
  });
  opened.push(auth);
  return { auth, keyPrefix };
}

const keysOf = (prefix: string) => client.keys(`${prefix}*`);

describe('the shared layout (keyBuckets)', () => {
  it.each(['binary', 'text'] as const)(
    'keeps users in at most keyBuckets hashes, their fields led by a 16-character owner tag, in the compact encoding (%s records)',
    async (recordFormat) => {
      const { auth, keyPrefix } = shared(4, { recordFormat });
      for (let i = 0; i < 40; i++) await auth.generateTokens({ id: `user-${i}` }, CHROME);
      const keys = await keysOf(keyPrefix);
      expect(keys.length).toBeLessThanOrEqual(4);
      for (const key of keys) {
        expect(key).toMatch(new RegExp(`^${keyPrefix}\\{b:[0-3]\\}$`));
        expect(await client.object('ENCODING', key)).toBe(await compactHashEncoding(client));
        // Besides the families, the earliest time one may have expired: when a login prunes.
        for (const field of await client.hkeys(key))
          expect(field).toMatch(/^([\w-]{16}[\w-]+(:\d)?|~)$/);
        expect(await client.pttl(key)).toBeGreaterThan(2_500_000_000);
      }
      let total = 0;
      for (const key of keys) total += await client.hlen(key);
      // A record per session (a text one with its metadata chunk beside it), and each hash's
      // time to prune.
      expect(total).toBe((recordFormat === 'text' ? 80 : 40) + keys.length);
      for (let i = 0; i < 40; i++) {
        const sessions = await auth.listSessions(`user-${i}`);
        expect(sessions).toHaveLength(1);
        expect(sessions[0]).toMatchObject({ ip: CHROME.ip, userAgent: 'Chrome on Windows' });
      }
    },
  );

  it('a hostile user id stays a field tag: keys are numbered hashes whatever the id', async () => {
    const { auth, keyPrefix } = shared(8);
    for (const id of ['a}b{c', '{u:1}', 'x:y', '{b:0}', 'é|\u2028']) {
      await auth.generateTokens({ id });
      expect(await auth.listSessions(id)).toHaveLength(1);
    }
    for (const key of await keysOf(keyPrefix)) expect(key).toMatch(/\{b:[0-7]\}$/);
  });

  it('revokeAll ends one user only; the hash then expires with the latest session left in it', async () => {
    const { auth, keyPrefix } = shared(1, { accessTokenTtl: 1, refreshTokenTtl: 60 });
    const [key] = [`${keyPrefix}{b:0}`];
    await auth.generateTokens({ id: 'long' });
    await auth.generateTokens({ id: 'long' });
    await auth.createRefreshToken({ id: 'short' }, { lifetime: 2 });
    expect(await auth.revokeAllSessions('long')).toBe(2);
    expect(await auth.listSessions('long')).toEqual([]);
    expect(await auth.listSessions('short')).toHaveLength(1);
    const ttl = await client.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(2000);
    await sleep(2100);
    expect(await keysOf(keyPrefix)).toEqual([]);
  });

  it('a login prunes the expired sessions of every user of its hash', async () => {
    const { auth, keyPrefix } = shared(1, { accessTokenTtl: 1, refreshTokenTtl: 60 });
    const key = `${keyPrefix}{b:0}`;
    await auth.generateTokens({ id: 'stays' });
    // No ip or user agent given, so one field per session.
    for (let i = 0; i < SCAN_FIELDS; i++)
      await auth.createRefreshToken({ id: `gone-${i}` }, { lifetime: 2 });
    const families = async () => (await client.hkeys(key)).filter((field) => field !== '~');
    expect(await families()).toHaveLength(SCAN_FIELDS + 1);
    // The hash records when a login must prune: the earliest of its sessions' expiries.
    expect(Number(await client.hget(key, '~'))).toBeLessThanOrEqual(Date.now() + 2000);
    await sleep(2100);
    await auth.generateTokens({ id: 'new' });
    expect(await families()).toHaveLength(2);
    // Now the earliest expiry is that of a 60 s session.
    expect(Number(await client.hget(key, '~'))).toBeGreaterThan(Date.now() + 50_000);
    expect(await auth.listSessions('stays')).toHaveLength(1);
    expect(await auth.listSessions('gone-0')).toEqual([]);
  });

  it('a refresh that ends a session sooner than its login did moves the time to prune forward', async () => {
    const { auth, keyPrefix } = shared(1, { accessTokenTtl: 1, refreshTokenTtl: 60 });
    const key = `${keyPrefix}{b:0}`;
    await auth.createRefreshToken({ id: 'stays' }, { lifetime: 60 });
    const token = (await auth.generateTokens({ id: 'shortened' })).refresh_token;
    expect(Number(await client.hget(key, '~'))).toBeGreaterThan(Date.now() + 50_000);
    // Its first refresh, by an instance whose refreshTokenTtl was lowered to 2 s (a deploy), gives
    // the session 2 s, not the 60 of its login. (A token's own lifetime is kept by its rotations.)
    const lowered = createAuth({
      secret: SECRET,
      redis: harnessRedisUrl(),
      keyPrefix,
      keyBuckets: 1,
      accessTokenTtl: 1,
      refreshTokenTtl: 2,
    });
    opened.push(lowered);
    await lowered.refreshTokens(token);
    expect(Number(await client.hget(key, '~'))).toBeLessThanOrEqual(Date.now() + 2000);
    await sleep(2100);
    await auth.createRefreshToken({ id: 'new' }, { lifetime: 60 });
    expect(await auth.listSessions('shortened')).toEqual([]);
    const families = (await client.hkeys(key)).filter((field) => field !== '~');
    expect(families).toHaveLength(2);
  });

  it('past the compact encoding (a hash of 600 users), the cap and the lists still keep each user to their own', async () => {
    const { auth, keyPrefix } = shared(1, { maxSessionsPerUser: 2 });
    const key = `${keyPrefix}{b:0}`;
    for (let i = 0; i < 600; i += 50)
      await Promise.all(
        Array.from({ length: 50 }, (_, j) => auth.generateTokens({ id: `u${i + j}` }, CHROME)),
      );
    // 600 fields (one binary record each): more than Redis keeps in a listpack by default (512).
    expect(await client.object('ENCODING', key)).toBe('hashtable');
    // The cap reads the user's own sessions page by page (HSCAN): the oldest of three goes.
    const first = await auth.generateTokens({ id: 'u7' }, CHROME);
    await auth.generateTokens({ id: 'u7' }, CHROME);
    expect(await auth.listSessions('u7')).toHaveLength(2);
    await expect(auth.refreshTokens(first.refresh_token)).resolves.toBeDefined();
    await auth.generateTokens({ id: 'u7' }, CHROME);
    expect(await auth.listSessions('u7')).toHaveLength(2);
    for (const id of ['u0', 'u8', 'u599']) expect(await auth.listSessions(id)).toHaveLength(1);
    expect(await auth.revokeAllSessions('u8')).toBe(1);
    expect(await auth.listSessions('u9')).toHaveLength(1);
  });

  it('refreshing and logging out one user of a hash leave the others signed in', async () => {
    const { auth } = shared(1, { refreshGracePeriod: 0 });
    const a = await auth.generateTokens({ id: 'a' });
    const b = await auth.generateTokens({ id: 'b' });
    const rotated = await auth.refreshTokens(a.refresh_token);
    // Reuse of a's old token ends a's session, and nothing of b's.
    await expect(auth.refreshTokens(a.refresh_token)).rejects.toMatchObject({
      code: 'refresh_reused',
    });
    await expect(auth.refreshTokens(rotated.refresh_token)).rejects.toBeInstanceOf(AuthError);
    expect(await auth.listSessions('a')).toEqual([]);
    const next = await auth.refreshTokens(b.refresh_token);
    await auth.invalidateRefreshToken(next.refresh_token);
    expect(await auth.listSessions('b')).toEqual([]);
  });

  it('with the session cache, a revocation on one instance is refused by another, and the other users of the hash stay signed in', async () => {
    const keyPrefix = uniquePrefix();
    const instance = () => {
      const redis = new Redis(harnessRedisUrl());
      const store: SessionStore = redisStore(redis, {
        keyPrefix,
        keyBuckets: 1,
        sessionCache: true,
      });
      const auth = createAuth({ secret: SECRET, store });
      // The store never quits a client it was given: the test does, after the instance.
      opened.push(auth, { close: () => redis.quit() });
      return { auth, store };
    };
    const [one, two] = [instance(), instance()];
    const a = await one.auth.generateTokens({ id: 'a' });
    const b = await one.auth.generateTokens({ id: 'b' });
    // Until the second instance answers both from its cache (its feed may still be setting up).
    await untilCached(two, a.access_token);
    await untilCached(two, b.access_token);
    await one.auth.revokeAllSessions('a');
    let refused = false;
    for (let i = 0; i < 100 && !refused; i++) {
      refused = !(await check(two.auth, a.access_token));
      if (!refused) await sleep(10);
    }
    expect(refused).toBe(true);
    // The invalidation named the whole hash: b's answer is read again, and is still "live".
    expect(await check(two.auth, b.access_token)).toBe(true);
    await untilCached(two, b.access_token);
  });

  it('takes a one-session user under 200 bytes of Redis in shared hashes, fewer than in a hash per user', async () => {
    const perSession = async (keyBuckets: number) => {
      const { auth, keyPrefix } = shared(keyBuckets, { maxSessionsPerUser: 0 });
      for (let i = 0; i < 1600; i += 100)
        await Promise.all(
          Array.from({ length: 100 }, (_, j) =>
            auth.generateTokens({ id: `user-${i + j}` }, CHROME),
          ),
        );
      let bytes = 0;
      for (const key of await keysOf(keyPrefix))
        bytes += Number(await client.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
      await auth.close();
      await client.del(...(await keysOf(keyPrefix)));
      return bytes / 1600;
    };
    // 1,600 sessions in 100 hashes: 16 per hash, as the README's sizing advice has it.
    const sharedBytes = await perSession(100);
    const perUserBytes = await perSession(0);
    // MEMORY USAGE leaves out each key's expiry entry and hash-table slots (about 35 bytes a key,
    // which the shared layout pays once per 16 sessions): `npm run bench` measures used_memory.
    expect(sharedBytes).toBeLessThan(200);
    expect(perUserBytes).toBeGreaterThan(sharedBytes + 20);
  });

  it('refuses a bad keyBuckets, and keyBuckets without Redis', () => {
    for (const keyBuckets of [-1, 1.5, '4', 2 ** 25, Number.NaN]) {
      expect(() => redisStore(harnessRedisUrl(), { keyBuckets: keyBuckets as number })).toThrow(
        AuthConfigError,
      );
      expect(() =>
        createAuth({ secret: SECRET, redis: harnessRedisUrl(), keyBuckets: keyBuckets as number }),
      ).toThrow(/keyBuckets/);
    }
    expect(() => createAuth({ secret: SECRET, keyBuckets: 4 })).toThrow(/keyBuckets.*redis/);
    const store = memoryStore();
    expect(() => createAuth({ secret: SECRET, store, keyBuckets: 4 })).toThrow(/keyBuckets/);
    return store.close();
  });
});
