import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Auth,
  AuthConfigError,
  AuthError,
  authErrors,
  type LoginRateLimiter,
} from '../../src/index.js';
import { testAuth } from '../helpers/auth.js';
import { decodeSegment, forgeHmac, SECRET } from '../helpers/forge.js';
import { call, type Reply, serve, type Served } from '../helpers/http.js';
import { checkPassword, webApp } from '../helpers/web.js';

/** auth.routes() in the default json delivery, against the harness Redis. */

let auth: Auth;
let server: Served;

async function start(
  options: Parameters<typeof webApp>[1] = {},
  authOptions: Parameters<typeof testAuth>[0] = {},
): Promise<void> {
  auth = testAuth({ userFields: ['name'], ...authOptions });
  server = await serve(webApp(auth, options));
}

afterEach(async () => {
  await server?.close();
  await auth?.close();
});

const login = (
  username = 'alice',
  password = 'wonderland',
  headers: Record<string, string> = {},
): Promise<Reply> => call(server.url, '/auth/login', { body: { username, password }, headers });
const post = (path: string, options: Parameters<typeof call>[2] = {}) =>
  call(server.url, path, { method: 'POST', ...options });

describe('POST /auth/login', () => {
  it('returns the token pair with Cache-Control: no-store and sets no cookie', async () => {
    await start();
    const res = await login();
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.getSetCookie()).toEqual([]);
    expect(res.body).toMatchObject({ token_type: 'bearer', expires_in: 900 });
    expect((await call(server.url, '/me', { token: res.body.access_token })).body).toMatchObject({
      sub: '1',
      name: 'alice',
    });
  });

  it('answers a wrong password and an unknown user with the same 401 invalid_credentials', async () => {
    await start();
    const wrongPassword = await login('alice', 'nope');
    const unknownUser = await login('mallory', 'wonderland');
    for (const res of [wrongPassword, unknownUser]) {
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      expect(res.body.error).toBe('invalid_credentials');
    }
    expect(wrongPassword.body).toEqual(unknownUser.body);
    expect(await auth.listSessions(1)).toEqual([]);
  });

  it('answers malformed JSON with 400 invalid_request and an oversized body with 413 body_too_large, not 500', async () => {
    await start();
    const bad = await call(server.url, '/auth/login', {
      body: '{"username":',
      headers: { 'content-type': 'application/json' },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe('invalid_request');
    const huge = await call(server.url, '/auth/login', { body: { username: 'x'.repeat(20_000) } });
    expect(huge.status).toBe(413);
    expect(huge.body.error).toBe('body_too_large');
  });

  it('lets the rateLimit hook refuse attempts with 429 and Retry-After, and reports outcomes', async () => {
    const failures = new Map<string, number>();
    const outcomes: string[] = [];
    const limiter: LoginRateLimiter = {
      check: (ctx) => ((failures.get(ctx.ip) ?? 0) >= 3 ? 60 : 0),
      record: (ctx, outcome) => {
        outcomes.push(outcome);
        if (outcome === 'failure') failures.set(ctx.ip, (failures.get(ctx.ip) ?? 0) + 1);
      },
    };
    await start({ rateLimit: limiter });
    expect((await login()).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await login('alice', 'guess')).status).toBe(401);
    const limited = await login();
    expect(limited.status).toBe(429);
    expect(limited.body.error).toBe('rate_limited');
    expect(limited.headers.get('retry-after')).toBe('60');
    expect(outcomes).toEqual(['success', 'failure', 'failure', 'failure']);
  });

  it("reads rateLimit.check's answer strictly: a fraction rounds up, a wait past a year or Infinity is 429 without Retry-After, a negative TTL lets through, and a string or NaN is the app's 500 that names it, never a login", async () => {
    let answer: unknown;
    let logins = 0;
    const app = webApp((auth = testAuth()), {
      login: (ctx) => (logins++, checkPassword(ctx.request.body)),
      rateLimit: { check: () => answer as number },
    });
    const errors: string[] = [];
    app.silent = true;
    app.on('error', (error: Error) => errors.push(error.message));
    server = await serve(app);
    const attempt = async (value: unknown) => {
      answer = value;
      const res = await login();
      return [res.status, res.headers.get('retry-after')];
    };
    expect(await attempt(1.2)).toEqual([429, '2']);
    expect(await attempt(1e21)).toEqual([429, null]);
    expect(await attempt(Infinity)).toEqual([429, null]);
    expect(await attempt(365 * 24 * 3600)).toEqual([429, String(365 * 24 * 3600)]);
    expect(logins).toBe(0);
    // Redis's TTL of a missing key, nothing, null: through.
    for (const value of [-2, 0, undefined, null]) expect(await attempt(value)).toEqual([200, null]);
    expect(logins).toBe(4);
    // `return redis.get(key)` answers a string: a broken limiter, refused loudly, not let through.
    expect(await attempt('30')).toEqual([500, null]);
    expect(await attempt(NaN)).toEqual([500, null]);
    expect(logins).toBe(4);
    expect(errors).toEqual([
      expect.stringContaining('rateLimit.check returned a string'),
      expect.stringContaining('rateLimit.check returned NaN'),
    ]);
  });

  it('uses the configured prefix', async () => {
    await start({ prefix: '/api/v1/session' });
    expect(
      (
        await call(server.url, '/api/v1/session/login', {
          body: { username: 'alice', password: 'wonderland' },
        })
      ).status,
    ).toBe(200);
    expect((await login()).status).toBe(404);
  });

  it('refuses bad routes() options at start-up', async () => {
    auth = testAuth();
    expect(() => auth.routes({} as never)).toThrow(/login/);
    expect(() => auth.routes({ login: () => null, prefix: 'auth/' })).toThrow(/prefix/);
    expect(() => auth.routes({ login: () => null, rateLimit: {} as never })).toThrow(/rateLimit/);
    // A limiter that counts failures in record: misspelt, it would never count one.
    const check = () => 0;
    const record = () => {};
    for (const [rateLimit, option] of [
      [{ check, recrod: record }, 'routes.rateLimit.recrod'],
      [{ check, Record: record }, 'routes.rateLimit.Record'],
      [{ check, record: 'x' }, 'routes.rateLimit.record'],
    ] as const) {
      let error: unknown;
      try {
        auth.routes({ login: () => null, rateLimit: rateLimit as never });
      } catch (caught) {
        error = caught;
      }
      expect((error as AuthConfigError | undefined)?.option, option).toBe(option);
    }
    // Fields near the hook's name are no hook: a limiter that counts inside check needs no record.
    class Limiter {
      records = new Map<string, number>();
      check() {
        return 0;
      }
    }
    expect(() => auth.routes({ login: () => null, rateLimit: new Limiter() })).not.toThrow();
    const counting = { check, records: new Map(), recorded: 0 };
    expect(() => auth.routes({ login: () => null, rateLimit: counting })).not.toThrow();
  });
});

describe('POST /auth/refresh', () => {
  it('rotates the pair; the old refresh token is then refused as reused', async () => {
    await start({}, { refreshGracePeriod: 0 });
    const first = (await login()).body;
    const second = await post('/auth/refresh', { body: { refresh_token: first.refresh_token } });
    expect(second.status).toBe(200);
    expect(second.headers.get('cache-control')).toBe('no-store');
    expect(second.body.refresh_token).not.toBe(first.refresh_token);
    const replay = await post('/auth/refresh', { body: { refresh_token: first.refresh_token } });
    expect(replay.status).toBe(401);
    expect(replay.body.error).toBe('refresh_reused');
  });

  it('refuses a missing, non-string, garbage or access token', async () => {
    await start();
    const { access_token } = (await login()).body;
    const missing = await post('/auth/refresh', { body: {} });
    expect([missing.status, missing.body.error]).toEqual([401, 'token_missing']);
    const number = await post('/auth/refresh', { body: { refresh_token: 42 } });
    expect([number.status, number.body.error]).toEqual([400, 'invalid_request']);
    const garbage = await post('/auth/refresh', { body: { refresh_token: 'not.a.token' } });
    expect([garbage.status, garbage.body.error]).toEqual([401, 'token_invalid']);
    const access = await post('/auth/refresh', { body: { refresh_token: access_token } });
    expect([access.status, access.body.error]).toEqual([401, 'token_invalid']);
  });
});

describe('POST /auth/logout', () => {
  it('ends the session of a refresh token in the body, idempotently', async () => {
    await start();
    const pair = (await login()).body;
    expect(
      (await post('/auth/logout', { body: { refresh_token: pair.refresh_token } })).status,
    ).toBe(204);
    expect((await call(server.url, '/me', { token: pair.access_token })).body.error).toBe(
      'token_revoked',
    );
    expect(
      (await post('/auth/logout', { body: { refresh_token: pair.refresh_token } })).status,
    ).toBe(204);
  });

  it('ends the session of a bearer access token', async () => {
    await start();
    const pair = (await login()).body;
    expect((await post('/auth/logout', { token: pair.access_token })).status).toBe(204);
    expect(
      (await post('/auth/refresh', { body: { refresh_token: pair.refresh_token } })).body.error,
    ).toBe('token_revoked');
  });

  it('answers no token with 401 token_missing and a bad one with 401 token_invalid', async () => {
    await start();
    const none = await post('/auth/logout');
    expect([none.status, none.body.error]).toEqual([401, 'token_missing']);
    const bad = await post('/auth/logout', { body: { refresh_token: 'abc' } });
    expect([bad.status, bad.body.error]).toEqual([401, 'token_invalid']);
  });

  it('answers a malformed Bearer header on refresh and logout with 401 token_invalid, changing nothing', async () => {
    await start();
    const pair = (await login()).body;
    const refresh = await post('/auth/refresh', {
      headers: { authorization: `Bearer\t${pair.refresh_token}` },
    });
    expect([refresh.status, refresh.body.error]).toEqual([401, 'token_invalid']);
    const logout = await post('/auth/logout', {
      headers: { authorization: `Bearer ${pair.access_token}, Bearer x` },
    });
    expect([logout.status, logout.body.error]).toEqual([401, 'token_invalid']);
    // Neither rotated nor ended the session.
    expect((await auth.listSessions(1)).length).toBe(1);
    expect((await post('/auth/refresh', { token: pair.refresh_token })).status).toBe(200);
  });
});

describe('POST /auth/logout-all', () => {
  it('ends every session of the caller and none of another user', async () => {
    await start();
    const a1 = (await login()).body;
    const a2 = (await login()).body;
    const b = (await login('bob', 'builder')).body;
    const res = await post('/auth/logout-all', { token: a1.access_token });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ revoked: 2 });
    expect((await call(server.url, '/me', { token: a2.access_token })).status).toBe(401);
    expect((await call(server.url, '/me', { token: b.access_token })).status).toBe(200);
  });

  it('with keep_current ends only the other sessions', async () => {
    await start();
    const a1 = (await login()).body;
    const a2 = (await login()).body;
    const res = await post('/auth/logout-all', {
      token: a1.access_token,
      body: { keep_current: true },
    });
    expect(res.body).toEqual({ revoked: 1 });
    expect((await call(server.url, '/me', { token: a1.access_token })).status).toBe(200);
    expect((await call(server.url, '/me', { token: a2.access_token })).status).toBe(401);
  });

  it('answers a keep_current that is no boolean with 400, ending nothing', async () => {
    await start();
    const a1 = (await login()).body;
    const a2 = (await login()).body;
    for (const keep of ['true', 1, null, {}]) {
      const res = await post('/auth/logout-all', {
        token: a1.access_token,
        body: { keep_current: keep },
      });
      expect([res.status, res.body.error], JSON.stringify(keep)).toEqual([400, 'invalid_request']);
    }
    for (const { access_token: token } of [a1, a2])
      expect((await call(server.url, '/me', { token })).status).toBe(200);
  });

  it('needs a valid access token', async () => {
    await start();
    const res = await post('/auth/logout-all');
    expect([res.status, res.body.error]).toEqual([401, 'token_missing']);
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
    const refresh = (await login()).body.refresh_token;
    expect((await post('/auth/logout-all', { token: refresh })).body.error).toBe('token_invalid');
  });
});

describe('GET /auth/sessions and DELETE /auth/sessions/:id', () => {
  it("lists the caller's sessions with the current one marked", async () => {
    await start();
    const first = (await login('alice', 'wonderland', { 'user-agent': 'first-agent' })).body;
    await login('alice', 'wonderland', { 'user-agent': 'second-agent' });
    await login('bob', 'builder');
    const res = await call(server.url, '/auth/sessions', { token: first.access_token });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body).toHaveLength(2);
    expect(
      res.body.map((s: { userAgent: string; current: boolean }) => [s.userAgent, s.current]),
    ).toEqual([
      ['first-agent', true],
      ['second-agent', false],
    ]);
    expect((await call(server.url, '/auth/sessions')).status).toBe(401);
  });

  it("revokes one of the caller's sessions; an unknown or another user's id is 404", async () => {
    await start();
    const a1 = (await login()).body;
    const a2 = (await login()).body;
    const b = (await login('bob', 'builder')).body;
    const [, other] = (await call(server.url, '/auth/sessions', { token: a1.access_token }))
      .body as { sessionId: string }[];
    const bobs = (await call(server.url, '/auth/sessions', { token: b.access_token })).body[0]
      .sessionId as string;

    const foreign = await call(server.url, `/auth/sessions/${bobs}`, {
      method: 'DELETE',
      token: a1.access_token,
    });
    expect([foreign.status, foreign.body.error]).toEqual([404, 'session_not_found']);
    expect((await call(server.url, '/me', { token: b.access_token })).status).toBe(200);
    const unknown = await call(server.url, '/auth/sessions/nope', {
      method: 'DELETE',
      token: a1.access_token,
    });
    expect(unknown.status).toBe(404);

    const done = await call(server.url, `/auth/sessions/${other!.sessionId}`, {
      method: 'DELETE',
      token: a1.access_token,
    });
    expect(done.status).toBe(204);
    expect((await call(server.url, '/me', { token: a2.access_token })).status).toBe(401);
    expect((await call(server.url, '/me', { token: a1.access_token })).status).toBe(200);
    const again = await call(server.url, `/auth/sessions/${other!.sessionId}`, {
      method: 'DELETE',
      token: a1.access_token,
    });
    expect(again.status).toBe(404);
    expect(
      (await call(server.url, `/auth/sessions/${other!.sessionId}`, { method: 'DELETE' })).status,
    ).toBe(401);
  });
});

describe('a token signed with the key but with a subject the library never issues', () => {
  it('is 401 token_invalid on every route, not a 500 from the store helpers (300 characters, a control character)', async () => {
    for (const checkSession of [true, false]) {
      await start({}, { checkSession });
      const pair = (await login()).body;
      const [header, payload] = [0, 1].map((i) => decodeSegment(pair.access_token, i));
      for (const sub of ['u'.repeat(300), 'a\u0001b']) {
        const token = forgeHmac(header!, { ...payload, sub }, SECRET);
        for (const [method, path] of [
          ['POST', '/auth/logout'],
          ['GET', '/auth/sessions'],
          ['POST', '/auth/logout-all'],
          ['DELETE', '/auth/sessions/abcdefghijklmnop'],
          ['GET', '/me'],
        ] as const) {
          const res = await call(server.url, path, { method, token });
          expect(
            [res.status, res.body.error],
            `${method} ${path}, checkSession ${checkSession}`,
          ).toEqual([401, 'token_invalid']);
        }
      }
      // The ids the library issues are as long as they may be: 256 characters still work.
      const longest = await auth.generateTokens({ id: 'u'.repeat(256) });
      expect((await call(server.url, '/me', { token: longest.access_token })).status).toBe(200);
      await server.close();
      await auth.close();
    }
  });
});

describe('routes when Redis is down', () => {
  it('answer 503 store_unavailable, never 401 or 500', async () => {
    await start({}, { redis: 'redis://127.0.0.1:1', storeTimeout: 200 });
    const res = await login();
    expect([res.status, res.body.error]).toEqual([503, 'store_unavailable']);
  });
});

describe('a strategy that does not support an operation', () => {
  it('answers 501 strategy_unsupported as JSON, and logout with a bearer access token 204', async () => {
    await start({ strategy: 'jwt' });
    const pair = (await login()).body;
    const attempts = [
      await call(server.url, '/auth/sessions', { token: pair.access_token }),
      await post('/auth/logout-all', { token: pair.access_token }),
      await call(server.url, '/auth/sessions/x', { method: 'DELETE', token: pair.access_token }),
    ];
    for (const res of attempts) {
      expect(res.status).toBe(501);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.body).toMatchObject({ error: 'strategy_unsupported' });
      expect(res.body.message).toMatch(/"jwt" strategy does not support/);
    }
  });

  it('answers logout with a stateless access token 204: there is no session to end', async () => {
    await start({ strategy: 'jwt' });
    const pair = (await login()).body;
    expect((await post('/auth/logout', { token: pair.access_token })).status).toBe(204);
    expect(
      (await post('/auth/logout', { body: { refresh_token: pair.refresh_token } })).status,
    ).toBe(204);
  });
});

describe('the realm option', () => {
  it("puts realm into the router's own 401 challenges, as requireAuth does", async () => {
    await start({}, { realm: 'api' });
    const missing = await post('/auth/refresh');
    expect([missing.status, missing.body.error]).toEqual([401, 'token_missing']);
    expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="api"');
    const bad = await post('/auth/logout', { body: { refresh_token: 'abc' } });
    expect(bad.headers.get('www-authenticate')).toBe('Bearer realm="api", error="invalid_token"');
    expect((await login('alice', 'nope')).headers.get('www-authenticate')).toBe(
      'Bearer realm="api"',
    );
    // A 401 from requireAuth inside the router is not given the realm twice.
    const sessions = await call(server.url, '/auth/sessions');
    expect(sessions.headers.get('www-authenticate')).toBe('Bearer realm="api"');
    expect((await call(server.url, '/me')).headers.get('www-authenticate')).toBe(
      'Bearer realm="api"',
    );
  });

  it("authErrors() renders the helpers' 401s with the instance's realm, and UnsupportedError as a 501 JSON", async () => {
    auth = testAuth({ realm: 'api' });
    const app = new Koa();
    app.use(authErrors());
    app.use(async (ctx) => {
      const token = ctx.get('x-token');
      if (ctx.path === '/refresh') ctx.body = await auth.refreshTokens(token);
      else if (ctx.path === '/data') ctx.body = await auth.getData(token);
      else if (ctx.path === '/logout') ctx.body = await auth.invalidateRefreshToken(token);
      else if (ctx.path === '/access')
        ctx.body = await auth.createAccessToken({ id: 1 }, { sessionId: token });
      else ctx.body = await auth.listSessions(1, { strategy: 'jwt' });
    });
    server = await serve(app);
    for (const path of ['/refresh', '/data', '/logout']) {
      const res = await call(server.url, path, { headers: { 'x-token': 'not.a.token' } });
      expect([path, res.status, res.body.error]).toEqual([path, 401, 'token_invalid']);
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="api", error="invalid_token"');
    }
    // An access token for a session that is not live (never was, here): a 401 with the realm too.
    const ended = await call(server.url, '/access', { headers: { 'x-token': 'no-such-session' } });
    expect([ended.status, ended.body.error]).toEqual([401, 'token_revoked']);
    expect(ended.headers.get('www-authenticate')).toBe('Bearer realm="api", error="invalid_token"');
    const unsupported = await call(server.url, '/sessions');
    expect(unsupported.status).toBe(501);
    expect(unsupported.headers.get('content-type')).toMatch(/^application\/json/);
    expect(unsupported.body).toEqual({
      error: 'strategy_unsupported',
      message: expect.stringMatching(/"jwt" strategy does not support listSessions/),
    });
  });

  it("gives each instance's realm to a copy: a strategy's one shared AuthError keeps none", async () => {
    // A custom strategy that throws one module-level error object, on two instances.
    const refused = new AuthError('token_invalid', 'Not ours.');
    const strategy = {
      readToken(): never {
        throw refused;
      },
      writeToken(): never {
        throw refused;
      },
    };
    const first = testAuth({ realm: 'first' });
    const second = testAuth({ realm: 'second' });
    try {
      first.strategies.register('shared', strategy);
      second.strategies.register('shared', strategy);
      const challenges: (string | null)[] = [];
      for (const instance of [first, second, first]) {
        const app = new Koa();
        app.use(instance.requireAuth({ strategy: 'shared' })).use((ctx) => {
          ctx.body = 'no';
        });
        const served = await serve(app);
        try {
          const res = await call(served.url, '/', { token: 'x.y.z' });
          challenges.push(res.headers.get('www-authenticate'));
        } finally {
          await served.close();
        }
        // The helpers' rejections: getData(token), and the writes, through writeToken.
        const user = { id: 1 };
        for (const run of [
          () => instance.getData('x.y.z', { strategy: 'shared' }),
          () => instance.generateTokens(user, { strategy: 'shared' }),
          () => instance.createRefreshToken(user, { strategy: 'shared' }),
          () => instance.createAccessToken(user, { strategy: 'shared' }),
        ]) {
          const rejected = (await run().catch((e: unknown) => e)) as AuthError;
          challenges.push(rejected.headers['WWW-Authenticate']!);
        }
      }
      const inFirst = Array(5).fill('Bearer realm="first", error="invalid_token"');
      const inSecond = Array(5).fill('Bearer realm="second", error="invalid_token"');
      expect(challenges).toEqual([...inFirst, ...inSecond, ...inFirst]);
      expect(refused.headers['WWW-Authenticate']).toBe('Bearer error="invalid_token"');
    } finally {
      await first.close();
      await second.close();
    }
  });
});
