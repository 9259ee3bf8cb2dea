import { afterEach, describe, expect, it, vi } from 'vitest';
import { type Auth, type AuthEventMap, type AuthEventName, createAuth } from '../../src/index.js';
import { testAuth } from '../helpers/auth.js';
import { decodeSegment, SECRET } from '../helpers/forge.js';
import { call, serve, type Served } from '../helpers/http.js';
import { idApp, send } from '../helpers/load.js';
import { RedisServer } from '../helpers/redis-server.js';
import { webApp } from '../helpers/web.js';

/* The audit trail: each event, where it is emitted, and exactly what it carries. */

const UA = 'events-test/1.0 (audit)';
const BOUND_MS = 5000;

let auth: Auth;
let server: Served | undefined;
let redis: RedisServer | undefined;
afterEach(async () => {
  await server?.close();
  await auth?.close();
  await redis?.stop();
  server = redis = undefined;
});

/** Records every payload of the given events, in order. */
function record<E extends AuthEventName>(events: E[]): { name: E; payload: AuthEventMap[E] }[] {
  const seen: { name: E; payload: AuthEventMap[E] }[] = [];
  for (const name of events) auth.on(name, (payload) => seen.push({ name, payload }));
  return seen;
}

async function start(a: Auth): Promise<string> {
  auth = a;
  server = await serve(idApp(auth));
  return server.url;
}

const post = (url: string, path: string, body: unknown) =>
  fetch(url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': UA },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(BOUND_MS),
  });
const loginPair = async (url: string, id: string) =>
  (await (await post(url, '/login', { id })).json()) as {
    access_token: string;
    refresh_token: string;
  };
const sidOf = (token: string) => decodeSegment(token, 1).sid as string;

describe('audit events', () => {
  it('login: user id, session id, ip and user agent (only the user id on the stateless jwt strategy)', async () => {
    const url = await start(testAuth());
    const seen = record(['login']);
    const pair = await loginPair(url, 'u-login');
    expect(seen).toEqual([
      {
        name: 'login',
        payload: {
          userId: 'u-login',
          sessionId: sidOf(pair.refresh_token),
          ip: '127.0.0.1',
          userAgent: UA,
        },
      },
    ]);
    await auth.generateTokens({ id: 42 });
    expect(seen[1]!.payload).toEqual({ userId: '42', sessionId: expect.any(String) });
    await auth.generateTokens({ id: 43 }, { strategy: 'jwt' });
    expect(seen[2]!.payload).toEqual({ userId: '43' });
  });

  it('refresh: user id, session id, ip and user agent; not emitted when the refresh is refused', async () => {
    const url = await start(testAuth());
    const pair = await loginPair(url, 'u-refresh');
    const seen = record(['refresh']);
    expect((await post(url, '/refresh', { refresh_token: pair.refresh_token })).status).toBe(200);
    expect(seen).toEqual([
      {
        name: 'refresh',
        payload: {
          userId: 'u-refresh',
          sessionId: sidOf(pair.refresh_token),
          ip: '127.0.0.1',
          userAgent: UA,
        },
      },
    ]);
    expect((await post(url, '/refresh', { refresh_token: 'a.b.c' })).status).toBe(401);
    expect(seen).toHaveLength(1);
  });

  it.each(['redis', 'session', 'jwt'] as const)(
    'refresh on the %s strategy: ip and user agent from { ctx } or { ip, userAgent }, none without',
    async (strategy) => {
      auth = testAuth({ accessTokenTtl: 10, absoluteSessionTtl: 20 });
      const seen = record(['refresh']);
      const ctx = {
        ip: '203.0.113.7',
        get: (field: string) => (field.toLowerCase() === 'user-agent' ? UA : ''),
      };
      const pair = await auth.generateTokens({ id: `u-${strategy}` }, { strategy });
      const sessionId =
        strategy === 'session' ? pair.refresh_token.split('.')[1]! : sidOf(pair.refresh_token);
      const one = await auth.refreshTokens(pair.refresh_token, { strategy, ctx });
      const two = await auth.refreshTokens(one.refresh_token, {
        strategy,
        ip: '198.51.100.2',
        userAgent: 'direct/2.0',
      });
      await auth.refreshTokens(two.refresh_token, { strategy });
      const userId = `u-${strategy}`;
      expect(seen).toEqual([
        { name: 'refresh', payload: { userId, sessionId, ip: '203.0.113.7', userAgent: UA } },
        {
          name: 'refresh',
          payload: { userId, sessionId, ip: '198.51.100.2', userAgent: 'direct/2.0' },
        },
        { name: 'refresh', payload: { userId, sessionId } },
      ]);
    },
  );

  it.each(['redis', 'session', 'jwt'] as const)(
    'refresh on the %s strategy: not emitted when the refresh fails, even within the leeway past the absolute end',
    async (strategy) => {
      auth = testAuth({ accessTokenTtl: 10, absoluteSessionTtl: 20 });
      const seen = record(['refresh']);
      const ctx = { ip: '203.0.113.7', get: () => UA };
      // Past the absolute end (20 s after login) but within the verifier's 5 s leeway: the
      // token still verifies, yet no pair can be issued for the session.
      const late = await auth.generateTokens({ id: `u-late-${strategy}` }, { strategy });
      vi.useFakeTimers({ toFake: ['Date'] });
      try {
        vi.setSystemTime(Date.now() + 21_000);
        // The session strategy's record has expired with the session; the JWT strategies
        // find the session over when they sign.
        await expect(auth.refreshTokens(late.refresh_token, { strategy, ctx })).rejects.toEqual(
          expect.objectContaining({
            code: strategy === 'session' ? 'token_revoked' : 'token_expired',
          }),
        );
      } finally {
        vi.useRealTimers();
      }
      await expect(auth.refreshTokens('a.b.c', { strategy, ctx })).rejects.toMatchObject({
        code: 'token_invalid',
      });
      expect(seen).toEqual([]);
    },
  );

  it('logout: user id and session id, once (a repeated logout is silent); revokeSession emits it too', async () => {
    const url = await start(testAuth());
    const a = await loginPair(url, 'u-logout');
    const b = await loginPair(url, 'u-logout');
    const seen = record(['logout']);
    expect((await post(url, '/logout', { refresh_token: a.refresh_token })).status).toBe(204);
    expect((await post(url, '/logout', { refresh_token: a.refresh_token })).status).toBe(204);
    expect(await auth.revokeSession('u-logout', sidOf(b.refresh_token))).toBe(true);
    expect(await auth.revokeSession('u-logout', sidOf(b.refresh_token))).toBe(false);
    expect(seen).toEqual([
      { name: 'logout', payload: { userId: 'u-logout', sessionId: sidOf(a.refresh_token) } },
      { name: 'logout', payload: { userId: 'u-logout', sessionId: sidOf(b.refresh_token) } },
    ]);
  });

  it('auth.routes(): DELETE /auth/sessions/:id and logout-all with keep_current emit logout for each session they end; logout-all without it revoke_all', async () => {
    auth = testAuth({ userFields: ['name'] });
    server = await serve(webApp(auth));
    const url = server.url;
    const login = async () =>
      (await call(url, '/auth/login', { body: { username: 'alice', password: 'wonderland' } }))
        .body as { access_token: string; refresh_token: string };
    const [a, b, c, d] = [await login(), await login(), await login(), await login()];
    const seen = record(['logout', 'revoke_all']);
    const deleted = await call(url, `/auth/sessions/${sidOf(b.refresh_token)}`, {
      method: 'DELETE',
      token: a.access_token,
    });
    expect(deleted.status).toBe(204);
    const kept = await call(url, '/auth/logout-all', {
      token: a.access_token,
      body: { keep_current: true },
    });
    expect(kept.body).toEqual({ revoked: 2 });
    const ended = seen.map(({ name, payload }) => [
      name,
      (payload as { sessionId: string }).sessionId,
    ]);
    expect(ended[0]).toEqual(['logout', sidOf(b.refresh_token)]);
    expect(ended.slice(1).sort()).toEqual(
      [
        ['logout', sidOf(c.refresh_token)],
        ['logout', sidOf(d.refresh_token)],
      ].sort(),
    );
    seen.length = 0;
    expect((await call(url, '/auth/logout-all', { token: a.access_token, body: {} })).body).toEqual(
      {
        revoked: 1,
      },
    );
    expect(seen).toEqual([{ name: 'revoke_all', payload: { userId: '1', count: 1 } }]);
  });

  it('revoke_all: user id and how many sessions were live', async () => {
    const url = await start(testAuth());
    await loginPair(url, 'u-all');
    await loginPair(url, 'u-all');
    const seen = record(['revoke_all']);
    expect(await auth.revokeAllSessions('u-all')).toBe(2);
    expect(await auth.revokeAllSessions('u-all')).toBe(0);
    expect(seen).toEqual([
      { name: 'revoke_all', payload: { userId: 'u-all', count: 2 } },
      { name: 'revoke_all', payload: { userId: 'u-all', count: 0 } },
    ]);
  });

  it('refresh_reused: user id, family (session id), ip and user agent of the replay; without a ctx, no ip or user agent', async () => {
    const url = await start(testAuth({ refreshGracePeriod: 0 }));
    const pair = await loginPair(url, 'u-reuse');
    const seen = record(['refresh_reused']);
    expect((await post(url, '/refresh', { refresh_token: pair.refresh_token })).status).toBe(200);
    const replay = await post(url, '/refresh', { refresh_token: pair.refresh_token });
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as { error: string }).error).toBe('refresh_reused');
    expect(seen).toEqual([
      {
        name: 'refresh_reused',
        payload: {
          userId: 'u-reuse',
          sessionId: sidOf(pair.refresh_token),
          ip: '127.0.0.1',
          userAgent: UA,
        },
      },
    ]);

    const direct = await auth.generateTokens({ id: 'u-reuse' });
    await auth.refreshTokens(direct.refresh_token);
    await expect(auth.refreshTokens(direct.refresh_token)).rejects.toMatchObject({
      code: 'refresh_reused',
    });
    expect(seen[1]!.payload).toEqual({ userId: 'u-reuse', sessionId: sidOf(direct.refresh_token) });
  });

  it('store_unavailable: from login, refresh, logout and the middlewares’ session checks, with the operation and the error', async () => {
    redis = await RedisServer.start();
    const url = await start(createAuth({ secret: SECRET, redis: redis.url, storeTimeout: 250 }));
    const pair = await loginPair(url, 'u-down');
    const seen = record(['store_unavailable']);
    await redis.kill();
    expect((await send(url, '/me', { token: pair.access_token }, BOUND_MS)).status).toBe(503);
    expect((await send(url, '/public', { token: pair.access_token }, BOUND_MS)).status).toBe(200);
    expect((await send(url, '/login', { body: { id: 'u-down' } }, BOUND_MS)).status).toBe(503);
    expect(
      (await send(url, '/refresh', { body: { refresh_token: pair.refresh_token } }, BOUND_MS))
        .status,
    ).toBe(503);
    expect(
      (await send(url, '/logout', { body: { refresh_token: pair.refresh_token } }, BOUND_MS))
        .status,
    ).toBe(503);
    await expect(auth.revokeAllSessions('u-down')).rejects.toMatchObject({
      code: 'store_unavailable',
    });
    await expect(auth.checkRefreshToken(pair.refresh_token)).rejects.toMatchObject({
      code: 'store_unavailable',
    });
    // The rest of the operations the README lists.
    const sid = sidOf(pair.refresh_token);
    for (const call of [
      () => auth.listSessions('u-down'),
      () => auth.revokeSession('u-down', sid),
      () => auth.createAccessToken({ id: 'u-down' }, { sessionId: sid }),
    ])
      await expect(call()).rejects.toMatchObject({ code: 'store_unavailable' });
    expect(seen.map((e) => e.payload.operation)).toEqual([
      'checkSession',
      'checkSession',
      'login',
      'refresh',
      'logout',
      'revokeAllSessions',
      'checkRefreshToken',
      'listSessions',
      'revokeSession',
      'writeToken',
    ]);
    for (const { payload } of seen) {
      expect(Object.keys(payload).sort()).toEqual(['error', 'operation']);
      expect(payload.error).toBeInstanceOf(Error);
    }
  });

  it('a listener that throws or rejects never breaks the request: its error becomes a process warning', async () => {
    const url = await start(testAuth());
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => {
      if ((warning as Error & { code?: string }).code === 'KOA_JWT_REDIS_LISTENER')
        warnings.push(warning);
    };
    process.on('warning', onWarning);
    try {
      const later: string[] = [];
      auth.on('login', () => {
        throw new Error('sync listener bug');
      });
      auth.on('login', async () => {
        await Promise.resolve();
        throw new Error('async listener bug');
      });
      auth.on('refresh', () => {
        throw new Error('refresh listener bug');
      });
      auth.on('login', () => later.push('login')); // listeners after a failing one still run
      const login = await post(url, '/login', { id: 'u-bug' });
      expect(login.status).toBe(200);
      const pair = (await login.json()) as { refresh_token: string; access_token: string };
      expect((await post(url, '/refresh', { refresh_token: pair.refresh_token })).status).toBe(200);
      expect(later).toEqual(['login']);
      // Warnings are delivered on a later tick.
      for (let i = 0; i < 50 && warnings.length < 3; i++)
        await new Promise((r) => setTimeout(r, 10));
      expect(warnings.map((w) => w.message).sort()).toEqual([
        'koa-jwt-redis: a "login" listener threw: async listener bug',
        'koa-jwt-redis: a "login" listener threw: sync listener bug',
        'koa-jwt-redis: a "refresh" listener threw: refresh listener bug',
      ]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('off() removes a listener', async () => {
    auth = testAuth();
    const seen: string[] = [];
    const listener = (payload: AuthEventMap['login']) => seen.push(payload.userId);
    auth.on('login', listener);
    await auth.generateTokens({ id: 'once' });
    auth.off('login', listener);
    await auth.generateTokens({ id: 'twice' });
    expect(seen).toEqual(['once']);
  });
});
