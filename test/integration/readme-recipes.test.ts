import Router from '@koa/router';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import Koa from 'koa';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mountLogin } from '../../examples/recipes/login-rate-limit.js';
import { healthRoutes } from '../../examples/recipes/readiness.js';
import { accountRoutes } from '../../examples/recipes/recent-login.js';
import { type Auth, createAuth } from '../../src/index.js';
import { harnessRedisUrl, testAuth } from '../helpers/auth.js';
import { SECRET } from '../helpers/forge.js';
import { call, serve, type Served } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';

/*
 * The README's recipes, run as the README shows them (examples/recipes/, which
 * test/unit/readme-examples.test.ts finds verbatim in the README): the Redis login rate limiter,
 * the readiness probe and the recent-login check, over real HTTP against real Redis.
 */

/** The client settings the README recommends for an injected ioredis client. */
const recommended = { maxRetriesPerRequest: 1, commandTimeout: 1000 };

let auth: Auth | undefined;
let server: Served | undefined;
let client: Redis | undefined;
let ownRedis: RedisServer | undefined;
/** Keys the rate limiter wrote on the harness Redis: deleted one by one, never a flush. */
const written: string[] = [];

afterEach(async () => {
  vi.useRealTimers();
  await server?.close();
  await auth?.close();
  if (client && written.length > 0) await client.del(...written.splice(0));
  client?.disconnect();
  await ownRedis?.stop();
  server = auth = client = ownRedis = undefined;
});

describe('README: login rate limiting in Redis', () => {
  it('refuses the 6th attempt of an ip and name with 429 and the key’s TTL; others pass', async () => {
    auth = testAuth();
    client = new Redis(harnessRedisUrl(), recommended);
    // The README's keys carry no prefix of ours: a name of its own keeps parallel runs apart.
    const name = `rl-${randomUUID()}`;
    const other = `rl-${randomUUID()}`;
    const app = new Koa();
    // Behind a proxy, so each request can say which client ip it comes from.
    app.proxy = true;
    mountLogin(app, auth, client, async (body) => {
      const { username, password } = body as { username?: string; password?: string };
      return password === 'right' && (username === name || username === other)
        ? { id: username }
        : null;
    });
    server = await serve(app);
    const login = (username: string, password: string, ip = '203.0.113.7') =>
      call(server!.url, '/auth/login', {
        body: { username, password },
        headers: { 'x-forwarded-for': ip },
      });
    const key = `login-failures:203.0.113.7:${name}`;
    written.push(key);

    for (let i = 0; i < 5; i++) {
      const wrong = await login(name, `guess-${i}`);
      expect(wrong.status).toBe(401);
      expect(wrong.body.error).toBe('invalid_credentials');
    }
    expect(await client.get(key)).toBe('5');
    // The 6th, even with the right password, is refused until the key expires.
    const refused = await login(name, 'right');
    expect(refused.status).toBe(429);
    expect(refused.body.error).toBe('rate_limited');
    const ttl = await client.ttl(key);
    expect(ttl).toBeGreaterThan(880);
    expect(ttl).toBeLessThanOrEqual(900);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(ttl);
    expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(900);
    // Retry-After is the key's TTL, whatever it is now, and a refused attempt is not counted.
    await client.expire(key, 42);
    const again = await login(name, 'right');
    expect(again.status).toBe(429);
    expect(['41', '42']).toContain(again.headers.get('retry-after'));
    expect(await client.get(key)).toBe('5');

    // Another name from that ip, and that name from another ip, are not held back.
    expect((await login(other, 'right')).status).toBe(200);
    expect((await login(name, 'right', '198.51.100.9')).status).toBe(200);
    // When the key is gone (its 15 minutes are up), the name logs in from that ip again.
    await client.del(key);
    expect((await login(name, 'right')).status).toBe(200);
  });
});

describe('README: the readiness probe', () => {
  for (const [label, redisOption] of [
    [
      'an injected client with the recommended settings',
      (url: string) => {
        client = new Redis(url, recommended);
        client.on('error', () => {});
        return client;
      },
    ],
    ['a URL (the library’s own client)', (url: string) => url],
  ] as const) {
    it(`/readyz: 200 while Redis answers, 503 store_unavailable while it is down, 200 again after — ${label}`, async () => {
      ownRedis = await RedisServer.start();
      auth = createAuth({ secret: SECRET, redis: redisOption(ownRedis.url) });
      const app = new Koa();
      app.use(healthRoutes(auth).routes());
      server = await serve(app);
      const url = server.url;

      const ready = await call(url, '/readyz');
      expect(ready.status).toBe(200);
      expect(ready.body).toEqual({ status: 'ready' });

      await ownRedis.kill();
      const down = await call(url, '/readyz');
      expect(down.status).toBe(503);
      expect(down.headers.get('retry-after')).toBe('1');
      expect(down.body).toEqual({ status: 'unavailable', error: 'store_unavailable' });
      // Liveness never asks Redis.
      const alive = await call(url, '/healthz');
      expect(alive.status).toBe(200);
      expect(alive.body).toEqual({ status: 'alive' });

      // The client reconnects by itself: ready again without restarting the app.
      await ownRedis.restart();
      let again = await call(url, '/readyz');
      for (let i = 0; i < 50 && again.status !== 200; i++) {
        await sleep(100);
        again = await call(url, '/readyz');
      }
      expect(again.status).toBe(200);
      expect(again.body).toEqual({ status: 'ready' });
    });
  }
});

describe('README: asking for a recent login', () => {
  async function start(): Promise<string> {
    auth = testAuth();
    const router = new Router();
    accountRoutes(router, auth, (ctx) => {
      ctx.body = { changed: ctx.state.user.sub };
    });
    router.get('/me', auth.requireAuth(), (ctx) => {
      ctx.body = ctx.state.user;
    });
    const app = new Koa();
    app.use(router.routes());
    server = await serve(app);
    return server.url;
  }
  const changeEmail = (url: string, token: string) =>
    call(url, '/account/email', { token, body: { email: 'new@example.com' } });

  it('a fresh login passes; a refreshed token of an hour-old login gets 403 login_required', async () => {
    const url = await start();
    const user = { id: `rl-${randomUUID()}` };
    vi.useFakeTimers({ toFake: ['Date'] });
    const now = Date.now();

    vi.setSystemTime(now - 3600_000);
    const old = await auth!.generateTokens(user);
    vi.setSystemTime(now);
    // The refresh keeps the old login's auth_time: a valid access token, but not a recent login.
    const refreshed = await auth!.refreshTokens(old.refresh_token);
    expect((await call(url, '/me', { token: refreshed.access_token })).status).toBe(200);
    const refused = await changeEmail(url, refreshed.access_token);
    expect(refused.status).toBe(403);
    expect(refused.headers.get('content-type')).toMatch(/^application\/json/);
    expect(refused.body).toEqual({ error: 'login_required', message: 'Log in again to continue.' });
    // Refreshing again does not help (auth_time is kept), so a 401 would have sent a client that
    // refreshes on 401 round in a loop.
    const again = await auth!.refreshTokens(refreshed.refresh_token);
    expect((await changeEmail(url, again.access_token)).status).toBe(403);

    // Logging in again is what lets the user through.
    const fresh = await auth!.generateTokens(user);
    const changed = await changeEmail(url, fresh.access_token);
    expect(changed.status, changed.text).toBe(200);
    expect(changed.body).toEqual({ changed: user.id });
  });

  it('counts 300 seconds from the login itself: passes at 299, refused at 301', async () => {
    const url = await start();
    vi.useFakeTimers({ toFake: ['Date'] });
    const now = Date.now();
    const { access_token: token } = await auth!.generateTokens({ id: `rl-${randomUUID()}` });
    // auth_time is whole seconds, rounded down: count from there.
    const loggedIn = Math.floor(now / 1000) * 1000;
    vi.setSystemTime(loggedIn + 299_000);
    expect((await changeEmail(url, token)).status).toBe(200);
    vi.setSystemTime(loggedIn + 301_000);
    expect((await changeEmail(url, token)).status).toBe(403);
  });
});
