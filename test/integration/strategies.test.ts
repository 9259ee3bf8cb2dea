import Router from '@koa/router';
import Koa from 'koa';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  type Auth,
  AuthError,
  type AuthOptions,
  type TokenStrategy,
  UnsupportedError,
} from '../../src/index.js';
import { testAuth } from '../helpers/auth.js';
import { decodeSegment, forgeHmac, SECRET } from '../helpers/forge.js';
import { call, serve, type Served } from '../helpers/http.js';

let auth: Auth;
let server: Served | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  await auth?.close();
});

/** A protected app whose /me uses the given middleware. */
async function protectedApp(middleware: Koa.Middleware): Promise<Served> {
  const app = new Koa();
  const router = new Router();
  router.get('/me', middleware, (ctx) => {
    ctx.body = { user: ctx.state.user ?? null, error: ctx.state.authError?.code ?? null };
  });
  app.use(router.routes());
  return serve(app);
}

describe('the strategy registry', () => {
  it('has redis (default), jwt and session built in; a taken name throws', () => {
    auth = testAuth();
    expect(auth.strategies.names()).toEqual(['redis', 'jwt', 'session']);
    expect(auth.strategies.defaultStrategyName).toBe('redis');
    expect(() =>
      auth.strategies.register('jwt', { readToken: () => ({}) as never, writeToken: () => '' }),
    ).toThrow(/already registered/);
    expect(() => auth.strategies.get('nope')).toThrow(/no strategy named "nope"/);
    expect(() => auth.strategies.register('bad', {} as TokenStrategy)).toThrow(/readToken/);
    expect(() => auth.strategies.setDefault('nope')).toThrow(/no strategy/);
    // A name that is no string is a TypeError saying so, not one about converting a symbol.
    for (const name of [Symbol('redis'), null, 5n]) {
      expect(() => auth.strategies.get(name as never)).toThrow(/a strategy name must be a string/);
      expect(() => auth.strategies.setDefault(name as never)).toThrow(/must be a string/);
      expect(() => auth.strategies.register(name as never, {} as TokenStrategy)).toThrow(
        /a strategy name must be 1-64 letters/,
      );
    }
  });

  it('runs a custom strategy through every middleware and the generateTokens fallback', async () => {
    auth = testAuth();
    // API keys: opaque tokens looked up in a table; a factory gets the instance context.
    const keys = new Map([['key-123', { sub: 'svc-1', scope: 'read' }]]);
    auth.strategies.register('apikey', (context) => {
      expect(context.options.keyPrefix).toMatch(/^t/);
      return {
        readToken(token) {
          const found = keys.get(token);
          if (!found) throw new AuthError('token_invalid', 'Unknown API key.');
          return { ...found, token_use: 'access', iat: 0, exp: 0 };
        },
        writeToken(user, kind) {
          const token = `key-${kind}-${user.id}`;
          keys.set(token, { sub: String(user.id), scope: 'read' });
          return token;
        },
      };
    });
    server = await protectedApp(auth.requireAuth({ strategy: 'apikey' }));
    expect((await call(server.url, '/me', { token: 'key-123' })).body.user).toMatchObject({
      sub: 'svc-1',
      scope: 'read',
    });
    expect((await call(server.url, '/me', { token: 'nope' })).status).toBe(401);
    const pair = await auth.generateTokens({ id: 5 }, { strategy: 'apikey' });
    expect(pair).toMatchObject({
      access_token: 'key-access-5',
      refresh_token: 'key-refresh-5',
      token_type: 'bearer',
    });
    expect((await call(server.url, '/me', { token: pair.access_token })).body.user.sub).toBe('5');
    await server.close();

    auth.strategies.setDefault('apikey');
    server = await protectedApp(auth.getData());
    expect((await call(server.url, '/me', { token: 'key-123' })).body.user.sub).toBe('svc-1');
    expect((await call(server.url, '/me', { token: 'bad' })).body).toEqual({
      user: null,
      error: 'token_invalid',
    });
    await expect(auth.listSessions(5)).rejects.toBeInstanceOf(UnsupportedError);
  });

  it("generateTokens composes a custom strategy's pair whole or not at all", async () => {
    auth = testAuth();
    // A minimal strategy with sessions of its own: each token written is a live entry.
    const live = new Set<string>();
    const written: string[] = [];
    let failing: 'access' | 'refresh' | undefined;
    let undoFails = false;
    let undoHangs = false;
    auth.strategies.register('minimal', {
      readToken: () => ({}) as never,
      writeToken(user, kind) {
        written.push(kind);
        if (kind === failing) throw new Error(`cannot write the ${kind} token`);
        const token = `${kind}-${user.id}-${written.length}`;
        live.add(token);
        return token;
      },
      async invalidateRefreshToken(token) {
        if (undoFails) throw new Error('the store is gone');
        if (undoHangs) return new Promise<void>(() => {});
        live.delete(token);
      },
    });
    const login = () => auth.generateTokens({ id: 1 }, { strategy: 'minimal' });
    expect(await login()).toMatchObject({
      access_token: 'access-1-2',
      refresh_token: 'refresh-1-1',
    });
    expect(written).toEqual(['refresh', 'access']);
    live.clear();
    written.length = 0;
    // The access token fails: the refresh token written before it is ended, and the error is the
    // access token's, even when ending the refresh token fails too.
    failing = 'access';
    await expect(login()).rejects.toThrow('cannot write the access token');
    expect(live.size).toBe(0);
    undoFails = true;
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }) => warnings.push(w.code ?? '');
    process.on('warning', onWarning);
    try {
      await expect(login()).rejects.toThrow('cannot write the access token');
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    // The session left behind is told.
    expect(warnings).toContain('KOA_JWT_REDIS_HALF_LOGIN');
    // An end that never settles is given up after storeTimeout: the login still answers.
    undoFails = false;
    undoHangs = true;
    warnings.length = 0;
    process.on('warning', onWarning);
    const started = Date.now();
    try {
      await expect(login()).rejects.toThrow('cannot write the access token');
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    expect(Date.now() - started).toBeLessThan(auth.options.storeTimeout + 500);
    expect(warnings).toContain('KOA_JWT_REDIS_HALF_LOGIN');
    undoHangs = false;
    // The refresh token fails: no access token is written at all.
    written.length = 0;
    failing = 'refresh';
    await expect(login()).rejects.toThrow('cannot write the refresh token');
    expect(written).toEqual(['refresh']);
  });

  it('jwt strategy: stateless tokens; logout only forgets; session helpers are unsupported', async () => {
    auth = testAuth();
    auth.strategies.setDefault('jwt');
    const pair = await auth.generateTokens({ id: 3 });
    expect(await auth.checkRefreshToken(pair.refresh_token)).toBe(true);
    const next = await auth.refreshTokens(pair.refresh_token);
    // No server record: the old refresh token still works until it expires (documented).
    expect(await auth.checkRefreshToken(pair.refresh_token)).toBe(true);
    await auth.invalidateRefreshToken(next.refresh_token);
    await expect(auth.invalidateRefreshToken('a.b.c')).rejects.toMatchObject({
      code: 'token_invalid',
    });
    await expect(auth.revokeAllSessions(3)).rejects.toMatchObject({ code: 'strategy_unsupported' });
    server = await protectedApp(auth.requireAuth());
    expect((await call(server.url, '/me', { token: next.access_token })).body.user.sub).toBe('3');
    expect((await call(server.url, '/me', { token: pair.refresh_token })).status).toBe(401);
  });

  it('a route that needs sessions answers 501, not 500, on the stateless strategy', async () => {
    auth = testAuth();
    auth.strategies.setDefault('jwt');
    const app = new Koa();
    app.use(async (ctx) => {
      ctx.body = await auth.listSessions('1');
    });
    server = await serve(app);
    const res = await call(server.url, '/');
    expect(res.status).toBe(501);
    expect(res.text).toMatch(/does not support listSessions/);
  });

  it('redis strategy refuses a stateless access token, with or without the session check', async () => {
    auth = testAuth();
    const stateless = await auth.strategies.get('jwt').writeToken({ id: 1 }, 'access');
    for (const checkSession of [true, false])
      await expect(
        (async () => auth.strategies.get('redis').readToken(stateless, { checkSession }))(),
      ).rejects.toMatchObject({ code: 'token_invalid' });
  });
});

describe('helpers', () => {
  it('copies userFields and extra claims, but never lets claims override library claims', async () => {
    auth = testAuth({ userFields: ['role'] });
    const pair = await auth.generateTokens(
      { id: 'u1', role: 'admin', password: 'never-copied' },
      { claims: { tenant: 't1' } },
    );
    const payload = await auth.strategies
      .get('redis')
      .readToken(pair.access_token, { checkSession: true });
    expect(payload).toMatchObject({ sub: 'u1', role: 'admin', tenant: 't1' });
    expect(payload).not.toHaveProperty('password');
    await expect(auth.generateTokens({ id: 'u1' }, { claims: { sub: 'admin' } })).rejects.toThrow(
      /"sub" is set by the library/,
    );
    // Claims survive a refresh.
    const next = await auth.refreshTokens(pair.refresh_token);
    expect(
      await auth.strategies.get('redis').readToken(next.access_token, { checkSession: true }),
    ).toMatchObject({ role: 'admin', tenant: 't1' });
  });

  it('reloads the user on refresh with loadUser, ending the session when it returns null', async () => {
    let role: string | null = 'member';
    auth = testAuth({ userFields: ['role'], loadUser: (id) => (role ? { id, role } : null) });
    const pair = await auth.generateTokens({ id: 9, role: 'member' });
    // loadUser is asked on refresh, so the refresh token carries no copy of the claims (`usr`),
    // with either signing strategy.
    const stateless = await auth.generateTokens({ id: 9, role: 'member' }, { strategy: 'jwt' });
    for (const token of [pair.refresh_token, stateless.refresh_token])
      expect(decodeSegment(token, 1)).not.toHaveProperty('usr');
    role = 'admin';
    const next = await auth.refreshTokens(pair.refresh_token);
    expect(
      await auth.strategies.get('redis').readToken(next.access_token, { checkSession: false }),
    ).toMatchObject({ role: 'admin' });
    expect(decodeSegment(next.refresh_token, 1)).not.toHaveProperty('usr');
    const rotated = await auth.refreshTokens(stateless.refresh_token, { strategy: 'jwt' });
    expect(
      await auth.strategies.get('jwt').readToken(rotated.access_token, { checkSession: false }),
    ).toMatchObject({ role: 'admin' });
    role = null;
    await expect(auth.refreshTokens(next.refresh_token)).rejects.toMatchObject({
      code: 'token_revoked',
    });
    expect(await auth.listSessions(9)).toEqual([]);
  });

  /**
   * `auth`, of the session strategy, with a loadUser that answers `answer()` and records whom it
   * was asked about (the returned list).
   */
  function askingSessionAuth(answer: () => unknown, options: Partial<AuthOptions> = {}): string[] {
    const asked: string[] = [];
    auth = testAuth({
      strategy: 'session',
      ...options,
      loadUser: (id) => {
        asked.push(id);
        return answer() as never;
      },
    });
    return asked;
  }

  /** A request's read of a session token, as requireAuth() makes it. */
  const sessionRead = (token: string) =>
    auth.strategies.get('session').readToken(token, { checkSession: true });

  it('the session strategy asks loadUser on refresh too: null ends the session, a bad answer changes nothing', async () => {
    let answer: unknown = { id: 11 };
    const asked = askingSessionAuth(() => answer);
    const mine = await auth.generateTokens({ id: 11 });
    const other = await auth.generateTokens({ id: 11 });
    expect((await auth.refreshTokens(mine.refresh_token)).access_token).toBe(mine.access_token);
    expect(asked).toEqual(['11']);
    // Asked only for a token that proves its session: a forged secret is refused first.
    const [user, sid] = mine.refresh_token.split('.');
    const forged = `${user}.${sid}.${'A'.repeat(43)}`;
    await expect(auth.refreshTokens(forged)).rejects.toMatchObject({ code: 'token_revoked' });
    expect(asked).toHaveLength(1);
    answer = 5;
    await expect(auth.refreshTokens(mine.refresh_token)).rejects.toThrow(
      /loadUser must return a user object, or null/,
    );
    expect(await auth.checkRefreshToken(mine.refresh_token)).toBe(true);
    // A deleted or disabled user: that session ends, and its token no longer authenticates.
    answer = null;
    await expect(auth.refreshTokens(mine.refresh_token)).rejects.toMatchObject({
      code: 'token_revoked',
    });
    expect(await auth.checkRefreshToken(mine.refresh_token)).toBe(false);
    await expect(sessionRead(mine.access_token)).rejects.toMatchObject({
      code: 'token_revoked',
    });
    // Its other session ends at its own next refresh, as with the redis strategy.
    expect(await auth.checkRefreshToken(other.refresh_token)).toBe(true);
    await expect(auth.refreshTokens(other.refresh_token)).rejects.toMatchObject({
      code: 'token_revoked',
    });
    expect(await auth.listSessions(11)).toEqual([]);
  });

  it('the session strategy asks loadUser when a request slides its session: null ends it within a touch interval', async () => {
    let answer: unknown = { id: 12 };
    const asked = askingSessionAuth(() => answer);
    const { access_token: token } = await auth.generateTokens({ id: 12 });
    const read = () => sessionRead(token);
    const ends = async () => (await auth.listSessions(12))[0]?.expiresAt.getTime();
    const first = await ends();
    // Within the touch interval (a minute at the default idle lifetime): no slide, no question.
    await read();
    expect(asked).toEqual([]);
    const real = Date.now();
    const clock = vi.spyOn(Date, 'now');
    try {
      // A minute on, a request slides the session, once loadUser has answered with a user.
      clock.mockReturnValue(real + 61_000);
      expect((await read()).sub).toBe('12');
      await vi.waitFor(async () => expect(await ends()).toBeGreaterThan(first!));
      expect(asked).toEqual(['12']);
      // A minute later the user is gone: that request still passes, its slide ends the session.
      answer = null;
      clock.mockReturnValue(real + 122_000);
      expect((await read()).sub).toBe('12');
      await vi.waitFor(async () => expect(await auth.checkRefreshToken(token)).toBe(false));
      await expect(read()).rejects.toMatchObject({ code: 'token_revoked' });
      expect(asked).toEqual(['12', '12']);
    } finally {
      clock.mockRestore();
    }
  });

  it('the session strategy asks loadUser at the absolute cap too, and once per interval however many requests come or however it fails', async () => {
    let answer: () => unknown = () => ({ id: 13 });
    // The idle lifetime is the absolute one: no request's slide ever moves the expiry.
    const asked = askingSessionAuth(() => answer(), {
      sessionIdleTtl: 3600,
      absoluteSessionTtl: 3600,
    });
    const { access_token: token } = await auth.generateTokens({ id: 13 });
    const read = () => sessionRead(token);
    const real = Date.now();
    const clock = vi.spyOn(Date, 'now');
    try {
      // A failing loadUser, five requests of one interval: asked once, the session kept.
      answer = () => {
        throw new Error('users database down');
      };
      clock.mockReturnValue(real + 61_000);
      await Promise.all(Array.from({ length: 5 }, read));
      await vi.waitFor(() => expect(asked).toHaveLength(1));
      clock.mockReturnValue(real + 62_000);
      await read();
      // The next interval, the user is gone: asked again, and the session ends.
      answer = () => null;
      clock.mockReturnValue(real + 122_000);
      await read();
      await vi.waitFor(async () => expect(await auth.checkRefreshToken(token)).toBe(false));
      expect(asked).toHaveLength(2);
      await expect(read()).rejects.toMatchObject({ code: 'token_revoked' });
    } finally {
      clock.mockRestore();
    }
  });

  it("a refresh token's own lifetime is its session's idle timeout through every rotation", async () => {
    auth = testAuth({ accessTokenTtl: 900 });
    const life = (token: string) => {
      const { iat, exp } = decodeSegment(token, 1) as { iat: number; exp: number };
      return exp - iat;
    };
    for (const strategy of ['redis', 'jwt'] as const) {
      let refresh = await auth.createRefreshToken({ id: 'short' }, { strategy, lifetime: 60 });
      expect(decodeSegment(refresh, 1)).toMatchObject({ idl: 60 });
      expect(life(refresh)).toBe(60);
      for (let i = 0; i < 2; i++) {
        const pair = await auth.refreshTokens(refresh, { strategy });
        refresh = pair.refresh_token;
        // Not refreshTokenTtl's 30 days: the session stays as short as it was made, and the access
        // token no longer than it.
        expect(life(refresh), strategy).toBe(60);
        expect(decodeSegment(refresh, 1)).toMatchObject({ idl: 60 });
        expect(life(pair.access_token)).toBeLessThanOrEqual(60);
        expect(pair.expires_in).toBeLessThanOrEqual(60);
      }
    }
    const [session] = await auth.listSessions('short');
    expect(session!.expiresAt.getTime() - Date.now()).toBeLessThanOrEqual(60_000);
    // A login's tokens carry no idle timeout of their own: refreshTokenTtl, as configured now.
    const login = await auth.generateTokens({ id: 'long' });
    expect(decodeSegment(login.refresh_token, 1)).not.toHaveProperty('idl');
    expect(life((await auth.refreshTokens(login.refresh_token)).refresh_token)).toBe(2_592_000);
    // The claim is the library's: an app may not set it, and one that is no lifetime is refused.
    await expect(
      auth.createAccessToken({ id: 'x' }, { claims: { idl: 5 } }),
    ).rejects.toBeInstanceOf(TypeError);
    const header = decodeSegment(login.refresh_token, 0);
    const payload = decodeSegment(login.refresh_token, 1);
    for (const idl of [0, -1, 1.5, '60', 31_536_001, null]) {
      const forged = forgeHmac(header, { ...payload, idl }, SECRET);
      await expect(auth.refreshTokens(forged), String(idl)).rejects.toMatchObject({
        code: 'token_invalid',
      });
    }
  });

  it('a concurrent refresh within the grace period gets tokens that end with the session, not later', async () => {
    auth = testAuth({ accessTokenTtl: 300, refreshTokenTtl: 600 });
    const login = await auth.generateTokens({ id: 'tabs' });
    const first = await auth.refreshTokens(login.refresh_token);
    // The second tab's refresh of the same token arrives 3 s later, within the 10 s grace period.
    const later = Date.now() + 3000;
    const clock = vi.spyOn(Date, 'now').mockReturnValue(later);
    let second;
    try {
      second = await auth.refreshTokens(login.refresh_token);
    } finally {
      clock.mockRestore();
    }
    const exp = (token: string) => decodeSegment(token, 1).exp as number;
    const [session] = await auth.listSessions('tabs');
    const ends = session!.expiresAt.getTime() / 1000;
    expect(exp(first.refresh_token)).toBe(ends);
    // Signed from the later now, it ended about 3 s after the session before.
    expect(exp(second.refresh_token)).toBe(ends);
    expect(exp(second.access_token)).toBeLessThanOrEqual(ends);
    expect(decodeSegment(second.refresh_token, 1).jti).toBe(
      decodeSegment(first.refresh_token, 1).jti,
    );
    expect(second.expires_in).toBeLessThanOrEqual(ends - Math.floor(later / 1000));
  });

  it('refuses a loadUser answer that is no user object with a TypeError, rotating nothing', async () => {
    let answer: unknown = 5;
    auth = testAuth({ loadUser: () => answer as never });
    const pair = await auth.generateTokens({ id: 10 });
    for (const bad of [5, 'user', [{ id: 10 }]]) {
      answer = bad;
      await expect(auth.refreshTokens(pair.refresh_token)).rejects.toThrow(
        /loadUser must return a user object, or null/,
      );
    }
    expect(await auth.checkRefreshToken(pair.refresh_token)).toBe(true);
    answer = { id: 10 };
    expect((await auth.refreshTokens(pair.refresh_token)).access_token).toEqual(expect.any(String));
  });

  it('rejects bad users with a clear TypeError', async () => {
    auth = testAuth();
    for (const user of [null, {}, { id: '' }, { id: 1.5 }, { id: {} }, { id: 'x'.repeat(300) }]) {
      await expect(auth.generateTokens(user as never)).rejects.toBeInstanceOf(TypeError);
    }
  });

  it('checkRefreshToken is false for any bad token and true for a live one', async () => {
    auth = testAuth();
    const pair = await auth.generateTokens({ id: 2 });
    for (const bad of [
      '',
      'a.b.c',
      pair.access_token,
      `${pair.refresh_token}x`,
      42 as never,
      null as never,
    ]) {
      expect(await auth.checkRefreshToken(bad)).toBe(false);
    }
    expect(await auth.checkRefreshToken(pair.refresh_token)).toBe(true);
  });

  it('emits audit events, and a throwing listener never breaks the request', async () => {
    auth = testAuth({ refreshGracePeriod: 0 });
    const seen: string[] = [];
    auth.on('login', () => {
      throw new Error('listener bug');
    });
    for (const event of ['login', 'refresh', 'logout', 'revoke_all', 'refresh_reused'] as const)
      auth.on(event, () => seen.push(event));
    const warning = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    try {
      const pair = await auth.generateTokens({ id: 4 });
      const next = await auth.refreshTokens(pair.refresh_token);
      await expect(auth.refreshTokens(pair.refresh_token)).rejects.toMatchObject({
        code: 'refresh_reused',
      });
      const other = await auth.generateTokens({ id: 4 });
      await auth.invalidateRefreshToken(other.refresh_token);
      await auth.revokeAllSessions(4);
      expect(next.token_type).toBe('bearer');
      expect(seen).toEqual(['login', 'refresh', 'refresh_reused', 'login', 'logout', 'revoke_all']);
      expect(warning).toHaveBeenCalled();
    } finally {
      warning.mockRestore();
    }
  });
});

describe('the default instance', () => {
  it('free functions throw a clear error before any createAuth (the helpers reject)', async () => {
    vi.resetModules();
    const fresh = await import('../../src/index.js');
    expect(() => fresh.requireAuth()).toThrow(/call createAuth/);
    expect(() => fresh.getData()).toThrow(/call createAuth/);
    expect(() => fresh.strategies.names()).toThrow(/call createAuth/);
    // A helper that answers with a promise rejects: `generateTokens(user).catch(…)` catches it.
    const calls: (() => Promise<unknown>)[] = [
      () => fresh.generateTokens({ id: 1 }),
      () => fresh.checkRefreshToken('t'),
      () => fresh.refreshTokens('t'),
      () => fresh.invalidateRefreshToken('t'),
      () => fresh.revokeAllSessions(1),
      () => fresh.listSessions(1),
      () => fresh.revokeSession(1, 's'),
      () => fresh.createAccessToken({ id: 1 }),
      () => fresh.createRefreshToken({ id: 1 }),
      () => fresh.getData('t'),
    ];
    for (const call of calls) {
      let promise: Promise<unknown> | undefined;
      expect(() => (promise = call())).not.toThrow();
      await expect(promise).rejects.toThrow(/call createAuth/);
    }
  });

  it('free functions use the instance createAuth made last', async () => {
    vi.resetModules();
    const fresh = await import('../../src/index.js');
    const first = fresh.createAuth({ secret: SECRET });
    const second = fresh.createAuth({ secret: 'another-secret-of-at-least-32-bytes!' });
    const pair = await fresh.generateTokens({ id: 1 });
    expect(await second.checkRefreshToken(pair.refresh_token)).toBe(true);
    expect(await first.checkRefreshToken(pair.refresh_token)).toBe(false);
    expect(fresh.strategies.names()).toEqual(['redis', 'jwt', 'session']);
    const app = new Koa();
    app.use(fresh.requireAuth());
    app.use((ctx) => {
      ctx.body = ctx.state.user.sub;
    });
    server = await serve(app);
    expect((await call(server.url, '/', { token: pair.access_token })).text).toBe('1');
    const none = await call(server.url, '/');
    expect(none.status).toBe(401);
    expect(none.body.error).toBe('token_missing');
    await first.close();
    await second.close();
  });
});
