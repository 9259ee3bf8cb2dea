import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../../examples/basic/app.js';
import { type Auth, createAuth } from '../../src/index.js';
import { SECRET } from '../helpers/forge.js';
import { call, serve, type Served } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';

const alice = { username: 'alice', password: 'wonderland' };

let redis: RedisServer;
let auth: Auth;
let server: Served;
let injected: Redis | undefined;

/** A request that must answer, and quickly: returns the status and how long it took. */
async function timed(path: string, options: Parameters<typeof call>[2] = {}) {
  const started = Date.now();
  const reply = await call(server.url, path, options);
  return { ...reply, ms: Date.now() - started };
}

beforeEach(async () => {
  redis = await RedisServer.start();
});
afterEach(async () => {
  await server?.close();
  await auth?.close();
  injected?.disconnect();
  injected = undefined;
  await redis.stop();
});

async function startApp(redisOption: string | Redis): Promise<void> {
  auth = createAuth({ secret: SECRET, redis: redisOption });
  server = await serve(createApp(auth));
}

describe('a Redis this test owns', () => {
  it('FLUSHDB logs everyone out: refresh is rejected and requireAuth answers 401', async () => {
    await startApp(redis.url);
    const tokens = (await call(server.url, '/login', { body: alice })).body;
    expect((await call(server.url, '/me', { token: tokens.access_token })).status).toBe(200);
    const admin = new Redis(redis.url);
    await admin.flushdb();
    admin.disconnect();
    const refreshed = await call(server.url, '/refresh', {
      body: { refresh_token: tokens.refresh_token },
    });
    expect(refreshed.status).toBe(401);
    expect(refreshed.body.error).toBe('token_revoked');
    const me = await call(server.url, '/me', { token: tokens.access_token });
    expect(me.status).toBe(401);
    expect(me.body.error).toBe('token_revoked');
  });

  for (const [name, option] of [
    ['a URL (the library’s own client)', () => redis.url],
    [
      'an injected ioredis client with default options',
      () => (injected = new Redis(redis.url).on('error', () => {})),
    ],
    // Its own commandTimeout bounds it, so the store arms no timer of its own.
    [
      'an injected client with the recommended options',
      () =>
        (injected = new Redis(redis.url, { maxRetriesPerRequest: 1, commandTimeout: 1000 }).on(
          'error',
          () => {},
        )),
    ],
  ] as const) {
    it(`stopped: 503 within 2 s, never 401; recovers after a restart without restarting the app — ${name}`, async () => {
      await startApp(option());
      const tokens = (await call(server.url, '/login', { body: alice })).body;
      await redis.kill();

      for (const [path, options] of [
        ['/login', { body: alice }],
        ['/refresh', { body: { refresh_token: tokens.refresh_token } }],
        ['/logout', { body: { refresh_token: tokens.refresh_token } }],
        ['/me', { token: tokens.access_token }],
      ] as const) {
        const reply = await timed(path, options);
        expect(reply.status, path).toBe(503);
        expect(reply.body.error).toBe('store_unavailable');
        expect(reply.headers.get('retry-after')).toBe('1');
        expect(reply.ms, path).toBeLessThan(2000);
      }
      // Optional auth degrades to anonymous rather than failing.
      expect((await timed('/public', { token: tokens.access_token })).body).toEqual({
        hello: 'stranger',
      });

      await redis.restart();
      // Reconnection is the client's job; give it its retry interval.
      let again = await timed('/login', { body: alice });
      for (let i = 0; i < 40 && again.status !== 200; i++) {
        await new Promise((r) => setTimeout(r, 100));
        again = await timed('/login', { body: alice });
      }
      expect(again.status).toBe(200);
      expect((await call(server.url, '/me', { token: again.body.access_token })).status).toBe(200);
      // The restart was empty: the session from before is gone, and stays gone.
      expect(
        (await call(server.url, '/refresh', { body: { refresh_token: tokens.refresh_token } }))
          .status,
      ).toBe(401);
    });
  }

  it('paused (SIGSTOP): 503 within 2 s, then recovers when it resumes', async () => {
    await startApp(redis.url);
    const tokens = (await call(server.url, '/login', { body: alice })).body;
    redis.pause();
    try {
      const me = await timed('/me', { token: tokens.access_token });
      expect(me.status).toBe(503);
      expect(me.ms).toBeLessThan(2000);
      const refreshed = await timed('/refresh', { body: { refresh_token: tokens.refresh_token } });
      expect(refreshed.status).toBe(503);
      expect(refreshed.ms).toBeLessThan(2000);
    } finally {
      redis.resume();
    }
    let me = await timed('/me', { token: tokens.access_token });
    for (let i = 0; i < 40 && me.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      me = await timed('/me', { token: tokens.access_token });
    }
    expect(me.status).toBe(200);
  });

  it('issues no token while Redis cannot record it', async () => {
    await startApp(redis.url);
    await redis.kill();
    await expect(auth.generateTokens({ id: 1 })).rejects.toMatchObject({
      code: 'store_unavailable',
      status: 503,
    });
    await expect(auth.checkRefreshToken('a.b.c')).resolves.toBe(false);
  });
});
