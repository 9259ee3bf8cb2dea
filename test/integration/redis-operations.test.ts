import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { type Auth, createAuth, type TokenPair } from '../../src/index.js';
import { SECRET } from '../helpers/forge.js';
import { RedisServer } from '../helpers/redis-server.js';

/* What the README's Operations section claims, on small redis-servers this file owns. */

let redis: RedisServer;
let admin: Redis;
let auth: Auth;
afterEach(async () => {
  await auth?.close();
  admin?.disconnect();
  await redis.stop();
});

async function start(policy: string): Promise<void> {
  redis = await RedisServer.start(['--maxmemory', '4mb', '--maxmemory-policy', policy]);
  admin = new Redis(redis.url);
  auth = createAuth({ secret: SECRET, redis: redis.url });
}

/** Writes `count` 1 KiB keys without a TTL, in pipelines; returns how many were refused (OOM). */
async function fill(count: number): Promise<number> {
  let refused = 0;
  const value = 'x'.repeat(1024);
  for (let i = 0; i < count; i += 500) {
    const pipeline = admin.pipeline();
    for (let j = i; j < Math.min(count, i + 500); j++) pipeline.set(`junk:${j}`, value);
    for (const [error] of (await pipeline.exec()) ?? []) if (error) refused++;
  }
  return refused;
}

/** Writes small keys one at a time until Redis refuses one (OOM); returns how many it took. */
async function topUp(from: number): Promise<number> {
  for (let i = 0; i < 10_000; i++) {
    try {
      await admin.set(`brim:${from + i}`, 'x'.repeat(64));
    } catch {
      return i;
    }
  }
  throw new Error('Redis never reached maxmemory');
}

/**
 * Fills to maxmemory, then tops up one key at a time: a pipeline's own buffers count, so only a
 * refused single write shows that memory is full. Redis's cron then shrinks idle clients' query
 * buffers (about 20 KB freed within 100 ms of the first refusal, measured), room enough for a
 * login: so top up again after a pause, until a write is refused right after one.
 */
async function fillToTheBrim(): Promise<void> {
  await fill(8000);
  let written = await topUp(0);
  for (let pause = 0; pause < 10; pause++) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const more = await topUp(written);
    if (more === 0) return;
    written += more;
  }
  throw new Error('Redis kept freeing memory after each top-up');
}

const liveCheck = (pair: TokenPair) =>
  auth.strategies.get('redis').readToken(pair.access_token, { checkSession: true });

describe('Redis memory policies', () => {
  it('noeviction at maxmemory: logins and refreshes answer 503 and change nothing; session checks and logouts still work', async () => {
    await start('noeviction');
    const pair = await auth.generateTokens({ id: 1 });
    const other = await auth.generateTokens({ id: 1 });
    await fillToTheBrim();
    await expect(auth.generateTokens({ id: 2 })).rejects.toMatchObject({
      code: 'store_unavailable',
    });
    await expect(auth.refreshTokens(pair.refresh_token)).rejects.toMatchObject({
      code: 'store_unavailable',
    });
    expect((await liveCheck(pair)).sub).toBe('1');
    // Logout only deletes, which Redis allows at maxmemory.
    await auth.invalidateRefreshToken(other.refresh_token);
    await expect(Promise.resolve(liveCheck(other))).rejects.toMatchObject({
      code: 'token_revoked',
    });
    // The refused rotation left nothing half-done: once memory is freed the same token rotates.
    const junk = (await admin.keys('*')).filter((key) => !key.startsWith('auth:'));
    for (let i = 0; i < junk.length; i += 500) await admin.unlink(...junk.slice(i, i + 500));
    expect((await auth.refreshTokens(pair.refresh_token)).token_type).toBe('bearer');
  });

  for (const policy of ['allkeys-lru', 'volatile-lru']) {
    it(`${policy}: under memory pressure sessions are evicted, which logs users out early and never lets them back in`, async () => {
      await start(policy);
      const pairs = [];
      for (let id = 0; id < 20; id++) pairs.push(await auth.generateTokens({ id }));
      // allkeys-*: the junk pushes sessions out; volatile-*: only keys with a TTL (all of ours) can go,
      // so a little pressure is enough. Junk writes past the limit are refused under volatile-*.
      await fill(policy === 'allkeys-lru' ? 40_000 : 8000);
      let evicted = 0;
      for (const pair of pairs) {
        const live = await auth.checkRefreshToken(pair.refresh_token);
        if (!live) {
          evicted++;
          await expect(auth.refreshTokens(pair.refresh_token)).rejects.toMatchObject({
            status: 401,
          });
        }
      }
      expect(evicted).toBeGreaterThan(0);
      // Every key left still expires.
      for (const key of await admin.keys('auth:*'))
        expect(await admin.pttl(key)).toBeGreaterThan(0);
    });
  }
});

describe('Redis persistence', () => {
  it('an empty restart logs everyone out; restoring an older snapshot rolls sessions back, logouts included (why the README says not to restore session keys)', async () => {
    redis = await RedisServer.start();
    admin = new Redis(redis.url);
    auth = createAuth({ secret: SECRET, redis: redis.url });
    const kept = await auth.generateTokens({ id: 1 });
    const loggedOut = await auth.generateTokens({ id: 1 });
    await admin.save(); // an RDB snapshot in the server's directory, loaded by the next start
    await auth.invalidateRefreshToken(loggedOut.refresh_token);
    expect(await auth.checkRefreshToken(loggedOut.refresh_token)).toBe(false);
    admin.disconnect();
    await redis.restart();
    admin = new Redis(redis.url);
    // The snapshot predates the logout: that session is alive again.
    const revived = async () =>
      auth.checkRefreshToken(loggedOut.refresh_token).catch(() => undefined);
    let state = await revived();
    for (let i = 0; i < 40 && state === undefined; i++) {
      await new Promise((r) => setTimeout(r, 100));
      state = await revived();
    }
    expect(state).toBe(true);
    expect(await auth.checkRefreshToken(kept.refresh_token)).toBe(true);
    // The remedy: drop the session keys (here the whole database) and everyone logs in again.
    await admin.flushdb();
    expect(await auth.checkRefreshToken(loggedOut.refresh_token)).toBe(false);
    expect(await auth.checkRefreshToken(kept.refresh_token)).toBe(false);
  });
});

describe('What a flush does', () => {
  it("the README's command for a shared Redis deletes every session key and nothing else, whatever the user ids hold", async () => {
    redis = await RedisServer.start();
    admin = new Redis(redis.url);
    auth = createAuth({ secret: SECRET, redis: redis.url });
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('### What a flush does'));
    const command = /```sh\n(.+)\n/.exec(section)?.[1];
    expect(command).toMatch(/^redis-cli --scan/);
    const users = ["o'brien", 'say "hi"', 'back\\slash', 'two words', 'plain'];
    const pairs = await Promise.all(users.map((id) => auth.generateTokens({ id })));
    await admin.set('app:data', 'kept');
    await admin.set('authors', 'kept too');
    const run = spawnSync(
      'bash',
      ['-c', command!.replaceAll('redis-cli', `redis-cli -p ${redis.port}`)],
      {
        encoding: 'utf8',
      },
    );
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(await admin.keys('auth:*')).toEqual([]);
    expect(await admin.get('app:data')).toBe('kept');
    expect(await admin.get('authors')).toBe('kept too');
    for (const pair of pairs) expect(await auth.checkRefreshToken(pair.refresh_token)).toBe(false);
  });
});
