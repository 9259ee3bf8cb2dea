import { afterEach, describe, expect, it, vi } from 'vitest';
import { type Auth, createAuth, memoryStore, type SessionStore } from '../../src/index.js';
import { SECRET } from '../helpers/forge.js';
import { call, serve, type Served } from '../helpers/http.js';
import { idApp } from '../helpers/load.js';

/*
 * A session store the app wrote itself that answers outside the SessionStore contract (a bug in
 * it, a database driver's null or string where the contract wants undefined or a boolean): each
 * answer is a 503 `store_unavailable` whose event names the method and what came back, never a
 * 500 and never an `isLive` of "false" read as live. Driven over HTTP through a real Koa server.
 */

type Answers = Partial<Record<keyof SessionStore, unknown>>;

/** A memory store whose methods named in `answers` resolve to those values instead. */
function storeAnswering(answers: Answers): SessionStore {
  const inner = memoryStore();
  const answer =
    <K extends keyof SessionStore>(method: K, real: () => unknown) =>
    () =>
      method in answers ? Promise.resolve(answers[method]) : real();
  return {
    create: (...a) => inner.create(...a),
    rotate: (...a) => answer('rotate', () => inner.rotate(...a))() as never,
    get: (...a) => answer('get', () => inner.get(...a))() as never,
    isLive: (...a) => answer('isLive', () => inner.isLive(...a))() as never,
    revoke: (...a) => answer('revoke', () => inner.revoke(...a))() as never,
    revokeAll: (...a) => answer('revokeAll', () => inner.revokeAll(...a))() as never,
    list: (...a) => answer('list', () => inner.list(...a))() as never,
    close: () => inner.close(),
  };
}

let auth: Auth | undefined;
let server: Served | undefined;

afterEach(async () => {
  await server?.close();
  await auth?.close();
  [auth, server] = [undefined, undefined];
  vi.restoreAllMocks();
});

async function start(
  answers: Answers,
  strategy: 'redis' | 'session' = 'redis',
): Promise<{ url: string; failures: string[] }> {
  auth = createAuth({ secret: SECRET, store: storeAnswering(answers), strategy });
  const failures: string[] = [];
  auth.on('store_unavailable', ({ operation, error }) =>
    failures.push(`${operation}: ${(error as Error).message}`),
  );
  server = await serve(idApp(auth));
  return { url: server.url, failures };
}

async function login(url: string): Promise<{ access_token: string; refresh_token: string }> {
  const reply = await call(url, '/login', { body: { id: 'custom' } });
  expect(reply.status).toBe(200);
  return reply.body;
}

describe('a custom store answering outside the SessionStore contract', () => {
  it.each([
    ['the string "false"', 'false'],
    ['1', 1],
    ['undefined', undefined],
  ])('isLive answering %s: /me is 503 store_unavailable, never 200', async (_, value) => {
    const { url, failures } = await start({ isLive: value });
    const { access_token } = await login(url);
    const me = await call(url, '/me', { token: access_token });
    expect(me.status).toBe(503);
    expect(me.body).toMatchObject({ error: 'store_unavailable' });
    expect(me.text).not.toMatch(/at \w+ \(|StoreContractError/);
    expect(failures).toEqual([
      expect.stringMatching(/^checkSession: .*isLive\(\) answered .*wants true or false$/),
    ]);
  });

  it.each([
    ['rotate', 'ok', '/refresh', /rotate\(\) answered the string "ok".* one of rotated, missing/],
    ['revoke', undefined, '/logout', /revoke\(\) answered undefined.* true or false/],
  ] as const)(
    '%s answering %j: %s is 503 store_unavailable with the method named',
    async (method, value, path, message) => {
      const { url, failures } = await start({ [method]: value });
      const { refresh_token } = await login(url);
      const reply = await call(url, path, { body: { refresh_token } });
      expect(reply.status).toBe(503);
      expect(reply.body).toMatchObject({ error: 'store_unavailable' });
      expect(failures).toEqual([expect.stringMatching(message)]);
    },
  );

  it.each([
    ['the string "a record"', 'a record', /get\(\) answered the string "a record".*SessionRecord/],
    [
      'a record missing fields',
      { sessionId: 'x', jti: 'y' },
      /get\(\) answered an object of another shape/,
    ],
  ])('get answering %s, under the session strategy: /me is 503', async (_, value, message) => {
    const { url, failures } = await start({ get: value }, 'session');
    const { access_token } = await login(url);
    const me = await call(url, '/me', { token: access_token });
    expect(me.status).toBe(503);
    expect(failures).toEqual([expect.stringMatching(message)]);
  });

  it('null from get() is taken as no session: /me is refused as a revoked session, not a 503', async () => {
    const { url, failures } = await start({ get: null }, 'session');
    const { access_token } = await login(url);
    const me = await call(url, '/me', { token: access_token });
    expect(me.status).toBe(401);
    expect(failures).toEqual([]);
  });

  it('cachedLiveness answering neither a boolean nor undefined: warned once, and isLive asked instead', async () => {
    const warning = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    const store = storeAnswering({});
    let isLive = 0;
    const asked = store.isLive;
    store.isLive = (...a) => (isLive++, asked(...a));
    store.cachedLiveness = () => 'yes' as never;
    auth = createAuth({ secret: SECRET, store, verifyCacheSize: 0 });
    server = await serve(idApp(auth));
    const { access_token } = await login(server.url);
    for (let i = 0; i < 2; i++)
      expect((await call(server.url, '/me', { token: access_token })).status).toBe(200);
    expect(isLive).toBe(2);
    const warned = warning.mock.calls.filter(
      ([, options]) => (options as { code?: string }).code === 'KOA_JWT_REDIS_STORE_CONTRACT',
    );
    expect(warned).toHaveLength(1);
    expect(String(warned[0]![0])).toMatch(/cachedLiveness\(\) answered the string "yes"/);
  });

  it('list and revokeAll: the helpers reject with store_unavailable', async () => {
    await start({ list: {}, revokeAll: '3' });
    await expect(auth!.listSessions('custom')).rejects.toMatchObject({
      code: 'store_unavailable',
      status: 503,
    });
    await expect(auth!.revokeAllSessions('custom')).rejects.toMatchObject({
      code: 'store_unavailable',
    });
  });

  it('a store that keeps the contract works through the checks (login, /me, refresh, logout)', async () => {
    const { url, failures } = await start({});
    const pair = await login(url);
    expect((await call(url, '/me', { token: pair.access_token })).status).toBe(200);
    const refreshed = await call(url, '/refresh', { body: { refresh_token: pair.refresh_token } });
    expect(refreshed.status).toBe(200);
    const out = await call(url, '/logout', {
      body: { refresh_token: refreshed.body.refresh_token },
    });
    expect(out.status).toBe(204);
    expect(await auth!.listSessions('custom')).toEqual([]);
    expect(failures).toEqual([]);
  });
});
