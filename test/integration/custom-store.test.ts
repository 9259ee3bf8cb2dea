import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  AuthConfigError,
  type Auth,
  createAuth,
  memoryStore,
  redisStore,
  type SessionRecord,
  type SessionStore,
} from '../../src/index.js';
import { redisClient, uniquePrefix } from '../helpers/auth.js';
import { SECRET } from '../helpers/forge.js';
import { call, serve, type Served } from '../helpers/http.js';
import { idApp } from '../helpers/load.js';

/*
 * A session store the app wrote itself, checked against the SessionStore contract: an answer of
 * another shape (a bug in it, a driver's string where a boolean belongs) is a 503
 * `store_unavailable` whose event names the method, never a 500 and never an `isLive` of "false"
 * read as live; a driver's harmless variants (0/1, a row count, null, a Date, a null column) are
 * taken as meant; everything else of the store (its own methods, ping, instanceof) passes
 * through. Driven over HTTP through a real Koa server.
 */

type Answers = Partial<Record<keyof SessionStore, unknown>>;

/** `inner` (a memory store by default) whose methods named in `answers` resolve to those values instead. */
function storeAnswering(answers: Answers, inner: SessionStore = memoryStore()): SessionStore {
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

interface Failure {
  operation: string;
  name: string;
  method: unknown;
  message: string;
}

async function start(
  store: SessionStore,
  strategy: 'redis' | 'session' = 'redis',
): Promise<{ url: string; failures: Failure[] }> {
  auth = createAuth({ secret: SECRET, store, strategy });
  const failures: Failure[] = [];
  auth.on('store_unavailable', ({ operation, error }) => {
    const { name, message, method } = error as Error & { method?: unknown };
    failures.push({ operation, name, method, message });
  });
  server = await serve(idApp(auth));
  return { url: server.url, failures };
}

async function login(url: string): Promise<{ access_token: string; refresh_token: string }> {
  const reply = await call(url, '/login', { body: { id: 'custom' } });
  expect(reply.status).toBe(200);
  return reply.body;
}

const refused = (operation: string, method: string) =>
  expect.objectContaining({ operation, name: 'StoreContractError', method });

describe('a custom store answering outside the SessionStore contract', () => {
  it.each([
    ['the string "false"', 'false'],
    ['the string "true"', 'true'],
    ['2', 2],
    ['undefined', undefined],
    ['an object', { live: true }],
  ])('isLive answering %s: /me is 503 store_unavailable, never 200', async (_, value) => {
    const { url, failures } = await start(storeAnswering({ isLive: value }));
    const { access_token } = await login(url);
    const me = await call(url, '/me', { token: access_token });
    expect(me.status).toBe(503);
    expect(me.body).toMatchObject({ error: 'store_unavailable' });
    expect(me.text).not.toMatch(/at \w+ \(|StoreContractError/);
    expect(failures).toEqual([refused('checkSession', 'isLive')]);
    expect(failures[0]!.message).toContain('isLive()');
  });

  it.each([
    ['rotate', 'ok', '/refresh', 'refresh'],
    ['revoke', undefined, '/logout', 'logout'],
    ['revoke', 'yes', '/logout', 'logout'],
  ] as const)(
    '%s answering %j: %s is 503 store_unavailable with the method named',
    async (method, value, path, operation) => {
      const { url, failures } = await start(storeAnswering({ [method]: value }));
      const { refresh_token } = await login(url);
      const reply = await call(url, path, { body: { refresh_token } });
      expect(reply.status).toBe(503);
      expect(reply.body).toMatchObject({ error: 'store_unavailable' });
      expect(failures).toEqual([refused(operation, method)]);
    },
  );

  it.each([
    ['the string "a record"', 'a record', 'get()'],
    ['a record without a jti', { sessionId: 'x' }, 'get().jti'],
    [
      'a record whose expiresAt is a string',
      { sessionId: 'x', jti: 'y', expiresAt: '5' },
      'get().',
    ],
  ])(
    'get answering %s, under the session strategy: /me is 503 naming it',
    async (_, value, where) => {
      const { url, failures } = await start(storeAnswering({ get: value }), 'session');
      const { access_token } = await login(url);
      const me = await call(url, '/me', { token: access_token });
      expect(me.status).toBe(503);
      expect(failures).toEqual([refused('checkSession', 'get')]);
      expect(failures[0]!.message).toContain(where);
    },
  );

  it('list and revokeAll answering another shape: the helpers reject with store_unavailable', async () => {
    const { failures } = await start(storeAnswering({ list: {}, revokeAll: '3' }));
    await expect(auth!.listSessions('custom')).rejects.toMatchObject({
      code: 'store_unavailable',
      status: 503,
    });
    await expect(auth!.revokeAllSessions('custom')).rejects.toMatchObject({
      code: 'store_unavailable',
    });
    expect(failures).toEqual([
      refused('listSessions', 'list'),
      refused('revokeAllSessions', 'revokeAll'),
    ]);
  });

  it('a list with one bad record names its index and field', async () => {
    const good = {
      sessionId: 's',
      jti: 'j',
      rotatedAt: 0,
      createdAt: 1,
      lastUsedAt: 1,
      expiresAt: 9,
    };
    const { failures } = await start(storeAnswering({ list: [good, { ...good, createdAt: 'x' }] }));
    await expect(auth!.listSessions('custom')).rejects.toMatchObject({ code: 'store_unavailable' });
    expect(failures[0]!.message).toContain('list()[1].createdAt is the string "x"');
  });

  it('cachedLiveness or livenessCheck answering another shape: warned once, and isLive asked instead', async () => {
    const warning = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    const store = storeAnswering({});
    let isLive = 0;
    const asked = store.isLive;
    store.isLive = (...a) => (isLive++, asked(...a));
    store.cachedLiveness = () => 'yes' as never;
    store.livenessCheck = () => ({ holds: true }) as never;
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
    expect(String(warned[0]![0])).toMatch(/cachedLiveness\(\) is the string "yes"/);
  });

  it.each([0, -1, 1.5, '1000', Number.NaN])(
    'a timeResolution of %j is refused at createAuth',
    (timeResolution) => {
      const store = { ...storeAnswering({}), timeResolution } as SessionStore;
      expect(() => createAuth({ secret: SECRET, store })).toThrow(AuthConfigError);
    },
  );
});

describe('a custom store whose driver answers in its own types', () => {
  it('0/1 for isLive, a row count for revoke: taken as meant', async () => {
    const inner = memoryStore();
    const store = storeAnswering({}, inner);
    store.isLive = async (...a) => ((await inner.isLive(...a)) ? 1 : 0) as never;
    store.revoke = async (...a) => ((await inner.revoke(...a)) ? 1 : 0) as never;
    const { url, failures } = await start(store);
    const pair = await login(url);
    expect((await call(url, '/me', { token: pair.access_token })).status).toBe(200);
    expect(
      (await call(url, '/logout', { body: { refresh_token: pair.refresh_token } })).status,
    ).toBe(204);
    expect((await call(url, '/me', { token: pair.access_token })).body.error).toBe('token_revoked');
    expect(failures).toEqual([]);
  });

  it('null for no session, Date times and null columns in records: the session strategy and listSessions work', async () => {
    const inner = memoryStore();
    const asRow = (r: SessionRecord) => ({
      ...r,
      createdAt: new Date(r.createdAt),
      lastUsedAt: new Date(r.lastUsedAt),
      expiresAt: new Date(r.expiresAt),
      ip: null,
      userAgent: null,
      previousJti: null,
    });
    const store = storeAnswering({}, inner);
    store.get = async (...a) => {
      const record = await inner.get(...a);
      return (record ? asRow(record) : null) as never;
    };
    store.list = async (...a) => (await inner.list(...a)).map(asRow) as never;
    const { url, failures } = await start(store, 'session');
    const { access_token } = await login(url);
    expect((await call(url, '/me', { token: access_token })).status).toBe(200);
    const [listed] = await auth!.listSessions('custom');
    // Null columns read as '': none shown.
    expect(listed!.ip).toBeUndefined();
    expect(listed!.userAgent).toBeUndefined();
    expect(listed!.expiresAt).toBeInstanceOf(Date);
    expect(listed!.expiresAt.getTime()).toBeGreaterThan(Date.now());
    await auth!.revokeAllSessions('custom');
    // get answers null now: a revoked session, not a 503.
    expect((await call(url, '/me', { token: access_token })).status).toBe(401);
    expect(failures).toEqual([]);
  });
});

describe('a custom store that keeps the contract', () => {
  it("the README's shape, a wrapper over a real Redis store: login, /me, refresh, sessions, logout, ping", async () => {
    const client = redisClient();
    const inner = redisStore(client, { keyPrefix: uniquePrefix() });
    let pings = 0;
    const store: SessionStore = {
      ...storeAnswering({}, inner),
      timeResolution: inner.timeResolution,
      ping: () => (pings++, inner.ping!()),
    };
    try {
      const { url, failures } = await start(store);
      const pair = await login(url);
      expect((await call(url, '/me', { token: pair.access_token })).status).toBe(200);
      const refreshed = await call(url, '/refresh', {
        body: { refresh_token: pair.refresh_token },
      });
      expect(refreshed.status).toBe(200);
      expect(await auth!.listSessions('custom')).toHaveLength(1);
      await auth!.ping();
      expect(pings).toBe(1);
      const out = await call(url, '/logout', {
        body: { refresh_token: refreshed.body.refresh_token },
      });
      expect(out.status).toBe(204);
      expect(await auth!.listSessions('custom')).toEqual([]);
      expect(failures).toEqual([]);
    } finally {
      await auth?.close();
      auth = undefined;
      client.disconnect();
    }
  });

  it('passes the rest of the store through: its own methods (to a strategy factory), a failing ping, instanceof', async () => {
    class AppStore {
      #rows = memoryStore();
      create: SessionStore['create'] = (...a) => this.#rows.create(...a);
      rotate: SessionStore['rotate'] = (...a) => this.#rows.rotate(...a);
      get: SessionStore['get'] = (...a) => this.#rows.get(...a);
      isLive: SessionStore['isLive'] = (...a) => this.#rows.isLive(...a);
      revoke: SessionStore['revoke'] = (...a) => this.#rows.revoke(...a);
      revokeAll: SessionStore['revokeAll'] = (...a) => this.#rows.revokeAll(...a);
      list: SessionStore['list'] = (...a) => this.#rows.list(...a);
      close = () => this.#rows.close();
      async ping(): Promise<void> {
        throw new Error('the database is down');
      }
      async sessionsOf(userId: string): Promise<number> {
        return (await this.#rows.list(userId, Date.now())).length;
      }
    }
    const store = new AppStore();
    auth = createAuth({ secret: SECRET, store });
    let seen: unknown;
    auth.strategies.register('counting', (context) => {
      seen = context.store;
      return { readToken: () => ({}) as never, writeToken: () => 'token' };
    });
    expect(seen).toBeInstanceOf(AppStore);
    await auth.generateTokens({ id: 'own' });
    expect(await (seen as AppStore).sessionsOf('own')).toBe(1);
    await expect(auth.ping()).rejects.toMatchObject({ code: 'store_unavailable' });
  });
});
