import { afterEach, describe, expect, it, vi } from 'vitest';
import { type Auth, createAuth, memoryStore, type SessionStore } from '../../src/index.js';
import { allKeys, redisClient, testAuth, uniquePrefix } from '../helpers/auth.js';
import { SECRET } from '../helpers/forge.js';
import { call, type Reply, serve, type Served } from '../helpers/http.js';
import { Jar, setCookies, webApp } from '../helpers/web.js';

/** The opaque `session` strategy through auth.routes(), JSON and cookie delivery, over HTTP. */

let auth: Auth;
let server: Served;

afterEach(async () => {
  await server?.close();
  await auth?.close();
});

const credentials = { username: 'alice', password: 'wonderland' };

describe('session strategy over HTTP', () => {
  it('JSON delivery: login, requireAuth, sessions, refresh by bearer, logout', async () => {
    auth = testAuth({ strategy: 'session' });
    server = await serve(webApp(auth));
    const login = await call(server.url, '/auth/login', { body: credentials });
    expect(login.status).toBe(200);
    const token = login.body.access_token as string;
    expect(token.split('.')).toHaveLength(3);
    expect(login.body).toMatchObject({ refresh_token: token, token_type: 'bearer' });

    const me = await call(server.url, '/me', { token });
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ sub: '1', token_use: 'access' });

    const sessions = await call(server.url, '/auth/sessions', { token });
    expect(sessions.status).toBe(200);
    expect(sessions.body).toHaveLength(1);
    expect(sessions.body[0]).toMatchObject({ sessionId: me.body.sid, current: true });

    const refreshed = await call(server.url, '/auth/refresh', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.access_token).toBe(token);

    expect((await call(server.url, '/auth/logout', { method: 'POST', token })).status).toBe(204);
    const after = await call(server.url, '/me', { token });
    expect(after.status).toBe(401);
    expect(after.body.error).toBe('token_revoked');
    // Logging out an ended session again is not an error.
    expect((await call(server.url, '/auth/logout', { method: 'POST', token })).status).toBe(204);
  });

  it('cookie delivery with CSRF: the session token rides in the cookies, logout-all ends it', async () => {
    auth = testAuth({ strategy: 'session', tokenDelivery: 'cookie' });
    server = await serve(webApp(auth));
    const jar = new Jar();
    const browser = async (
      path: string,
      options: Parameters<typeof call>[2] & { csrf?: boolean } = {},
    ): Promise<Reply> => {
      const headers: Record<string, string> = { origin: server.url, ...options.headers };
      const cookie = jar.header();
      if (cookie) headers.cookie = cookie;
      if (options.csrf) headers['x-csrf-token'] = jar.values.get('__Host-csrf_token') ?? '1';
      const res = await call(server.url, path, { ...options, headers });
      jar.take(res.headers);
      return res;
    };
    const login = await browser('/auth/login', { body: credentials, csrf: true });
    expect(login.status).toBe(200);
    // A day, less the part of a second the binary record's whole-second expiry leaves out.
    expect(login.body).toEqual({ token_type: 'cookie', expires_in: expect.any(Number) });
    expect([86_399, 86_400]).toContain(login.body.expires_in);
    const token = jar.values.get('__Host-access_token')!;
    expect(token).toMatch(/^[\w-]+\.[\w-]{16}\.[\w-]{43}$/);

    expect((await browser('/me')).status).toBe(200);
    const noProof = await browser('/notes', { method: 'POST' });
    expect(noProof.status).toBe(403);
    expect((await browser('/notes', { method: 'POST', csrf: true })).status).toBe(200);

    const all = await browser('/auth/logout-all', { method: 'POST', body: {}, csrf: true });
    expect(all.status).toBe(200);
    expect(all.body).toEqual({ revoked: 1 });
    const me = await call(server.url, '/me', {
      headers: { cookie: `__Host-access_token=${token}` },
    });
    expect(me.status).toBe(401);
  });

  it('no cookie outlives the session: every Max-Age stops at the absolute end, at login and on refresh', async () => {
    // Idle 1 day, yet the session ends an hour after login: no cookie may say a day or 30 days.
    auth = testAuth({ strategy: 'session', tokenDelivery: 'cookie', absoluteSessionTtl: 3600 });
    server = await serve(webApp(auth));
    const jar = new Jar();
    const send = async (path: string, csrf: boolean): Promise<Reply> => {
      const headers: Record<string, string> = { origin: server.url, cookie: jar.header() };
      if (csrf) headers['x-csrf-token'] = jar.values.get('__Host-csrf_token') ?? '1';
      const res = await call(server.url, path, { body: credentials, headers });
      jar.take(res.headers);
      return res;
    };
    for (const res of [await send('/auth/login', true), await send('/auth/refresh', true)]) {
      expect(res.status).toBe(200);
      expect(res.body.expires_in).toBeGreaterThan(3590);
      expect(res.body.expires_in).toBeLessThanOrEqual(3600);
      const cookies = setCookies(res.headers);
      expect(cookies.size).toBe(3);
      for (const { attributes } of cookies.values()) {
        const maxAge = Number(attributes.find((a) => a.startsWith('Max-Age='))!.slice(8));
        expect(maxAge).toBe(res.body.expires_in);
      }
    }
  });

  it('keeps nothing in Redis that authenticates: no key or value holds the token or its secret, in any encoding', async () => {
    for (const recordFormat of ['binary', 'text'] as const) {
      const prefix = uniquePrefix();
      auth = testAuth({ strategy: 'session', keyPrefix: prefix, recordFormat });
      const client = redisClient();
      try {
        const { access_token: token } = await auth.generateTokens(
          { id: 'dump-user' },
          { ip: '203.0.113.9', userAgent: 'curl/8.0' },
        );
        const secret = token.split('.')[2]!;
        const bytes = Buffer.from(secret, 'base64url');
        const needles = [
          Buffer.from(token),
          Buffer.from(secret),
          bytes,
          bytes.subarray(0, 16),
          bytes.subarray(16),
          Buffer.from(bytes.toString('hex')),
          Buffer.from(bytes.toString('base64')),
        ];
        const keys = await allKeys(client, `${prefix}*`);
        expect(keys.length).toBeGreaterThan(0);
        for (const key of keys) {
          const stored: Buffer[] = [Buffer.from(key)];
          if ((await client.type(key)) === 'hash') {
            const fields = await client.hgetallBuffer(key);
            for (const [field, value] of Object.entries(fields))
              stored.push(Buffer.from(field), value);
          } else stored.push((await client.getBuffer(key)) ?? Buffer.alloc(0));
          for (const value of stored)
            for (const needle of needles)
              expect(value.includes(needle), `${recordFormat} ${key}`).toBe(false);
        }
      } finally {
        client.disconnect();
        await auth.close();
      }
    }
  });
});

describe('what a login is refused', () => {
  /** The error a promise rejects with (it must reject). */
  const failure = async (p: Promise<unknown>): Promise<Error> => {
    try {
      await p;
    } catch (error) {
      return error as Error;
    }
    throw new Error('expected a rejection');
  };

  it('claims that are not an object: the session strategy says so as the redis strategy does, never a raw TypeError', async () => {
    auth = testAuth();
    for (const claims of [null, 'x', 5, true]) {
      const onRedis = await failure(
        auth.generateTokens({ id: 1 }, { claims: claims as unknown as Record<string, unknown> }),
      );
      const onSession = await failure(
        auth.generateTokens(
          { id: 1 },
          { strategy: 'session', claims: claims as unknown as Record<string, unknown> },
        ),
      );
      expect(onRedis).toBeInstanceOf(TypeError);
      expect(onRedis.message).toBe('koa-jwt-redis: `claims` must be an object');
      expect(onSession).toBeInstanceOf(TypeError);
      expect(onSession.message).toBe(onRedis.message);
    }
    // Still: no claims at all on opaque tokens, and no empty claims object refused.
    await expect(
      auth.generateTokens({ id: 1 }, { strategy: 'session', claims: { role: 'x' } }),
    ).rejects.toThrow(/carry no claims/);
    expect(
      (await auth.generateTokens({ id: 1 }, { strategy: 'session', claims: {} })).token_type,
    ).toBe('bearer');
  });

  it('a user id with a control character, on every strategy, as other bad ids are', async () => {
    auth = testAuth();
    const bad = await failure(auth.generateTokens({ id: '' }));
    expect(bad).toBeInstanceOf(TypeError);
    for (const strategy of ['redis', 'session', 'jwt'] as const) {
      for (const id of ['\u0000', 'a\u0000b', 'x\ny', 'tab\t', '\u001f', 'del\u007f']) {
        const error = await failure(auth.generateTokens({ id }, { strategy }));
        expect(error, `${strategy} ${JSON.stringify(id)}`).toBeInstanceOf(TypeError);
        expect(error.message).toBe(bad.message);
        expect(error.message).toMatch(/control characters/);
      }
      // Printable neighbours are still ids.
      expect((await auth.generateTokens({ id: 'a b~é' }, { strategy })).token_type).toBe('bearer');
    }
    await expect(auth.listSessions('\u0000')).rejects.toBeInstanceOf(TypeError);
    await expect(auth.revokeAllSessions('a\u0000')).rejects.toBeInstanceOf(TypeError);
  });
});

describe('session strategy refresh at its edges', () => {
  it("a login's expires_in is the session's life as the store keeps it (to the second on binary records), as a refresh's is", async () => {
    auth = testAuth({ strategy: 'session', sessionIdleTtl: 2 });
    for (let i = 0; i < 5; i++) {
      const before = Date.now();
      const pair = await auth.generateTokens({ id: `edge-${i}` });
      const [session] = await auth.listSessions(`edge-${i}`);
      // The session lives at least as long as the login said, counted from before the call.
      expect(session!.expiresAt.getTime() - before).toBeGreaterThanOrEqual(pair.expires_in * 1000);
      expect(pair.expires_in).toBeGreaterThanOrEqual(1);
    }
  });

  it('a refresh in the last second before the absolute end is token_expired, not a pair with expires_in 0', async () => {
    auth = testAuth({ strategy: 'session', absoluteSessionTtl: 3600 });
    const t0 = Date.now();
    const { refresh_token: token } = await auth.generateTokens({ id: 'ending' });
    const [session] = await auth.listSessions('ending', { strategy: 'session' });
    const end = session!.expiresAt.getTime();
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      // A second and a half before the end: a pair that lives one more second.
      vi.setSystemTime(end - 1500);
      expect((await auth.refreshTokens(token)).expires_in).toBe(1);
      // Under a second before it: no pair (its cookies would say Max-Age=0), and the session
      // still answers requests until its end.
      vi.setSystemTime(end - 500);
      await expect(auth.refreshTokens(token)).rejects.toMatchObject({ code: 'token_expired' });
      expect(await auth.getData(token)).toMatchObject({ sub: 'ending' });
    } finally {
      vi.useRealTimers();
    }
    expect(end - t0).toBeLessThanOrEqual(3600_000);
  });

  it('a custom store that throws rather than rejects: a refresh answers store_unavailable, requests go on', async () => {
    const inner = memoryStore();
    let throwing = false;
    const store: SessionStore = {
      create: (...a) => inner.create(...a),
      rotate: (...a) => {
        if (throwing) throw new Error('the store is gone');
        return inner.rotate(...a);
      },
      get: (...a) => inner.get(...a),
      isLive: (...a) => inner.isLive(...a),
      revoke: (...a) => inner.revoke(...a),
      revokeAll: (...a) => inner.revokeAll(...a),
      list: (...a) => inner.list(...a),
      close: () => inner.close(),
    };
    auth = createAuth({ secret: SECRET, store, strategy: 'session', sessionIdleTtl: 60 });
    const { refresh_token: token } = await auth.generateTokens({ id: 'thrower' });
    throwing = true;
    // Half a minute on, a refresh slides the session, and a request's slide (due every tenth of
    // the idle time) is sent too: the store throws at both.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 30_000);
      await expect(auth.refreshTokens(token)).rejects.toMatchObject({
        code: 'store_unavailable',
        status: 503,
      });
      // The request's slide is not awaited: a store that throws does not fail the request.
      expect(await auth.getData(token)).toMatchObject({ sub: 'thrower' });
    } finally {
      vi.useRealTimers();
    }
  });
});
