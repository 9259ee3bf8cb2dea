import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Auth,
  AuthConfigError,
  type AuthOptions,
  createAuth,
  redisStore,
} from '../../src/index.js';
import { harnessRedisUrl, uniquePrefix } from '../helpers/auth.js';
import { decodeSegment, SECRET } from '../helpers/forge.js';
import { call, type Served, serve } from '../helpers/http.js';
import { monitorOf } from '../helpers/monitor.js';

/*
 * README "Session cache (opt-in)" shows the cache turned on with a URL, on the client the library
 * creates itself: createAuth({ secret, redis: process.env.REDIS_URL!, sessionCache: true }), and
 * `{ maxEntries, maxStaleness }` as the option's object form. session-cache.test.ts covers the
 * cache through redisStore(client, { sessionCache }); this file runs the README's own form. Each
 * instance adds only a keyPrefix of its own (the harness's Redis is shared by parallel files).
 *
 * "Without a Redis round trip" is checked from Redis's side: MONITOR on the harness Redis counts
 * every command that names a key under the test's prefix, whoever sends it. This file runs in the
 * parallel pass: bounds are generous and nothing asserts a time shorter than 2 s.
 */

const BOUND_MS = 2000;

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** The README's call, with the test's key prefix; closed after the test. */
function readmeAuth(keyPrefix: string, options: Partial<AuthOptions> = {}): Auth {
  const secret = SECRET;
  const auth = createAuth({
    secret,
    redis: harnessRedisUrl(),
    sessionCache: true,
    ...options,
    keyPrefix,
  });
  cleanup.push(() => auth.close());
  return auth;
}

/** A Koa server whose every request goes through `requireAuth()`. */
async function guarded(auth: Auth): Promise<Served> {
  const app = new Koa();
  app.use(auth.requireAuth());
  app.use((ctx) => {
    ctx.body = { sub: ctx.state.user.sub };
  });
  const server = await serve(app);
  cleanup.push(() => server.close());
  return server;
}

/**
 * Commands Redis runs on keys under `prefix`, seen through MONITOR. `settled()` sends a marker
 * command after everything before it and waits until MONITOR shows it: Redis feeds monitors in
 * the order it runs commands, so every command of a request already answered has been counted.
 */
async function commandsOn(
  prefix: string,
): Promise<{ count: () => number; settled: () => Promise<void> }> {
  const base = new Redis(harnessRedisUrl(), { maxRetriesPerRequest: 1, commandTimeout: 1000 });
  base.on('error', () => {});
  const probe = base.duplicate();
  probe.on('error', () => {});
  const monitor = await monitorOf(base);
  cleanup.push(async () => {
    monitor.disconnect();
    base.disconnect();
    await probe.quit().catch(() => probe.disconnect());
  });
  let count = 0;
  const markers = new Map<string, () => void>();
  monitor.on('monitor', (_time: string, args: string[]) => {
    for (const arg of args) {
      const marker = markers.get(arg);
      if (marker !== undefined) {
        markers.delete(arg);
        marker();
        return;
      }
    }
    if (args.some((arg) => arg.includes(prefix))) count++;
  });
  return {
    count: () => count,
    async settled() {
      // Outside the prefix: the marker is never counted.
      const marker = `kjr-monitor-marker:${randomUUID()}`;
      // A wait on the test's own MONITOR connection (busy when parallel files load Redis), not
      // a bound on the library: a generous one.
      let timer: NodeJS.Timeout | undefined;
      const seen = new Promise<void>((resolve, reject) => {
        markers.set(marker, resolve);
        timer = setTimeout(() => reject(new Error('MONITOR never showed the marker')), 10_000);
      });
      try {
        await probe.exists(marker);
        await seen;
      } finally {
        clearTimeout(timer);
        markers.delete(marker);
      }
    },
  };
}

/** GET /me with the token: the status and, on a refusal, the error code. */
async function me(server: Served, token: string): Promise<{ status: number; error?: string }> {
  const reply = await call(server.url, '/me', { token });
  return reply.status === 200
    ? { status: 200 }
    : { status: reply.status, error: (reply.body as { error?: string } | undefined)?.error };
}

/**
 * Sends batches of 5 requests until one batch made no Redis command under the prefix (the
 * cache's invalidation feed may still be setting up); every answer on the way must be 200.
 */
async function untilServedFromMemory(
  server: Served,
  token: string,
  redis: { count: () => number; settled: () => Promise<void> },
): Promise<void> {
  const deadline = Date.now() + BOUND_MS;
  while (Date.now() < deadline) {
    await redis.settled();
    const before = redis.count();
    for (let i = 0; i < 5; i++) expect(await me(server, token)).toEqual({ status: 200 });
    await redis.settled();
    if (redis.count() === before) return;
    await sleep(10);
  }
  throw new Error(`requireAuth() still asked Redis after ${BOUND_MS} ms`);
}

const claims = (token: string) => decodeSegment(token, 1) as { sub: string; sid: string };

describe('README "Session cache (opt-in)": createAuth({ redis: URL, sessionCache: true })', () => {
  it('serves requireAuth() repeat requests without Redis, and a revocation by a second instance is refused', async () => {
    const prefix = uniquePrefix();
    const redis = await commandsOn(prefix);
    const auth = readmeAuth(prefix);
    const other = readmeAuth(prefix);
    // The same Redis, the same prefix, no session cache: every request asks Redis.
    const plain = createAuth({ secret: SECRET, redis: harnessRedisUrl(), keyPrefix: prefix });
    cleanup.push(() => plain.close());
    const server = await guarded(auth);
    const plainServer = await guarded(plain);

    const { access_token: token } = await auth.generateTokens({ id: 'readme-user' });
    await untilServedFromMemory(server, token, redis);
    let before = redis.count();
    for (let i = 0; i < 20; i++) expect(await me(server, token)).toEqual({ status: 200 });
    await redis.settled();
    expect(redis.count() - before).toBe(0);

    // The control: MONITOR does see this prefix's session checks when nothing caches them.
    before = redis.count();
    for (let i = 0; i < 5; i++) expect(await me(plainServer, token)).toEqual({ status: 200 });
    await redis.settled();
    expect(redis.count() - before).toBeGreaterThanOrEqual(5);

    // Revoked through the second instance (its own client from the same URL).
    const { sub, sid } = claims(token);
    before = redis.count();
    expect(await other.revokeSession(sub, sid)).toBe(true);
    await redis.settled();
    expect(redis.count()).toBeGreaterThan(before);
    const deadline = Date.now() + BOUND_MS;
    let answer = await me(server, token);
    while (answer.status === 200) {
      expect(Date.now(), 'the first instance still accepts the revoked session').toBeLessThan(
        deadline,
      );
      await sleep(1);
      answer = await me(server, token);
    }
    expect(answer).toEqual({ status: 401, error: 'token_revoked' });
    for (let i = 0; i < 5; i++)
      expect(await me(server, token)).toEqual({ status: 401, error: 'token_revoked' });
    expect(await me(plainServer, token)).toEqual({ status: 401, error: 'token_revoked' });
  });
});

describe('README "Session cache (opt-in)": the option object { maxEntries, maxStaleness }', () => {
  const readmeCache = { maxEntries: 100_000, maxStaleness: 1000 };

  it('is accepted as the README writes it, by redisStore(client, …) and by createAuth({ redis: URL, … })', async () => {
    const client = new Redis(harnessRedisUrl(), { maxRetriesPerRequest: 1, commandTimeout: 1000 });
    client.on('error', () => {});
    cleanup.push(() => client.quit().catch(() => client.disconnect()));
    const prefix = uniquePrefix();
    const redis = await commandsOn(prefix);
    const store = redisStore(client, {
      keyPrefix: prefix,
      sessionCache: { maxEntries: 100_000, maxStaleness: 1000 },
    });
    const fromStore = createAuth({ secret: SECRET, store });
    cleanup.push(() => fromStore.close());
    const fromUrl = readmeAuth(prefix, { sessionCache: readmeCache });
    for (const auth of [fromStore, fromUrl]) {
      const server = await guarded(auth);
      const { access_token } = await auth.generateTokens({ id: 'max-entries' });
      await untilServedFromMemory(server, access_token, redis);
    }
  });

  it('bounds the cache: with maxEntries 1 a second user evicts the first, with the README’s 100000 it does not', async () => {
    for (const maxEntries of [1, readmeCache.maxEntries]) {
      const prefix = uniquePrefix();
      const redis = await commandsOn(prefix);
      const auth = readmeAuth(prefix, { sessionCache: { ...readmeCache, maxEntries } });
      const server = await guarded(auth);
      const first = (await auth.generateTokens({ id: 'first' })).access_token;
      const second = (await auth.generateTokens({ id: 'second' })).access_token;
      await untilServedFromMemory(server, first, redis);
      await untilServedFromMemory(server, second, redis);
      const before = redis.count();
      expect(await me(server, first)).toEqual({ status: 200 });
      await redis.settled();
      const asked = redis.count() - before;
      if (maxEntries === 1)
        expect(asked, 'maxEntries 1: the first user was evicted').toBeGreaterThan(0);
      else expect(asked, 'maxEntries 100000: both users stay cached').toBe(0);
    }
  });

  it('refuses a maxEntries that is not a whole number from 1 to 10,000,000 (AuthConfigError invalid_option)', () => {
    const client = new Redis(harnessRedisUrl(), { lazyConnect: true });
    for (const maxEntries of [0, -1, 1.5, '100000', 10_000_001, Number.NaN, Infinity]) {
      const sessionCache = { ...readmeCache, maxEntries } as unknown as { maxEntries: number };
      for (const attempt of [
        () =>
          createAuth({
            secret: SECRET,
            redis: harnessRedisUrl(),
            keyPrefix: uniquePrefix(),
            sessionCache,
          }),
        () => redisStore(client, { keyPrefix: uniquePrefix(), sessionCache }),
      ]) {
        let error: unknown;
        try {
          attempt();
        } catch (caught) {
          error = caught;
        }
        expect(error, String(maxEntries)).toBeInstanceOf(AuthConfigError);
        expect((error as AuthConfigError).code).toBe('invalid_option');
        expect((error as AuthConfigError).option).toBe('sessionCache.maxEntries');
      }
    }
    client.disconnect();
  });
});
