import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisStore, type SessionStore } from '../../src/index.js';
import { MAX_BATCH } from '../../src/stores/batched-reads.js';
import { RedisServer } from '../helpers/redis-server.js';

/*
 * Session checks on a single Redis node are gathered per turn of the event loop and read by one
 * script call (src/stores/batched-reads.ts). On a redis-server of this file's own, so that Redis's
 * own command counts show how the checks went out.
 */

let server: RedisServer;
let admin: Redis;
const clients: Redis[] = [];

beforeAll(async () => {
  server = await RedisServer.start();
  admin = new Redis(server.url);
});

afterAll(async () => {
  for (const client of clients) client.disconnect();
  admin.disconnect();
  await server.stop();
});

function client(options: { keyPrefix?: string } = {}): Redis {
  const made = new Redis(server.url, { enableAutoPipelining: true, ...options });
  clients.push(made);
  return made;
}

/** Calls of each command Redis has run so far (INFO commandstats). */
async function calls(): Promise<Record<string, number>> {
  const info = await admin.info('commandstats');
  return Object.fromEntries(
    [...info.matchAll(/^cmdstat_([\w|]+):calls=(\d+)/gm)].map(([, name, n]) => [name!, Number(n)]),
  );
}

async function counted<T>(
  run: () => Promise<T>,
): Promise<{ result: T; delta: Record<string, number> }> {
  const before = await calls();
  const result = await run();
  const after = await calls();
  const delta: Record<string, number> = {};
  for (const [name, n] of Object.entries(after)) {
    const d = n - (before[name] ?? 0);
    if (d > 0 && name !== 'info') delta[name] = d;
  }
  return { result, delta };
}

/** `users` users with one session each; the odd ones revoked. Returns [user, session, live]. */
async function sessions(store: SessionStore, users: number): Promise<[string, string, boolean][]> {
  const now = Date.now();
  const made: [string, string, boolean][] = [];
  for (let i = 0; i < users; i++) {
    const user = `user-${i}-${randomUUID().slice(0, 8)}`;
    const sessionId = randomUUID().replace(/-/g, '').slice(0, 16);
    await store.create(
      user,
      { sessionId, jti: randomUUID(), now, expiresAt: now + 60_000, ip: '', userAgent: '' },
      0,
    );
    if (i % 2 === 1) await store.revoke(user, sessionId);
    made.push([user, sessionId, i % 2 === 0]);
  }
  return made;
}

describe('session checks on one Redis node, batched', () => {
  it('answers 100 concurrent checks correctly with one script call', async () => {
    const store = redisStore(client(), { keyPrefix: 'batch:' });
    const made = await sessions(store, 100);
    const check = () => Promise.all(made.map(([user, sid]) => store.isLive(user, sid, Date.now())));
    await check(); // Redis learns the script (EVALSHA, NOSCRIPT, EVAL) on its first batch
    const { result, delta } = await counted(check);
    expect(result).toEqual(made.map(([, , live]) => live));
    // All 100 checks began in the same turn of the event loop: one script call, whose HGETs
    // Redis counts too. Without batching this would be 100 HGET commands, and no EVALSHA.
    expect(delta).toEqual({ evalsha: 1, hget: 100 });
    await store.close();
  });

  it(`splits a turn of 1,000 checks into script calls of at most ${MAX_BATCH}`, async () => {
    const store = redisStore(client(), { keyPrefix: 'many:' });
    const made = await sessions(store, 100);
    const checks = Array.from({ length: 1000 }, (_, i) => made[i % made.length]!);
    const check = () =>
      Promise.all(checks.map(([user, sid]) => store.isLive(user, sid, Date.now())));
    await check();
    const { result, delta } = await counted(check);
    expect(result).toEqual(checks.map(([, , live]) => live));
    expect(delta).toEqual({ evalsha: Math.ceil(1000 / MAX_BATCH), hget: 1000 });
    await store.close();
  });

  it('sends a lone check as a plain HGET, no script', async () => {
    const store = redisStore(client(), { keyPrefix: 'lone:' });
    const [[user, sid]] = (await sessions(store, 1)) as [[string, string, boolean]];
    const { result, delta } = await counted(() => store.isLive(user, sid, Date.now()));
    expect(result).toBe(true);
    expect(delta).toEqual({ hget: 1 });
    await store.close();
  });

  it('reads the right keys through a client with a keyPrefix of its own', async () => {
    const store = redisStore(client({ keyPrefix: 'app:' }), { keyPrefix: 'own:' });
    const made = await sessions(store, 20);
    const answers = await Promise.all(
      made.map(([user, sid]) => store.isLive(user, sid, Date.now())),
    );
    expect(answers).toEqual(made.map(([, , live]) => live));
    // The hashes are where the client's prefix puts them, and nowhere else.
    expect(await admin.keys('own:*')).toEqual([]);
    expect((await admin.keys('app:own:*')).length).toBe(10);
    await store.close();
  });

  it('a session id that cannot exist, or a user with no sessions, is simply not live', async () => {
    const store = redisStore(client(), { keyPrefix: 'none:' });
    const [[user, sid]] = (await sessions(store, 1)) as [[string, string, boolean]];
    const answers = await Promise.all([
      store.isLive(user, sid, Date.now()),
      store.isLive(user, 'AAAAAAAAAAAAAAAA', Date.now()),
      store.isLive('nobody', sid, Date.now()),
      store.isLive(user, 'not a session id!', Date.now()),
      store.isLive(user, `${sid}:0`, Date.now()),
    ]);
    expect(answers).toEqual([true, false, false, false, false]);
    await store.close();
  });

  it('a frozen Redis fails every check of the batch within the timeout, then checks work again', async () => {
    const store = redisStore(client(), { keyPrefix: 'frozen:', timeout: 200 });
    const made = await sessions(store, 10);
    server.pause();
    const started = Date.now();
    let outcomes: PromiseSettledResult<boolean>[];
    try {
      outcomes = await Promise.allSettled(
        made.map(([user, sid]) => store.isLive(user, sid, Date.now())),
      );
    } finally {
      server.resume();
    }
    expect(Date.now() - started).toBeLessThan(200 + 250);
    expect(outcomes.map((o) => o.status)).toEqual(made.map(() => 'rejected'));
    for (const outcome of outcomes)
      expect(String((outcome as PromiseRejectedResult).reason)).toMatch(/within 200 ms/);
    const answers = await Promise.all(
      made.map(([user, sid]) => store.isLive(user, sid, Date.now())),
    );
    expect(answers).toEqual(made.map(([, , live]) => live));
    await store.close();
  });
});
