import Router from '@koa/router';
import Koa from 'koa';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { type Auth, type AuthEventMap, createAuth, type TokenPair } from '../../src/index.js';
import { testAuth } from '../helpers/auth.js';
import { decodeSegment, SECRET } from '../helpers/forge.js';
import { call, type Reply, serve, type Served } from '../helpers/http.js';
import { checkPassword, Jar, setCookies, webApp } from '../helpers/web.js';

/*
 * Sessions over their whole life (SECURITY.md): two tabs are not a thief, sessions end, tokens
 * stay with their issuer, login failures are visible. Real Koa servers, real Redis (and the
 * `cluster` project runs this file again on a real Redis Cluster).
 */

const CSRF = '__Host-csrf_token';
const REFRESH_COOKIE = '__Secure-refresh_token';

let auth: Auth | undefined;
let server: Served | undefined;

afterEach(async () => {
  await server?.close();
  await auth?.close();
  server = undefined;
  auth = undefined;
});

const jtiOf = (token: string) => decodeSegment(token, 1).jti as string;

describe('two tabs sharing a refresh token, with default options', () => {
  it('JSON mode: 100 rounds of two concurrent refreshes, 0 logouts, 0 409s, one live chain', async () => {
    auth = testAuth();
    server = await serve(webApp(auth));
    const url = server.url;
    // The tabs share storage: both read the same refresh token, and keep whichever answer lands last.
    let shared = (
      await call(url, '/auth/login', { body: { username: 'alice', password: 'wonderland' } })
    ).body as TokenPair;
    const handedOut: string[] = [shared.refresh_token];
    let logouts = 0;
    let conflicts = 0;
    for (let round = 0; round < 100; round++) {
      const presented = shared.refresh_token;
      const replies = await Promise.all(
        [0, 1].map(() => call(url, '/auth/refresh', { body: { refresh_token: presented } })),
      );
      for (const reply of replies) {
        if (reply.status === 401) logouts++;
        if (reply.status === 409) conflicts++;
        expect(reply.status, JSON.stringify(reply.body)).toBe(200);
      }
      const [a, b] = replies.map((r) => r.body as TokenPair) as [TokenPair, TokenPair];
      // Both tabs hold the same chain: one live refresh-token id, and access tokens that work.
      expect(jtiOf(a.refresh_token)).toBe(jtiOf(b.refresh_token));
      for (const pair of [a, b])
        expect((await call(url, '/me', { token: pair.access_token })).status).toBe(200);
      handedOut.push(a.refresh_token, b.refresh_token);
      shared = round % 2 === 0 ? a : b;
    }
    expect(logouts).toBe(0);
    expect(conflicts).toBe(0);
    expect(await auth.listSessions(1)).toHaveLength(1);
    // One live chain: every refresh token that still works carries the last round's id.
    const live = new Set<string>();
    for (const token of handedOut) if (await auth.checkRefreshToken(token)) live.add(jtiOf(token));
    expect([...live]).toEqual([jtiOf(shared.refresh_token)]);
  });

  it('cookie mode: 100 rounds of two concurrent refreshes from one browser, 0 logouts, 0 409s, one live chain', async () => {
    auth = testAuth({ tokenDelivery: 'cookie' });
    server = await serve(webApp(auth));
    const url = server.url;
    // Tabs of one browser share its cookie jar; each answer's Set-Cookie lands in it as it arrives.
    const jar = new Jar();
    const send = async (path: string, body?: unknown): Promise<Reply> => {
      const headers: Record<string, string> = { origin: url, cookie: jar.header() };
      if (body !== undefined) headers['x-csrf-token'] = jar.values.get(CSRF) ?? '1';
      const reply = await call(url, path, { body, headers });
      jar.take(reply.headers);
      return reply;
    };
    expect((await send('/auth/login', { username: 'alice', password: 'wonderland' })).status).toBe(
      200,
    );
    const handedOut: string[] = [jar.values.get(REFRESH_COOKIE)!];
    let logouts = 0;
    let conflicts = 0;
    for (let round = 0; round < 100; round++) {
      const replies = await Promise.all([0, 1].map(() => send('/auth/refresh', {})));
      for (const reply of replies) {
        if (reply.status === 401) logouts++;
        if (reply.status === 409) conflicts++;
        expect(reply.status, JSON.stringify(reply.body)).toBe(200);
        const cookies = setCookies(reply.headers);
        const refresh = cookies.get(REFRESH_COOKIE)!.value;
        handedOut.push(refresh);
        // No cookie outlives its token.
        const maxAge = Number(
          /Max-Age=(\d+)/.exec(cookies.get(REFRESH_COOKIE)!.attributes.join(';'))![1],
        );
        expect(maxAge).toBeLessThanOrEqual(
          (decodeSegment(refresh, 1).exp as number) - Math.floor(Date.now() / 1000) + 1,
        );
      }
      const [a, b] = replies.map((r) => setCookies(r.headers).get(REFRESH_COOKIE)!.value);
      expect(jtiOf(a!)).toBe(jtiOf(b!));
      expect((await send('/me')).status).toBe(200);
    }
    expect(logouts).toBe(0);
    expect(conflicts).toBe(0);
    expect(await auth.listSessions(1)).toHaveLength(1);
    const live = new Set<string>();
    for (const token of handedOut) if (await auth.checkRefreshToken(token)) live.add(jtiOf(token));
    expect([...live]).toEqual([jtiOf(jar.values.get(REFRESH_COOKIE)!)]);
  });

  it('after the grace period a rotated token is reuse: that family is revoked, the other sessions live', async () => {
    auth = testAuth({ refreshGracePeriod: 1 });
    const reused: AuthEventMap['refresh_reused'][] = [];
    auth.on('refresh_reused', (event) => reused.push(event));
    const phone = await auth.generateTokens({ id: 'u-grace' });
    const laptop = await auth.generateTokens({ id: 'u-grace' });
    const next = await auth.refreshTokens(phone.refresh_token);
    // Within the grace period: the same chain.
    expect(jtiOf((await auth.refreshTokens(phone.refresh_token)).refresh_token)).toBe(
      jtiOf(next.refresh_token),
    );
    // The default binary record keeps the rotation time rounded up to the second: a grace
    // window runs its full length, and at most 1 s more.
    await sleep(2100);
    await expect(auth.refreshTokens(phone.refresh_token)).rejects.toMatchObject({
      code: 'refresh_reused',
    });
    expect(reused).toHaveLength(1);
    await expect(auth.refreshTokens(next.refresh_token)).rejects.toMatchObject({
      code: 'token_revoked',
    });
    const redis = auth.strategies.get('redis');
    await expect(
      (async () => redis.readToken(next.access_token, { checkSession: true }))(),
    ).rejects.toMatchObject({ code: 'token_revoked' });
    // The user's other session is untouched.
    const sessions = await auth.listSessions('u-grace');
    expect(sessions.map((s) => s.sessionId)).toEqual([decodeSegment(laptop.refresh_token, 1).sid]);
    expect((await auth.refreshTokens(laptop.refresh_token)).token_type).toBe('bearer');
  });
});

describe('sessions end', () => {
  it('access tokens carry auth_time, the login time that refreshes keep', async () => {
    auth = testAuth();
    const before = Math.floor(Date.now() / 1000);
    const login = await auth.generateTokens({ id: 'u-at' });
    const authTime = decodeSegment(login.access_token, 1).auth_time as number;
    expect(authTime).toBeGreaterThanOrEqual(before);
    expect(authTime).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
    await sleep(1100);
    const next = await auth.refreshTokens(login.refresh_token);
    expect(decodeSegment(next.access_token, 1).auth_time).toBe(authTime);
    expect(decodeSegment(next.access_token, 1).iat).toBeGreaterThan(authTime);
    const [session] = await auth.listSessions('u-at');
    // Default absolute lifetime: 30 days from the login.
    expect(session!.expiresAt.getTime()).toBeLessThanOrEqual((authTime + 2_592_000) * 1000);
  });

  it('the stateless strategy ends sessions at absoluteSessionTtl too', async () => {
    auth = testAuth({ accessTokenTtl: 1, refreshTokenTtl: 2, absoluteSessionTtl: 3, leeway: 0 });
    let pair = await auth.generateTokens({ id: 'u-jwt' }, { strategy: 'jwt' });
    const authTime = decodeSegment(pair.access_token, 1).auth_time as number;
    let failure: { code?: string } | undefined;
    while (failure === undefined) {
      await sleep(300);
      try {
        pair = await auth.refreshTokens(pair.refresh_token, { strategy: 'jwt' });
        expect(decodeSegment(pair.refresh_token, 1).exp as number).toBeLessThanOrEqual(
          authTime + 3,
        );
        expect(decodeSegment(pair.refresh_token, 1).stg).toBe('jwt');
      } catch (error) {
        failure = error as { code?: string };
      }
    }
    expect(failure.code).toBe('token_expired');
    expect(Date.now()).toBeLessThan((authTime + 3) * 1000 + 1500);
  });

  it('refuses absoluteSessionTtl that is not a whole number longer than accessTokenTtl', () => {
    for (const absoluteSessionTtl of [0, -1, 1.5, 'day', 900, 31_536_001])
      expect(() =>
        createAuth({
          secret: SECRET,
          absoluteSessionTtl: absoluteSessionTtl as number,
        }),
      ).toThrow(expect.objectContaining({ option: 'absoluteSessionTtl' }));
  });
});

describe('tokens stay with their issuer', () => {
  /** An app with every registered strategy's routes and middlewares, each under /<strategy>. */
  function everyStrategyApp(instance: Auth): Koa {
    const app = new Koa();
    for (const strategy of instance.strategies.names()) {
      const routes = instance.routes({
        prefix: `/${strategy}/auth`,
        strategy,
        login: (ctx) => checkPassword(ctx.request.body),
      });
      app.use(routes.routes());
      const api = new Router({ prefix: `/${strategy}` });
      api.get('/me', instance.requireAuth({ strategy }), (ctx) => {
        ctx.body = ctx.state.user;
      });
      api.get('/me-unchecked', instance.requireAuth({ strategy, checkSession: false }), (ctx) => {
        ctx.body = ctx.state.user;
      });
      api.get('/whoami', instance.getData({ strategy }), (ctx) => {
        ctx.body = { user: ctx.state.user?.sub ?? null, error: ctx.state.authError?.code ?? null };
      });
      app.use(api.routes());
    }
    return app;
  }

  it('every token kind of each strategy is refused with token_invalid by every other strategy’s middlewares and helpers', async () => {
    auth = testAuth();
    server = await serve(everyStrategyApp(auth));
    const url = server.url;
    const names = auth.strategies.names();
    expect(names).toEqual(expect.arrayContaining(['redis', 'jwt']));
    const body = { username: 'alice', password: 'wonderland' };
    for (const issuer of names) {
      const login = await call(url, `/${issuer}/auth/login`, { body });
      expect(login.status).toBe(200);
      const pair = login.body as TokenPair;
      expect((await call(url, `/${issuer}/me`, { token: pair.access_token })).status).toBe(200);
      const kinds = { access: pair.access_token, refresh: pair.refresh_token };
      for (const other of names.filter((n) => n !== issuer)) {
        const strategy = auth.strategies.get(other);
        const choice = { strategy: other };
        for (const [kind, token] of Object.entries(kinds)) {
          const at = `${kind} token of ${issuer} at ${other}`;
          // Middlewares: requireAuth (with and without the session check) and getData.
          for (const path of ['me', 'me-unchecked']) {
            const reply = await call(url, `/${other}/${path}`, { token });
            expect(reply.status, `${at} /${path}`).toBe(401);
            expect(reply.body.error, `${at} /${path}`).toBe('token_invalid');
          }
          expect((await call(url, `/${other}/whoami`, { token })).body, at).toEqual({
            user: null,
            error: 'token_invalid',
          });
          // The routes of auth.routes({ strategy }).
          for (const [path, request] of [
            ['refresh', { body: { refresh_token: token } }],
            ['logout', { body: { refresh_token: token } }],
            ['logout', { method: 'POST', token }],
            ['sessions', { token }],
            ['logout-all', { method: 'POST', token }],
          ] as const) {
            const reply = await call(url, `/${other}/auth/${path}`, request);
            expect(reply.status, `${at} ${path}`).toBe(401);
            expect(reply.body.error, `${at} ${path}`).toBe('token_invalid');
          }
          // Helpers and the strategy itself.
          for (const attempt of [
            () => auth!.refreshTokens(token, choice),
            () => auth!.invalidateRefreshToken(token, choice),
            async () => strategy.readToken(token, { checkSession: true }),
            async () => strategy.readToken(token, { checkSession: false }),
          ])
            await expect(attempt(), at).rejects.toMatchObject({ code: 'token_invalid' });
          expect(await auth.checkRefreshToken(token, choice), at).toBe(false);
        }
      }
      // Nothing of the above touched the issuer's session; a refresh keeps the strategy.
      const next = await auth.refreshTokens(pair.refresh_token, { strategy: issuer });
      // JWT strategies stamp their name; an opaque token is bound by where it is stored.
      if (issuer === 'redis' || issuer === 'jwt')
        for (const token of [next.access_token, next.refresh_token])
          expect(decodeSegment(token, 1).stg).toBe(issuer);
      expect((await call(url, `/${issuer}/me`, { token: next.access_token })).status).toBe(200);
    }
  });

  it('a refresh token the redis strategy logged out is refused by the jwt strategy', async () => {
    auth = testAuth();
    const pair = await auth.generateTokens({ id: 'u-x' });
    await auth.invalidateRefreshToken(pair.refresh_token);
    await expect(auth.refreshTokens(pair.refresh_token, { strategy: 'jwt' })).rejects.toMatchObject(
      { code: 'token_invalid' },
    );
    await expect(auth.refreshTokens(pair.refresh_token)).rejects.toMatchObject({
      code: 'token_revoked',
    });
  });

  it('the default helpers use the default strategy: another strategy’s tokens are refused', async () => {
    auth = testAuth();
    const stateless = await auth.generateTokens({ id: 'u-y' }, { strategy: 'jwt' });
    await expect(auth.refreshTokens(stateless.refresh_token)).rejects.toMatchObject({
      code: 'token_invalid',
    });
    expect(await auth.checkRefreshToken(stateless.refresh_token)).toBe(false);
    auth.strategies.setDefault('jwt');
    expect(await auth.checkRefreshToken(stateless.refresh_token)).toBe(true);
  });
});

describe('stored metadata', () => {
  // Sessions store a device label, not the raw user agent (see device-labels.test.ts); the store's
  // own byte-for-byte round trip of any Unicode, wherever a character falls on a chunk boundary,
  // is the contract suite's "metadata round-trips byte for byte" on every store.
  it('a user agent with an emoji at a 64-character chunk boundary is listed as its device label, intact', async () => {
    for (const instance of [testAuth(), createAuth({ secret: SECRET })]) {
      auth = instance;
      const ip = '1.2.3.4';
      const agents: string[] = [];
      for (let offset = 48; offset < 64; offset++)
        agents.push(`${'x'.repeat(offset)}😀 Firefox/128.0 👩‍💻 中文 ✓`);
      for (const userAgent of agents)
        await instance.generateTokens({ id: 'u-ua' }, { userAgent, ip });
      const listed = await instance.listSessions('u-ua');
      expect(listed.map((s) => s.userAgent)).toEqual(agents.map(() => 'Firefox'));
      expect(listed.map((s) => s.ip)).toEqual(agents.map(() => ip));
      // A lone surrogate, or an agent far over the size limit: a clean label, never half a pair.
      await instance.generateTokens({ id: 'u-lone' }, { userAgent: `a\uD83Db`, ip });
      const [lone] = await instance.listSessions('u-lone');
      expect(lone!.userAgent).toMatch(/^[^\uD800-\uDFFF]+$/);
      await instance.generateTokens({ id: 'u-long' }, { userAgent: '😀'.repeat(200), ip });
      const [long] = await instance.listSessions('u-long');
      expect(long!.userAgent).toBe('Unknown device');
      await instance.close();
      auth = undefined;
    }
  });
});

describe('login_failed', () => {
  it('reports the name tried, ip, user agent and reason; a rate limit hooked to it answers 429', async () => {
    auth = testAuth();
    const events: AuthEventMap['login_failed'][] = [];
    auth.on('login_failed', (event) => events.push(event));
    // A limiter hooked to the event, counting in memory: failures per ip and name, refused for a
    // minute after 3. (The README's Redis limiter itself runs in readme-recipes.test.ts.)
    const failures = new Map<string, number>();
    const keyOf = (ip: string | undefined, name: string | undefined) => `${ip}|${name}`;
    auth.on('login_failed', ({ ip, name, reason }) => {
      if (reason === 'invalid_credentials') {
        const key = keyOf(ip, name);
        failures.set(key, (failures.get(key) ?? 0) + 1);
      }
    });
    const app = webApp(auth, {
      rateLimit: {
        check: (ctx) => {
          const name = (ctx.request.body as { username?: string } | undefined)?.username;
          return (failures.get(keyOf(ctx.ip, name)) ?? 0) >= 3 ? 60 : 0;
        },
      },
    });
    server = await serve(app);
    const attempt = (password: string) =>
      call(server!.url, '/auth/login', {
        body: { username: 'alice', password },
        headers: { 'user-agent': 'guesser/1.0' },
      });
    for (let i = 0; i < 3; i++) expect((await attempt(`guess-${i}`)).status).toBe(401);
    const limited = await attempt('wonderland');
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('60');
    expect(events).toHaveLength(4);
    for (const [i, event] of events.entries()) {
      expect(event).toEqual({
        reason: i < 3 ? 'invalid_credentials' : 'rate_limited',
        name: 'alice',
        ip: expect.stringMatching(/127\.0\.0\.1$/),
        userAgent: 'guesser/1.0',
      });
    }
    // Another user from the same ip is not held back, and a success emits nothing.
    const bob = await call(server.url, '/auth/login', {
      body: { username: 'bob', password: 'builder' },
    });
    expect(bob.status).toBe(200);
    expect(events).toHaveLength(4);
  });

  it('takes the name from loginName, and reports none when the body has none', async () => {
    auth = testAuth();
    const events: AuthEventMap['login_failed'][] = [];
    auth.on('login_failed', (event) => events.push(event));
    server = await serve(
      webApp(auth, { loginName: (ctx) => (ctx.request.body as { user?: string }).user }),
    );
    await call(server.url, '/auth/login', { body: { user: 'carol', password: 'x' } });
    await call(server.url, '/auth/login', { body: { password: 'x' } });
    expect(events.map((e) => e.name)).toEqual(['carol', undefined]);
    expect(events.every((e) => e.reason === 'invalid_credentials')).toBe(true);
  });
});
