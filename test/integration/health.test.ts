import Router from '@koa/router';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import Koa from 'koa';
import ts from 'typescript';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type Auth,
  AuthError,
  createAuth,
  redisStore,
  type SessionStore,
} from '../../src/index.js';
import { SECRET } from '../helpers/forge.js';
import { call, serve, type Served } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';

/** auth.ping() against a redis-server this test owns, up, killed, hung and back. */

const STORE_TIMEOUT = 300;
// Generous for a loaded machine: the promise is "bounded", not "fast".
const BOUND = STORE_TIMEOUT + 2000;

let redis: RedisServer;
let auth: Auth | undefined;
let injected: Redis | undefined;
let server: Served | undefined;

beforeEach(async () => {
  redis = await RedisServer.start();
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  await auth?.close();
  auth = undefined;
  injected?.disconnect();
  injected = undefined;
  await redis.stop();
});

/** How ping() settled, and how long it took. */
async function ping(): Promise<{ ok: boolean; error?: unknown; ms: number }> {
  const started = Date.now();
  try {
    await auth!.ping();
    return { ok: true, ms: Date.now() - started };
  } catch (error) {
    return { ok: false, error, ms: Date.now() - started };
  }
}

function expectUnavailable(result: { ok: boolean; error?: unknown; ms: number }): void {
  expect(result.ok).toBe(false);
  expect(result.error).toBeInstanceOf(AuthError);
  expect((result.error as AuthError).code).toBe('store_unavailable');
  expect((result.error as AuthError).status).toBe(503);
  expect(result.ms).toBeLessThan(BOUND);
}

describe('auth.ping()', () => {
  it('resolves while Redis answers, rejects with store_unavailable once it is stopped, and recovers', async () => {
    auth = createAuth({ secret: SECRET, redis: redis.url, storeTimeout: STORE_TIMEOUT });
    expect((await ping()).ok).toBe(true);
    await redis.kill();
    expectUnavailable(await ping());
    expectUnavailable(await ping());
    await redis.restart();
    // The client reconnects on its own (backoff at most 1 s).
    const deadline = Date.now() + 5000;
    let result = await ping();
    while (!result.ok && Date.now() < deadline) result = await ping();
    expect(result.ok).toBe(true);
  });

  it('is bounded by storeTimeout when Redis hangs, with an injected client that has no timeout of its own', async () => {
    injected = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    injected.on('error', () => {});
    auth = createAuth({ secret: SECRET, redis: injected, storeTimeout: STORE_TIMEOUT });
    expect((await ping()).ok).toBe(true);
    redis.pause();
    const result = await ping();
    redis.resume();
    expectUnavailable(result);
    expect(result.ms).toBeGreaterThanOrEqual(STORE_TIMEOUT - 20);
  });

  it("passes through the README's logged() store wrapper: rejects once Redis is stopped", async () => {
    // The README's wrapper, as written there, with its types stripped.
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const source = /^function logged\(inner: SessionStore\)[\s\S]*?^\}$/m.exec(readme)?.[0];
    expect(source).toBeDefined();
    const js = ts.transpileModule(source!, { compilerOptions: { target: ts.ScriptTarget.ES2022 } });
    const logged = new Function(`${js.outputText}; return logged;`)() as (
      inner: SessionStore,
    ) => SessionStore;
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    client.on('error', () => {});
    injected = client;
    auth = createAuth({
      secret: SECRET,
      store: logged(redisStore(client, { timeout: STORE_TIMEOUT })),
    });
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      await auth.generateTokens({ id: 'wrapped' });
      expect(log).toHaveBeenCalledWith('create', 'wrapped');
    } finally {
      log.mockRestore();
    }
    expect((await ping()).ok).toBe(true);
    await redis.kill();
    expectUnavailable(await ping());
  });

  it('resolves for the in-memory store', async () => {
    auth = createAuth({ secret: SECRET });
    expect((await ping()).ok).toBe(true);
  });

  it('backs the README readiness route: 200 while Redis answers, 503 when it is down', async () => {
    auth = createAuth({ secret: SECRET, redis: redis.url, storeTimeout: STORE_TIMEOUT });
    const readyAuth = auth;
    const router = new Router();
    router.get('/ready', async (ctx) => {
      try {
        await readyAuth.ping();
        ctx.body = { status: 'ready' };
      } catch (error) {
        ctx.status = 503;
        ctx.set('Retry-After', '1');
        ctx.body = { status: 'unavailable', error: (error as AuthError).code };
      }
    });
    const app = new Koa();
    app.use(router.routes());
    server = await serve(app);
    expect((await call(server.url, '/ready')).body).toEqual({ status: 'ready' });
    await redis.kill();
    const down = await call(server.url, '/ready');
    expect(down.status).toBe(503);
    expect(down.body).toEqual({ status: 'unavailable', error: 'store_unavailable' });
  });
});
