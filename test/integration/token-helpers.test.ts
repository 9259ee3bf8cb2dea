import { readFileSync } from 'node:fs';
import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Auth,
  AuthError,
  createAccessToken,
  createRefreshToken,
  getData,
} from '../../src/index.js';
import { testAuth } from '../helpers/auth.js';
import { decodeSegment, SECRET } from '../helpers/forge.js';
import { call, serve, type Served } from '../helpers/http.js';
import { webApp } from '../helpers/web.js';
import jwt from 'jsonwebtoken';

/** The reference designs' helpers: createAccessToken, createRefreshToken, getData(token), bearer refresh, writeToken options. */

let auth: Auth;
let server: Served | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
  await auth?.close();
});

const codeOf = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
  } catch (error) {
    if (error instanceof AuthError) return error.code;
    throw error;
  }
  return 'resolved';
};

describe('createAccessToken / createRefreshToken', () => {
  it('an access token made alone passes requireAuth, lives in a session of its own, and revokeAllSessions ends it', async () => {
    auth = testAuth();
    server = await serve(webApp(auth));
    const token = await createAccessToken({ id: 5, role: 'admin' }, { claims: { plan: 'pro' } });
    const me = await call(server.url, '/me', { token });
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ sub: '5', plan: 'pro' });
    const [session] = await auth.listSessions(5);
    expect(session!.sessionId).toBe(me.body.sid);
    // The session ends with the token (900 s), not 30 days later.
    expect(session!.expiresAt.getTime() - Date.now()).toBeLessThanOrEqual(900_000);
    expect(await auth.revokeAllSessions(5)).toBe(1);
    expect((await call(server.url, '/me', { token })).status).toBe(401);
  });

  it('an access token for a live session (sessionId) keeps its login time and ends with it', async () => {
    auth = testAuth();
    const pair = await auth.generateTokens({ id: 'sid-user' });
    const login = await auth.getData(pair.access_token);
    const token = await auth.createAccessToken(
      { id: 'sid-user' },
      { sessionId: login.sid!, lifetime: 60 },
    );
    const data = await auth.getData(token);
    expect([data.sid, data.auth_time]).toEqual([login.sid, login.auth_time]);
    expect(data.exp! - data.iat!).toBe(60);
    // No new session was started, and another user's id does not reach this session.
    expect(await auth.listSessions('sid-user')).toHaveLength(1);
    expect(await codeOf(auth.createAccessToken({ id: 'other' }, { sessionId: login.sid! }))).toBe(
      'token_revoked',
    );
    await auth.invalidateRefreshToken(pair.refresh_token);
    expect(await codeOf(auth.getData(token))).toBe('token_revoked');

    expect(
      await codeOf(auth.createAccessToken({ id: 'sid-user' }, { sessionId: login.sid! })),
    ).toBe('token_revoked');
  });

  it('a sessionId that is not a session id, or one given where it cannot apply, is a TypeError', async () => {
    auth = testAuth();
    const user = { id: 'sid-values' };
    const pair = await auth.generateTokens(user);
    const { sid } = await auth.getData(pair.access_token);
    const refused: [RegExp, () => Promise<unknown>][] = [
      [/`sessionId` must be/, () => auth.createAccessToken(user, { sessionId: 123 as never })],
      [/`sessionId` must be/, () => auth.createAccessToken(user, { sessionId: '' })],
      [/`sessionId` must be/, () => auth.createAccessToken(user, { sessionId: 'x'.repeat(65) })],
      [
        /`sessionId` must be/,
        () => auth.createAccessToken(user, { sessionId: {} as never, strategy: 'jwt' }),
      ],
      // The redis strategy's refresh token starts a session; the session strategy's token is one.
      [/for access tokens/, () => auth.createRefreshToken(user, { sessionId: sid! })],
      [
        /"session" strategy/,
        () => auth.createAccessToken(user, { sessionId: sid!, strategy: 'session' }),
      ],
      [
        /"session" strategy/,
        () => auth.createRefreshToken(user, { sessionId: sid!, strategy: 'session' }),
      ],
    ];
    for (const [message, run] of refused) {
      const error = await run().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, String(message)).toBeInstanceOf(TypeError);
      expect((error as Error).message).toMatch(message);
    }
    expect(await auth.listSessions(user.id)).toHaveLength(1);
    // The stateless strategy has no session to look up: its tokens carry the id given.
    const stateless = await auth.createRefreshToken(user, {
      sessionId: 'family-1',
      strategy: 'jwt',
    });
    const next = await auth.refreshTokens(stateless, { strategy: 'jwt' });
    expect((await auth.getData(next.access_token, { strategy: 'jwt' })).sid).toBe('family-1');
    const access = await auth.createAccessToken(user, { sessionId: 'family-2', strategy: 'jwt' });
    expect((await auth.getData(access, { strategy: 'jwt' })).sid).toBe('family-2');
  });

  it('a refresh token made alone is recorded and refreshes into a pair', async () => {
    auth = testAuth();
    const refresh = await createRefreshToken({ id: 'r1' });
    expect(await auth.checkRefreshToken(refresh)).toBe(true);
    const pair = await auth.refreshTokens(refresh);
    expect((await auth.getData(pair.access_token)).sub).toBe('r1');
    expect(await auth.checkRefreshToken(refresh)).toBe(false);
  });

  it('a misspelt option of any helper is a TypeError naming it, and nothing is written', async () => {
    auth = testAuth();
    const user = { id: 'typo' };
    const pair = await auth.generateTokens(user);
    const calls: [string, () => Promise<unknown>][] = [
      ['lifetme', () => createAccessToken(user, { lifetme: 60 } as never)],
      ['lifetme', () => createRefreshToken(user, { lifetme: 60 } as never)],
      ['claim', () => auth.generateTokens(user, { claim: { plan: 'pro' } } as never)],
      ['lifetime', () => auth.refreshTokens(pair.refresh_token, { lifetime: 60 } as never)],
      // An option generateTokens knows, which a rotation would ignore: it keeps the login's claims.
      ['claims', () => auth.refreshTokens(pair.refresh_token, { claims: { a: 1 } } as never)],
      ['stategy', () => auth.checkRefreshToken(pair.refresh_token, { stategy: 'jwt' } as never)],
      ['stategy', () => auth.invalidateRefreshToken(pair.refresh_token, { stategy: 'x' } as never)],
      ['stategy', () => auth.listSessions(user.id, { stategy: 'jwt' } as never)],
      ['stategy', () => auth.revokeAllSessions(user.id, { stategy: 'jwt' } as never)],
      ['stategy', () => auth.revokeSession(user.id, 'x', { stategy: 'jwt' } as never)],
      ['stategy', () => auth.getData(pair.access_token, { stategy: 'jwt' } as never)],
    ];
    // A strategy that is no name: only one left out means the default.
    for (const strategy of [null, Symbol('jwt')])
      await expect(auth.generateTokens(user, { strategy } as never)).rejects.toThrow(
        /a strategy name must be a string/,
      );
    for (const [name, run] of calls) {
      const error = await run().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, name).toBeInstanceOf(TypeError);
      expect((error as Error).message).toContain(`"${name}" is not an option of`);
    }
    // Nothing was written or ended: one session, its refresh token still live.
    expect(await auth.listSessions(user.id)).toHaveLength(1);
    expect(await auth.checkRefreshToken(pair.refresh_token)).toBe(true);
    await expect(auth.createAccessToken(user, null as never)).rejects.toThrow(/must be an object/);
  });

  it('a bad argument fails the call before anything is written: no rotation, no session, none ended', async () => {
    const rejection = (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    const permissions: string[] = [];
    auth = testAuth({
      maxSessionsPerUser: 1,
      userFields: ['permissions'],
      refreshGracePeriod: 0,
      loadUser: (id) => ({ id, permissions }),
    });
    const user = { id: 'bad-args' };
    const pair = await auth.generateTokens(user);
    // Not a Koa context, or metadata that is no string: a TypeError naming it, and the refresh
    // token is not rotated (it was, before the error, and then refused as reused).
    for (const [options, name] of [
      [{ ctx: {} }, '`ctx`'],
      [{ ip: 5 }, '`ip`'],
      [{ userAgent: {} }, '`userAgent`'],
    ] as const) {
      const error = await rejection(auth.refreshTokens(pair.refresh_token, options as never));
      expect(error, name).toBeInstanceOf(TypeError);
      expect(error!.message).toContain(name);
      expect(await rejection(auth.generateTokens(user, options as never))).toBeInstanceOf(
        TypeError,
      );
      expect(await rejection(auth.createAccessToken(user, options as never))).toBeInstanceOf(
        TypeError,
      );
    }
    expect(await auth.checkRefreshToken(pair.refresh_token)).toBe(true);
    // The stateless strategy records nothing, yet checks the same.
    const stateless = await auth.generateTokens(user, { strategy: 'jwt' });
    for (const attempt of [
      auth.generateTokens(user, { strategy: 'jwt', ctx: {} } as never),
      auth.createAccessToken(user, { strategy: 'jwt', ip: 5 } as never),
      auth.createRefreshToken(user, { strategy: 'jwt', userAgent: {} } as never),
      auth.refreshTokens(stateless.refresh_token, { strategy: 'jwt', ctx: {} } as never),
    ])
      expect(await rejection(attempt)).toBeInstanceOf(TypeError);
    // Claims that cannot be signed record no session, so none pushes out the live one (cap 1).
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    for (const claims of [{ n: 1n }, circular]) {
      expect(await rejection(auth.createAccessToken(user, { claims }))).toBeInstanceOf(TypeError);
    }
    // A token longer than verification accepts (8 KiB) is not issued: nobody could use it,
    // refresh it or log out with it.
    permissions.push(...Array.from({ length: 400 }, (_, i) => `projects:${i}:write`));
    for (const attempt of [
      auth.generateTokens({ ...user, permissions }),
      auth.createAccessToken({ ...user, permissions }),
      auth.refreshTokens(pair.refresh_token),
    ]) {
      const error = await rejection(attempt);
      expect(error).toBeInstanceOf(TypeError);
      expect(error!.message).toMatch(/characters, more than the 8192 that verification accepts/);
    }
    const sessions = await auth.listSessions(user.id);
    expect(sessions.map((s) => s.sessionId)).toEqual([decodeSegment(pair.access_token, 1).sid]);
    expect(await auth.getData(pair.access_token)).toMatchObject({ sub: user.id });
    permissions.length = 0;
    expect((await auth.refreshTokens(pair.refresh_token)).refresh_token).toEqual(
      expect.any(String),
    );
  });

  it('the session strategy makes session tokens', async () => {
    auth = testAuth({ strategy: 'session' });
    const token = await auth.createAccessToken({ id: 9 });
    expect((await auth.getData(token)).sub).toBe('9');
  });
});

describe('getData(token)', () => {
  it('resolves with the data requireAuth sets, and rejects with requireAuth’s error code', async () => {
    auth = testAuth({ userFields: ['role'] });
    const app = new Koa();
    app.use(auth.requireAuth());
    app.use((ctx) => {
      ctx.body = ctx.state.user;
    });
    server = await serve(app);
    const pair = await auth.generateTokens({ id: 1, role: 'admin' });
    const viaMiddleware = (await call(server.url, '/', { token: pair.access_token })).body;
    expect(await getData(pair.access_token)).toEqual(viaMiddleware);
    expect(await auth.getData(pair.access_token)).toEqual(viaMiddleware);

    const expired = jwt.sign(
      { sub: '1', sid: 'x', token_use: 'access', exp: Math.floor(Date.now() / 1000) - 60 },
      SECRET,
      { header: { alg: 'HS256', typ: 'at+jwt' } },
    );
    const cases = [
      'not-a-token',
      `${pair.access_token}x`,
      pair.refresh_token,
      expired,
      pair.access_token,
    ];
    await auth.invalidateRefreshToken(pair.refresh_token);
    for (const token of cases) {
      const viaHttp = await call(server.url, '/', { token });
      expect(viaHttp.status).toBe(401);
      expect(await codeOf(auth.getData(token))).toBe(viaHttp.body.error);
    }
    expect(await codeOf(auth.getData(pair.access_token))).toBe('token_revoked');
  });

  it("resolves with the claims the README's comments list, on the redis and session strategies", async () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const names = (shape: string) =>
      [...shape.matchAll(/[{,]\s*(\w+)/g)].map(([, name]) => name).sort();
    const redisShape = /\/\/ data: (\{[^}]+\})/.exec(readme)?.[1];
    const sessionShape = /`ctx\.state\.user` is `(\{[^}]+\})`;\n\s+load the/.exec(readme)?.[1];
    auth = testAuth();
    const access = await auth.createAccessToken(
      { id: 5, username: 'test' },
      { lifetime: 300, claims: { admin: true } },
    );
    expect(Object.keys(await auth.getData(access)).sort()).toEqual(names(redisShape!));
    await auth.close();
    auth = testAuth({ strategy: 'session' });
    const { access_token } = await auth.generateTokens({ id: 5 });
    expect(Object.keys(await auth.getData(access_token)).sort()).toEqual(names(sessionShape!));
  });

  it('getData() and getData({ … }) are still the middleware; getData(undefined) is a missing token', async () => {
    auth = testAuth();
    expect(typeof getData()).toBe('function');
    expect(typeof auth.getData({ checkSession: false })).toBe('function');
    // A header that was not there: token_missing, never the middleware, a function that a
    // caller testing the answer would take for a user.
    for (const absent of [undefined, null] as (string | undefined)[]) {
      expect(await codeOf(getData(absent))).toBe('token_missing');
      expect(await codeOf(auth.getData(absent))).toBe('token_missing');
    }
    // A token with a second argument, or an object that is no options literal (from JSON, a
    // class): never the middleware.
    const odd = [
      [JSON.parse('{"strategy":"redis"}'), { strategy: 'redis' }],
      [new (class Token {})()],
      [[]],
    ] as unknown as [string][];
    for (const args of odd) {
      for (const call of [getData, auth.getData.bind(auth)] as ((...a: unknown[]) => unknown)[]) {
        const answer = call(...args);
        expect(typeof answer, String(args)).not.toBe('function');
        // A rejection (token_invalid): a token call, as it should be.
        expect(await codeOf(answer as Promise<unknown>), String(args)).toBe('token_invalid');
      }
    }
  });
});

describe('POST /auth/refresh with Authorization: Bearer <refresh_token>', () => {
  it('rotates like a body token; an access token in the header is refused', async () => {
    auth = testAuth();
    server = await serve(webApp(auth));
    const pair = await auth.generateTokens({ id: 1 });
    const res = await call(server.url, '/auth/refresh', {
      method: 'POST',
      headers: { authorization: `Bearer ${pair.refresh_token}` },
    });
    expect(res.status).toBe(200);
    expect(await auth.checkRefreshToken(res.body.refresh_token)).toBe(true);
    const wrong = await call(server.url, '/auth/refresh', {
      method: 'POST',
      headers: { authorization: `Bearer ${res.body.access_token}` },
    });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe('token_invalid');
    const none = await call(server.url, '/auth/refresh', { method: 'POST' });
    expect(none.status).toBe(401);
    expect(none.body.error).toBe('token_missing');
  });
});

describe("a strategy's writeToken(user, kind, options)", () => {
  it('takes a lifetime, an audience, extra headers and claims; its tokens pass requireAuth', async () => {
    auth = testAuth();
    server = await serve(webApp(auth));
    for (const name of ['redis', 'jwt']) {
      const token = await auth.strategies.get(name).writeToken({ id: 3 }, 'access', {
        lifetime: 60,
        audience: 'reports',
        headers: { 'x-env': 'test' },
        claims: { scope: 'read' },
      });
      const header = decodeSegment(token, 0) as Record<string, unknown>;
      const payload = decodeSegment(token, 1) as Record<string, number | string>;
      expect(header['x-env']).toBe('test');
      expect(payload.exp! as number).toBe((payload.iat as number) + 60);
      expect(payload).toMatchObject({ aud: 'reports', scope: 'read' });
      if (name === 'redis') {
        const me = await call(server.url, '/me', { token });
        expect(me.status).toBe(200);
      }
      const refresh = await auth.strategies
        .get(name)
        .writeToken({ id: 3 }, 'refresh', { lifetime: 120 });
      const claims = decodeSegment(refresh, 1) as { exp: number; iat: number };
      expect(claims.exp - claims.iat).toBe(120);
      expect(await auth.strategies.get(name).checkRefreshToken!(refresh)).toBe(true);
    }
  });

  it('a token for another audience than the instance requires is refused by requireAuth', async () => {
    auth = testAuth({ audience: 'api' });
    server = await serve(webApp(auth));
    const redis = auth.strategies.get('redis');
    const ok = await redis.writeToken({ id: 1 }, 'access', { audience: 'api' });
    const other = await redis.writeToken({ id: 1 }, 'access', { audience: 'reports' });
    expect((await call(server.url, '/me', { token: ok })).status).toBe(200);
    expect((await call(server.url, '/me', { token: other })).status).toBe(401);
  });

  it('refuses reserved claims and headers and a bad lifetime', async () => {
    auth = testAuth();
    const redis = auth.strategies.get('redis');
    for (const options of [
      { claims: { sub: 'other' } },
      { claims: { exp: 1 } },
      { headers: { alg: 'none' } },
      { headers: { kid: 'x' } },
      { headers: { jku: 'https://evil' } },
      { lifetime: 0 },
      { lifetime: 1.5 },
      { audience: '' },
    ]) {
      await expect(
        Promise.resolve().then(() => redis.writeToken({ id: 1 }, 'access', options)),
      ).rejects.toThrow(TypeError);
    }
  });
});
