import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { redisStore, type SessionStore } from '../../src/index.js';
import { CREATE_ARGS, CREATE_FIELDS, CREATE_SESSIONS } from '../../src/stores/lua.js';
import { packArgs } from '../../src/stores/script-args.js';
import { MAX_BATCH } from '../../src/stores/turn-batcher.js';
import { RedisServer } from '../helpers/redis-server.js';

/*
 * On a single Redis node, session checks, logins and rotations are gathered per turn of the event
 * loop and sent as one script call per kind (src/stores/turn-batcher.ts). On a redis-server of
 * this file's own, so that Redis's own command counts show how the calls went out.
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

function client(options: { keyPrefix?: string; enableAutoPipelining?: boolean } = {}): Redis {
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

const newSession = (sessionId: string, now = Date.now()) => ({
  sessionId,
  jti: randomUUID(),
  now,
  expiresAt: now + 60_000,
  ip: '203.0.113.7',
  userAgent: 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
});
const sid = () => randomUUID().replace(/-/g, '').slice(0, 16);

/** `users` users with one session each; the odd ones revoked. Returns [user, session, live]. */
async function sessions(store: SessionStore, users: number): Promise<[string, string, boolean][]> {
  const now = Date.now();
  const made: [string, string, boolean][] = [];
  for (let i = 0; i < users; i++) {
    const user = `user-${i}-${randomUUID().slice(0, 8)}`;
    const sessionId = sid();
    await store.create(user, { ...newSession(sessionId, now), ip: '', userAgent: '' }, 0);
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

  it("whole-record reads (the session strategy's check) batch the same way, metadata and all", async () => {
    const store = redisStore(client(), { keyPrefix: 'records:' });
    const now = Date.now();
    const made: [string, string, boolean][] = [];
    for (let i = 0; i < 60; i++) {
      const user = `user-${i}-${randomUUID().slice(0, 8)}`;
      const sessionId = sid();
      // Long user agents: the metadata spans several chunk fields beside the core record.
      const userAgent = `${newSession(sessionId).userAgent} ${'x'.repeat(i * 3)}`;
      await store.create(user, { ...newSession(sessionId, now), userAgent }, 0);
      if (i % 3 === 1) await store.revoke(user, sessionId);
      made.push([user, sessionId, i % 3 !== 1]);
    }
    // One lone read per session, one after another: the plain HMGET answers to compare with.
    const alone: (Awaited<ReturnType<SessionStore['get']>> | undefined)[] = [];
    for (const [user, id] of made) {
      const { result, delta } = await counted(() => store.get(user, id, Date.now()));
      expect(delta).toEqual({ hmget: 1 });
      alone.push(result);
    }
    expect(alone.map((record) => record !== undefined)).toEqual(made.map(([, , live]) => live));
    expect(alone[0]?.userAgent.length).toBeGreaterThan(64);
    const read = () => Promise.all(made.map(([user, id]) => store.get(user, id, Date.now())));
    await read(); // Redis learns the script
    const { result, delta } = await counted(read);
    expect(result).toEqual(alone);
    expect(delta).toEqual({ evalsha: 1, hmget: made.length });
    await store.close();
  });

  it('reads and writes the right keys through a client with a keyPrefix of its own', async () => {
    const store = redisStore(client({ keyPrefix: 'app:' }), { keyPrefix: 'own:' });
    const made = await sessions(store, 20);
    // And logins batched in one turn: their keys too get the client's prefix.
    const batch = Array.from({ length: 10 }, (_, i) => [`batched-${i}`, sid()] as const);
    await Promise.all(batch.map(([user, id]) => store.create(user, newSession(id), 0)));
    const answers = await Promise.all(
      [...made, ...batch].map(([user, id]) => store.isLive(user, id, Date.now())),
    );
    expect(answers).toEqual([...made.map(([, , live]) => live), ...batch.map(() => true)]);
    // The hashes are where the client's prefix puts them, and nowhere else.
    expect(await admin.keys('own:*')).toEqual([]);
    expect((await admin.keys('app:own:*')).length).toBe(20);
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

  it("still answers when the app's tests fake the timers (setImmediate included)", async () => {
    // ioredis's own auto-pipelining waits for the global setImmediate, so this client has it off:
    // the batching must not add a wait on a fake clock of its own.
    const store = redisStore(client({ enableAutoPipelining: false }), { keyPrefix: 'fake:' });
    const made = await sessions(store, 4);
    vi.useFakeTimers();
    try {
      const answers = await Promise.all(
        made.map(([user, sid]) => store.isLive(user, sid, Date.now())),
      );
      expect(answers).toEqual(made.map(([, , live]) => live));
    } finally {
      vi.useRealTimers();
    }
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

describe('logins and rotations on one Redis node, batched', () => {
  it('100 concurrent logins are one script call, and each session is there with its metadata', async () => {
    const store = redisStore(client(), { keyPrefix: 'logins:' });
    await store.create('warm-up', newSession(sid()), 0);
    await Promise.all([
      store.create('warm', newSession(sid()), 0),
      store.create('up', newSession(sid()), 0),
    ]);
    const logins = Array.from({ length: 100 }, (_, i) => [`user-${i}`, sid()] as const);
    const { delta } = await counted(() =>
      Promise.all(logins.map(([user, id]) => store.create(user, newSession(id), 0))),
    );
    expect(delta.evalsha).toBe(1);
    for (const [user, id] of logins) {
      const record = await store.get(user, id, Date.now());
      expect(record).toMatchObject({ sessionId: id, ip: '203.0.113.7' });
      expect(record!.userAgent).toContain('Firefox');
    }
    await store.close();
  });

  it('rotations of one token in one turn answer as they would one after another', async () => {
    const store = redisStore(client(), { keyPrefix: 'rotations:' });
    const id = sid();
    const login = newSession(id);
    await store.create('tabs', login, 0);
    const rotation = (newJti: string) => ({
      sessionId: id,
      oldJti: login.jti,
      newJti,
      now: Date.now(),
      expiresAt: Date.now() + 60_000,
      graceMs: 10_000,
    });
    // Two tabs refresh with the same token in the same turn: one rotates, the other is the
    // concurrent refresh the grace period allows. A third, past the grace window, is reuse.
    const [first, second] = await Promise.all([
      store.rotate('tabs', rotation(randomUUID())),
      store.rotate('tabs', rotation(randomUUID())),
    ]);
    expect([first, second]).toEqual(['rotated', 'superseded']);
    const late = { ...rotation(randomUUID()), graceMs: 0 };
    expect(await store.rotate('tabs', late)).toBe('reused');
    expect(await store.isLive('tabs', id, Date.now())).toBe(false);
    await store.close();
  });

  it("Redis's clock is read at most once per batch, and never for a rotation without a grace window", async () => {
    const store = redisStore(client(), { keyPrefix: 'clock:' });
    const major = Number(/redis_version:(\d+)/.exec(await admin.info('server'))![1]);
    // Loads the batched login script (EVALSHA, NOSCRIPT, EVAL), which the counts leave out.
    await Promise.all([
      store.create('clock-warm', newSession(sid()), 0),
      store.create('clock-up', newSession(sid()), 0),
    ]);
    const logins = Array.from({ length: 20 }, (_, i) => [`clock-${i}`, newSession(sid())] as const);
    const created = await counted(() =>
      Promise.all(logins.map(([user, login]) => store.create(user, login, 0))),
    );
    const rotate = (graceMs: number) =>
      Promise.all(
        logins.map(([user, login]) => {
          const newJti = randomUUID();
          const done = store.rotate(user, {
            sessionId: login.sessionId,
            oldJti: login.jti,
            newJti,
            now: Date.now(),
            expiresAt: Date.now() + 60_000,
            graceMs,
          });
          login.jti = newJti;
          return done;
        }),
      );
    await rotate(0); // loads the batched rotate script
    const strict = await counted(() => rotate(0));
    const graced = await counted(() => rotate(10_000));
    for (const { result, delta } of [strict, graced]) {
      expect(result).toEqual(logins.map(() => 'rotated'));
      expect(delta.evalsha).toBe(1);
    }
    expect(created.delta.evalsha).toBe(1);
    // A rotation with a window stamps itself by Redis's clock: once for the batch.
    expect(graced.delta.time).toBe(1);
    if (major >= 7) {
      // Keys' expiries are pushed out by PEXPIREAT … GT, and a sliding session's touch or strict
      // reuse detection has no window to judge: no TIME at all.
      expect(created.delta.time).toBeUndefined();
      expect(strict.delta.time).toBeUndefined();
    } else {
      // Before Redis 7, pushing an existing key's expiry out compares against Redis's clock: once
      // a batch, not once a call (these logins made their keys: none needed it).
      expect(created.delta.time ?? 0).toBeLessThanOrEqual(1);
      expect(strict.delta.time).toBe(1);
    }
    await store.close();
  });

  it("one login's failure (a key that is not a hash) fails that login alone", async () => {
    const store = redisStore(client(), { keyPrefix: 'broken:' });
    await Promise.all([
      store.create('warm', newSession(sid()), 0),
      store.create('up', newSession(sid()), 0),
    ]);
    await admin.set('broken:{u:mallory}', 'not a hash');
    const users = ['alice', 'mallory', 'bob'];
    const ids = users.map(() => sid());
    const { result, delta } = await counted(() =>
      Promise.allSettled(users.map((user, i) => store.create(user, newSession(ids[i]!), 0))),
    );
    expect(delta.evalsha).toBe(1);
    expect(result.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(String((result[1] as PromiseRejectedResult).reason)).toMatch(/WRONGTYPE/);
    expect(await store.isLive('alice', ids[0]!, Date.now())).toBe(true);
    expect(await store.isLive('bob', ids[2]!, Date.now())).toBe(true);
    await store.close();
  });

  it('a call of a batch that is short of arguments fails alone and reads none of the next call', async () => {
    const now = Date.now();
    const packed = (sessionId: string) =>
      packArgs(CREATE_FIELDS, {
        owner: '',
        sessionId,
        core: 'core',
        expiresAt: now + 60_000,
        expiresAtText: String(now + 60_000),
        now,
        maxSessions: 0,
      });
    // The second call says it has no argument: it must not take the third call's count for one.
    const replies = (await admin.eval(
      CREATE_SESSIONS,
      3,
      'short:{u:a}',
      'short:{u:b}',
      'short:{u:c}',
      ...[CREATE_ARGS.length, packed('first')],
      ...[CREATE_ARGS.length - 1],
      ...[CREATE_ARGS.length, packed('third')],
    )) as unknown[];
    expect(replies[0]).toBe(1);
    expect(String(replies[1])).toMatch(/expected 1 arguments, got 0/);
    expect(replies[2]).toBe(1);
    expect(await admin.hkeys('short:{u:a}')).toEqual(['first']);
    expect(await admin.exists('short:{u:b}')).toBe(0);
    expect(await admin.hkeys('short:{u:c}')).toEqual(['third']);
  });

  it("one check's or read's failure (a key that is not a hash) fails that caller alone", async () => {
    const store = redisStore(client(), { keyPrefix: 'badread:' });
    const [alice, bob] = [sid(), sid()];
    await store.create('alice', newSession(alice), 0);
    await store.create('bob', newSession(bob), 0);
    await admin.set('badread:{u:mallory}', 'not a hash');
    const checks = (): Promise<PromiseSettledResult<unknown>[]> =>
      Promise.allSettled([
        store.isLive('alice', alice, Date.now()),
        store.isLive('mallory', sid(), Date.now()),
        store.isLive('bob', bob, Date.now()),
      ]);
    const reads = (): Promise<PromiseSettledResult<unknown>[]> =>
      Promise.allSettled([
        store.get('alice', alice, Date.now()),
        store.get('mallory', sid(), Date.now()),
        store.get('bob', bob, Date.now()),
      ]);
    for (const [run, command] of [
      [checks, 'hget'],
      [reads, 'hmget'],
    ] as const) {
      await run(); // Redis learns the script
      const { result, delta } = await counted(run);
      // One script call: the bad key's read failed inside it, the others were answered.
      expect(delta.evalsha).toBe(1);
      expect(delta[command]).toBe(3);
      expect(result.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(String((result[1] as PromiseRejectedResult).reason)).toMatch(/WRONGTYPE/);
      expect((result[0] as PromiseFulfilledResult<unknown>).value).toBeTruthy();
      expect((result[2] as PromiseFulfilledResult<unknown>).value).toBeTruthy();
    }
    await store.close();
  });

  it('with waitForReplicas, a batch is confirmed by one WAIT on a writer connection', async () => {
    // This server has no replica: every write of the batch runs, and none is confirmed.
    const store = redisStore(client(), {
      keyPrefix: 'confirmed:',
      waitForReplicas: 1,
      timeout: 300,
    });
    const ids = [sid(), sid(), sid()];
    const { result, delta } = await counted(async () => {
      const settled = await Promise.allSettled(
        ids.map((id, i) => store.create(`user-${i}`, newSession(id), 0)),
      );
      await sleep(300); // WAIT gives up after the store's timeout too; then Redis counts it
      return settled;
    });
    // Unconfirmed: the store's own timer or WAIT's answer (0 replicas), whichever comes first.
    expect(result.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    for (const r of result)
      expect(String((r as PromiseRejectedResult).reason)).toMatch(
        /reached 0 of the 1 replicas|did not answer within \d+ ms/,
      );
    expect(delta.wait).toBe(1);
    expect((delta.evalsha ?? 0) + (delta.eval ?? 0)).toBeGreaterThanOrEqual(1);
    await store.close();
  });

  it('with waitForReplicas and no replica: the write fails saying so, not as a timeout', async () => {
    // WAIT's answer (0 replicas) or the store's timer, whichever comes first: either names the
    // option that asked for a replica.
    const store = redisStore(client(), { keyPrefix: 'unconfirmed:', waitForReplicas: 1 });
    for (const id of [sid(), sid()]) {
      const failure = await store.create('user-1', newSession(id), 0).catch((e: unknown) => e);
      expect(String(failure)).toMatch(
        /reached 0 of the 1 replicas required within \d+ ms \(waitForReplicas: 1\)|the replica that waitForReplicas asks to confirm the write, did not answer within \d+ ms/,
      );
    }
    await store.close();
  });
});
