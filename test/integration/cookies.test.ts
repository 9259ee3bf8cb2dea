import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import type { Auth } from '../../src/index.js';
import { testAuth } from '../helpers/auth.js';
import { decodeSegment } from '../helpers/forge.js';
import { call, type Reply, serve, type Served } from '../helpers/http.js';
import { Jar, setCookies, webApp } from '../helpers/web.js';

/** Cookie delivery and CSRF protection (SECURITY.md, HTTP section), over HTTP against real Redis. */

const ACCESS = '__Host-access_token';
const REFRESH = '__Secure-refresh_token';
const CSRF = '__Host-csrf_token';

let auth: Auth;
let server: Served;
let jar: Jar;

async function start(
  authOptions: Parameters<typeof testAuth>[0] = {},
  routeOptions: Parameters<typeof webApp>[1] = {},
): Promise<void> {
  auth = testAuth({ tokenDelivery: 'cookie', ...authOptions });
  server = await serve(webApp(auth, routeOptions));
  jar = new Jar();
}

afterEach(async () => {
  await server?.close();
  await auth?.close();
});

/** A request as the browser would send it: the jar's cookies, and the page's own Origin. */
async function browser(
  path: string,
  options: Parameters<typeof call>[2] & { csrf?: boolean } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { origin: server.url, ...options.headers };
  const cookie = jar.header();
  if (cookie) headers.cookie = cookie;
  if (options.csrf) headers['x-csrf-token'] = jar.values.get(CSRF) ?? '1';
  const res = await call(server.url, path, { ...options, headers });
  jar.take(res.headers);
  return res;
}

const login = () =>
  browser('/auth/login', { body: { username: 'alice', password: 'wonderland' }, csrf: true });

describe('cookie delivery', () => {
  it('sets HttpOnly, Secure, SameSite=Lax cookies without Domain, the refresh cookie scoped to the refresh route', async () => {
    await start();
    const res = await login();
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body).toEqual({ token_type: 'cookie', expires_in: 900 });
    const cookies = setCookies(res.headers);
    expect([...cookies.keys()].sort()).toEqual([ACCESS, CSRF, REFRESH].sort());
    const access = cookies.get(ACCESS)!;
    expect(access.attributes).toEqual([
      'Path=/',
      'Max-Age=900',
      'HttpOnly',
      'Secure',
      'SameSite=Lax',
    ]);
    const refresh = cookies.get(REFRESH)!;
    expect(refresh.attributes).toEqual([
      'Path=/auth/refresh',
      'Max-Age=2592000',
      'HttpOnly',
      'Secure',
      'SameSite=Lax',
    ]);
    // The CSRF cookie is the one the page's script must read.
    expect(cookies.get(CSRF)!.attributes).toEqual([
      'Path=/',
      'Max-Age=2592000',
      'Secure',
      'SameSite=Lax',
    ]);
    for (const { raw } of cookies.values()) expect(raw.toLowerCase()).not.toContain('domain=');
  });

  it('gives each cookie a Max-Age no longer than its token', async () => {
    await start({ accessTokenTtl: 60, refreshTokenTtl: 3600 });
    const cookies = setCookies((await login()).headers);
    for (const name of [ACCESS, REFRESH]) {
      const { value, attributes } = cookies.get(name)!;
      const payload = decodeSegment(value, 1) as { iat: number; exp: number };
      const maxAge = Number(attributes.find((a) => a.startsWith('Max-Age='))!.slice(8));
      expect(maxAge).toBeLessThanOrEqual(payload.exp - payload.iat);
      expect(maxAge).toBe(name === ACCESS ? 60 : 3600);
    }
  });

  it('scopes the refresh cookie to a custom prefix, and drops prefixes and Secure only when told', async () => {
    await start(
      {
        cookies: {
          secure: false,
          sameSite: 'strict',
          names: { access: 'at', refresh: 'rt', csrf: 'xsrf' },
        },
      },
      { prefix: '/api/auth' },
    );
    const res = await browser('/api/auth/login', {
      body: { username: 'alice', password: 'wonderland' },
      headers: { 'x-csrf-token': '1' },
    });
    const cookies = setCookies(res.headers);
    expect(cookies.get('at')!.attributes).toEqual([
      'Path=/',
      'Max-Age=900',
      'HttpOnly',
      'SameSite=Strict',
    ]);
    expect(cookies.get('rt')!.attributes).toContain('Path=/api/auth/refresh');
    expect(cookies.has('xsrf')).toBe(true);
  });

  it("'both' puts the pair in the body and in cookies", async () => {
    await start({ tokenDelivery: 'both' });
    const res = await login();
    expect(res.body).toMatchObject({ token_type: 'bearer', expires_in: 900 });
    expect(setCookies(res.headers).get(ACCESS)!.value).toBe(res.body.access_token);
  });

  it('keeps the user logged in across requests with the cookie alone', async () => {
    await start();
    await login();
    const me = await browser('/me');
    expect(me.status).toBe(200);
    expect(me.body.sub).toBe('1');
  });
});

describe('where the access token is read from', () => {
  it('reads the Authorization header first, then the cookie', async () => {
    await start();
    await login();
    // A bad bearer header wins over a good cookie: the header is looked at first.
    const res = await browser('/me', { headers: { authorization: 'Bearer not.a.token' } });
    expect([res.status, res.body.error]).toEqual([401, 'token_invalid']);
  });

  it('follows a configured order: the cookie first', async () => {
    await start({ tokenSources: ['cookie', 'header'] });
    await login();
    expect(
      (await browser('/me', { headers: { authorization: 'Bearer not.a.token' } })).status,
    ).toBe(200);
  });

  it('never reads the query string', async () => {
    await start();
    await login();
    const token = jar.values.get(ACCESS)!;
    jar.values.clear();
    for (const name of ['access_token', 'token', ACCESS]) {
      const res = await browser(`/me?${name}=${token}`);
      expect([res.status, res.body.error]).toEqual([401, 'token_missing']);
    }
  });

  it('ignores cookies entirely in json delivery', async () => {
    await start({ tokenDelivery: 'json' });
    const pair = (
      await call(server.url, '/auth/login', { body: { username: 'alice', password: 'wonderland' } })
    ).body;
    const res = await call(server.url, '/me', {
      headers: { cookie: `${ACCESS}=${pair.access_token}; access_token=${pair.access_token}` },
    });
    expect([res.status, res.body.error]).toEqual([401, 'token_missing']);
  });
});

describe('CSRF protection for cookie-authenticated requests', () => {
  it('refuses an unsafe app route without the header, or with one that does not match the cookie', async () => {
    await start();
    await login();
    const none = await browser('/notes', { method: 'POST' });
    expect([none.status, none.body.error]).toEqual([403, 'csrf_failed']);
    expect(none.body.message).toMatch(/the value of the __Host-csrf_token cookie/);
    // Before login there is no cookie to copy: the message says any value will do.
    const anonymous = await call(server.url, '/auth/login', {
      body: { username: 'alice', password: 'wonderland' },
    });
    expect([anonymous.status, anonymous.body.error]).toEqual([403, 'csrf_failed']);
    expect(anonymous.body.message).toMatch(/any value before login/);
    const wrong = await browser('/notes', { method: 'POST', headers: { 'x-csrf-token': 'guess' } });
    expect([wrong.status, wrong.body.error]).toEqual([403, 'csrf_failed']);
    expect((await browser('/notes', { method: 'POST', csrf: true })).status).toBe(200);
    // Safe methods need no proof.
    expect((await browser('/me')).status).toBe(200);
  });

  it('refuses a foreign Origin, a foreign Referer and Origin: null with 403 origin_forbidden even with the right header', async () => {
    await start();
    await login();
    const cases: Record<string, string>[] = [
      { origin: 'http://evil.test' },
      { origin: 'null' },
      { origin: '', referer: 'http://evil.test/page' },
    ];
    for (const headers of cases) {
      const res = await browser('/notes', { method: 'POST', csrf: true, headers });
      expect([res.status, res.body.error]).toEqual([403, 'origin_forbidden']);
    }
    // Neither header (no browser sends that cross-site): left to the proof, which it still needs.
    // (An empty Origin, as sent here, reads as none: ctx.get gives '' for both.)
    const bare = { origin: '' };
    const unproven = await browser('/notes', { method: 'POST', headers: bare });
    expect([unproven.status, unproven.body.error]).toEqual([403, 'csrf_failed']);
    expect((await browser('/notes', { method: 'POST', csrf: true, headers: bare })).status).toBe(
      200,
    );
    // Same host, other port: same site, but another origin.
    const sibling = server.url.replace(/:\d+$/, ':1');
    expect(
      (await browser('/notes', { method: 'POST', csrf: true, headers: { origin: sibling } }))
        .status,
    ).toBe(403);
  });

  it('uses a configured CSRF header name', async () => {
    await start({ csrf: { header: 'X-XSRF-Token' } });
    expect((await login()).status).toBe(403);
    await browser('/auth/login', {
      body: { username: 'alice', password: 'wonderland' },
      headers: { 'x-xsrf-token': '1' },
    });
    const csrf = jar.values.get(CSRF)!;
    expect((await browser('/notes', { method: 'POST', csrf: true })).status).toBe(403);
    expect(
      (await browser('/notes', { method: 'POST', headers: { 'x-xsrf-token': csrf } })).status,
    ).toBe(200);
  });

  it('accepts an origin from csrf.allowedOrigins', async () => {
    await start({ csrf: { allowedOrigins: ['https://app.example.com'] } });
    await login();
    const res = await browser('/notes', {
      method: 'POST',
      csrf: true,
      headers: { origin: 'https://app.example.com' },
    });
    expect(res.status).toBe(200);
  });

  it('exempts bearer-header requests (not an ambient credential)', async () => {
    await start({ tokenDelivery: 'both' });
    const { access_token } = (await login()).body;
    const res = await call(server.url, '/notes', {
      method: 'POST',
      token: access_token,
      headers: { origin: 'http://evil.test' },
    });
    expect(res.status).toBe(200);
    // The auth routes set or clear the session cookies: their Origin is checked all the same.
    expect(
      (
        await call(server.url, '/auth/logout-all', {
          method: 'POST',
          token: access_token,
          headers: { origin: 'http://evil.test' },
        })
      ).status,
    ).toBe(403);
    expect(
      (await call(server.url, '/auth/logout-all', { method: 'POST', token: access_token })).status,
    ).toBe(200);
  });

  it('does not let a bearer header excuse a cookie credential', async () => {
    await start();
    await login();
    const headers = { authorization: 'Bearer junk', origin: 'http://evil.test' };
    const refresh = await browser('/auth/refresh', { method: 'POST', headers });
    expect([refresh.status, refresh.body.error]).toEqual([403, 'origin_forbidden']);
    // A logout is authenticated by its bearer header, read first: a junk one is a 401 that
    // neither uses nor clears the cookies.
    const logout = await browser('/auth/logout', {
      method: 'POST',
      headers: { authorization: 'Bearer junk' },
    });
    expect([logout.status, logout.body.error]).toEqual([401, 'token_invalid']);
    expect(setCookies(logout.headers).size).toBe(0);
    expect(await auth.listSessions(1)).toHaveLength(1);
    // Without it, the cookies are the credential, and need the proof.
    const unproven = await browser('/auth/logout', { method: 'POST' });
    expect([unproven.status, unproven.body.error]).toEqual([403, 'csrf_failed']);
    expect(await auth.listSessions(1)).toHaveLength(1);
  });

  it('checks the Origin of every request to the routes, a bearer header or not: they set or clear the session cookies', async () => {
    await start({ tokenDelivery: 'both' });
    const credentials = { username: 'alice', password: 'wonderland' };
    const { refresh_token } = (await login()).body;
    const foreign = { authorization: 'Bearer junk', origin: 'http://evil.test' };
    const refused = [
      await call(server.url, '/auth/login', { body: credentials, headers: foreign }),
      await call(server.url, '/auth/refresh', { body: { refresh_token }, headers: foreign }),
      await call(server.url, '/auth/logout', { body: { refresh_token }, headers: foreign }),
    ];
    for (const res of refused) {
      expect([res.status, res.body.error]).toEqual([403, 'origin_forbidden']);
      expect(res.headers.getSetCookie()).toEqual([]);
    }
    expect(await auth.listSessions(1)).toHaveLength(1);
    // Still its proof from a native client (no Origin) or the page itself, as README says.
    const native = await call(server.url, '/auth/login', {
      body: credentials,
      headers: { authorization: 'Bearer any' },
    });
    expect(native.status).toBe(200);
    const own = await call(server.url, '/auth/refresh', {
      body: { refresh_token },
      headers: { authorization: 'Bearer any', origin: server.url },
    });
    expect(own.status).toBe(200);
    // A refresh token in the header authenticates the request, yet its answer sets the session
    // cookies: from a foreign Origin (a page that CORS lets send the header) it would put that
    // page's session in the browser. Refused; from no Origin (a native client) it works. The same
    // for a logout by header, which would clear the user's cookies.
    const token = (own.body as { refresh_token: string }).refresh_token;
    const access = (own.body as { access_token: string }).access_token;
    for (const [path, bearer] of [
      ['/auth/refresh', token],
      ['/auth/logout', access],
      ['/auth/logout-all', access],
    ] as const) {
      const byHeader = await call(server.url, path, {
        method: 'POST',
        token: bearer,
        headers: { origin: 'http://evil.test' },
      });
      expect([byHeader.status, byHeader.body.error], path).toEqual([403, 'origin_forbidden']);
      expect(byHeader.headers.getSetCookie()).toEqual([]);
    }
    expect(await auth.checkRefreshToken(token)).toBe(true);
    const nativeRefresh = await call(server.url, '/auth/refresh', { method: 'POST', token });
    expect(nativeRefresh.status).toBe(200);
  });

  it('takes a malformed Bearer header for no bearer header: the Origin check holds, and neither a route nor getToken() passes it over for the cookie', async () => {
    await start();
    await login();
    const malformed = 'Bearer\tjunk';
    const refresh = await browser('/auth/refresh', {
      method: 'POST',
      headers: { authorization: malformed, origin: 'http://evil.test' },
    });
    expect([refresh.status, refresh.body.error]).toEqual([403, 'origin_forbidden']);
    // Nor does it stand in for the CSRF proof a login without a bearer header needs.
    const unproven = await browser('/auth/login', {
      body: { username: 'alice', password: 'wonderland' },
      headers: { authorization: malformed },
    });
    expect([unproven.status, unproven.body.error]).toEqual([403, 'csrf_failed']);
    const me = await browser('/me', { headers: { authorization: malformed } });
    expect([me.status, me.body.error]).toEqual([401, 'token_invalid']);
    // getToken() never fails: it finds no token, as requireAuth() finds a bad one, not the cookie's.
    const app = new Koa();
    app.use(auth.getToken());
    app.use((ctx) => {
      ctx.body = { token: ctx.state.token ?? null };
    });
    const plain = await serve(app);
    try {
      const read = (headers: Record<string, string>) =>
        call(plain.url, '/', { headers: { cookie: jar.header(), ...headers } });
      expect((await read({})).body.token).toBe(jar.values.get(ACCESS));
      expect((await read({ authorization: malformed })).body.token).toBeNull();
    } finally {
      await plain.close();
    }
    expect(await auth.listSessions(1)).toHaveLength(1);
  });

  it('leaves app routes outside the auth router alone', async () => {
    await start();
    const res = await browser('/auth/somewhere-else', {
      method: 'POST',
      headers: { origin: 'http://evil.test' },
    });
    expect(res.status).toBe(404);
  });

  it('is configurable for requireAuth: per middleware and per instance', async () => {
    await start();
    await login();
    expect((await browser('/notes-unchecked', { method: 'POST' })).status).toBe(200);
    await server.close();
    await auth.close();
    await start({ csrf: { requireAuth: false } });
    await login();
    expect((await browser('/notes', { method: 'POST' })).status).toBe(200);
  });

  it('makes getData treat an unproven cookie request as anonymous', async () => {
    await start();
    await login();
    expect((await browser('/whoami', { method: 'POST' })).body).toEqual({
      user: null,
      error: 'csrf_failed',
    });
    expect((await browser('/whoami', { method: 'POST', csrf: true })).body).toEqual({
      user: '1',
      error: null,
    });
  });
  it('makes authorize() after getData() refuse an unproven cookie request as csrf_failed, not as a logout', async () => {
    await start();
    await login();
    const none = await browser('/authorized-note', { method: 'POST' });
    expect([none.status, none.body.error]).toEqual([403, 'csrf_failed']);
    expect(none.headers.get('www-authenticate')).toBeNull();
    expect((await browser('/authorized-note', { method: 'POST', csrf: true })).status).toBe(200);
  });
});

describe('CSRF protection of the auth routes', () => {
  it('login needs the custom header and an own Origin', async () => {
    await start();
    const body = { username: 'alice', password: 'wonderland' };
    const bare = await browser('/auth/login', { body });
    expect([bare.status, bare.body.error]).toEqual([403, 'csrf_failed']);
    expect(bare.headers.getSetCookie()).toEqual([]);
    const foreign = await browser('/auth/login', {
      body,
      headers: { origin: 'http://evil.test', 'x-csrf-token': '1' },
    });
    expect([foreign.status, foreign.body.error]).toEqual([403, 'origin_forbidden']);
    expect(await auth.listSessions(1)).toEqual([]);
  });

  it('refresh from the cookie needs the double-submit token; it rotates the cookies and keeps the CSRF token', async () => {
    await start();
    await login();
    const csrf = jar.values.get(CSRF);
    const oldRefresh = jar.values.get(REFRESH);
    const bare = await browser('/auth/refresh', { method: 'POST' });
    expect([bare.status, bare.body.error]).toEqual([403, 'csrf_failed']);
    const foreign = await browser('/auth/refresh', {
      method: 'POST',
      csrf: true,
      headers: { origin: 'http://evil.test' },
    });
    expect([foreign.status, foreign.body.error]).toEqual([403, 'origin_forbidden']);
    const ok = await browser('/auth/refresh', { method: 'POST', csrf: true });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('cache-control')).toBe('no-store');
    expect(jar.values.get(REFRESH)).not.toBe(oldRefresh);
    expect(jar.values.get(CSRF)).toBe(csrf);
    expect((await browser('/me')).status).toBe(200);
  });

  it('refresh with a dead refresh cookie answers 401 and clears the cookies', async () => {
    await start();
    await login();
    await auth.revokeAllSessions(1);
    const res = await browser('/auth/refresh', { method: 'POST', csrf: true });
    expect([res.status, res.body.error]).toEqual([401, 'token_revoked']);
    expect([...jar.values.keys()]).toEqual([]);
  });

  it("in 'both' delivery a refresh token in the body needs the header present (no cookie to match yet)", async () => {
    await start({ tokenDelivery: 'both' });
    const { refresh_token } = (await login()).body;
    const bare = await call(server.url, '/auth/refresh', { body: { refresh_token } });
    expect([bare.status, bare.body.error]).toEqual([403, 'csrf_failed']);
    const ok = await call(server.url, '/auth/refresh', {
      body: { refresh_token },
      headers: { 'x-csrf-token': '1' },
    });
    expect(ok.status).toBe(200);
    expect(ok.body.token_type).toBe('bearer');
  });

  it('refresh with no cookie at all is 401 token_missing', async () => {
    await start();
    const res = await browser('/auth/refresh', {
      method: 'POST',
      headers: { 'x-csrf-token': '1' },
    });
    expect([res.status, res.body.error]).toEqual([401, 'token_missing']);
  });

  it('logout by cookie needs proof; with it the session ends and the cookies are cleared', async () => {
    await start();
    await login();
    const bare = await browser('/auth/logout', { method: 'POST' });
    expect([bare.status, bare.body.error]).toEqual([403, 'csrf_failed']);
    const foreign = await browser('/auth/logout', {
      method: 'POST',
      headers: { origin: 'http://evil.test' },
    });
    expect([foreign.status, foreign.body.error]).toEqual([403, 'origin_forbidden']);
    expect((await browser('/me')).status).toBe(200);

    const access = jar.values.get(ACCESS)!;
    const res = await browser('/auth/logout', { method: 'POST', csrf: true });
    expect(res.status).toBe(204);
    for (const { attributes } of setCookies(res.headers).values())
      expect(attributes).toContain('Max-Age=0');
    expect([...jar.values.keys()]).toEqual([]);
    expect(await auth.listSessions(1)).toEqual([]);
    expect((await call(server.url, '/me', { token: access })).body.error).toBe('token_revoked');
  });

  it('logout-all and DELETE /sessions/:id need proof with cookies', async () => {
    await start();
    await login();
    const other = await call(server.url, '/auth/login', {
      body: { username: 'alice', password: 'wonderland' },
      headers: { 'x-csrf-token': '1' },
    });
    expect(other.status).toBe(200);
    const sessions = (await browser('/auth/sessions')).body as {
      sessionId: string;
      current: boolean;
    }[];
    expect(sessions.map((s) => s.current)).toEqual([true, false]);
    const target = sessions[1]!.sessionId;

    expect((await browser(`/auth/sessions/${target}`, { method: 'DELETE' })).body.error).toBe(
      'csrf_failed',
    );
    expect((await browser('/auth/logout-all', { method: 'POST' })).body.error).toBe('csrf_failed');
    expect(await auth.listSessions(1)).toHaveLength(2);

    expect(
      (await browser(`/auth/sessions/${target}`, { method: 'DELETE', csrf: true })).status,
    ).toBe(204);
    const all = await browser('/auth/logout-all', { method: 'POST', csrf: true });
    expect(all.body).toEqual({ revoked: 1 });
    expect([...jar.values.keys()]).toEqual([]);
  });

  it('deleting the current session clears the cookies', async () => {
    await start();
    await login();
    const [current] = (await browser('/auth/sessions')).body as { sessionId: string }[];
    expect(
      (await browser(`/auth/sessions/${current!.sessionId}`, { method: 'DELETE', csrf: true }))
        .status,
    ).toBe(204);
    expect([...jar.values.keys()]).toEqual([]);
  });
});

describe('logout after the access cookie expired', () => {
  /** What a browser sends to /auth/logout: the refresh cookie's Path keeps it away. */
  const logout = (only: string[]) =>
    call(server.url, '/auth/logout', {
      method: 'POST',
      headers: {
        origin: server.url,
        cookie: jar.header(only),
        'x-csrf-token': jar.values.get(CSRF)!,
      },
    });

  for (const tokenDelivery of ['cookie', 'both'] as const) {
    it(`ends the session and clears the cookies (${tokenDelivery})`, async () => {
      await start({ tokenDelivery, accessTokenTtl: 1, leeway: 0 });
      expect((await login()).status).toBe(200);
      const refresh = jar.values.get(REFRESH)!;
      await new Promise((resolve) => setTimeout(resolve, 2100));
      expect((await browser('/me')).body.error).toBe('token_expired');

      // Proof is still required.
      const unproven = await call(server.url, '/auth/logout', {
        method: 'POST',
        headers: { origin: server.url, cookie: jar.header([ACCESS, CSRF]) },
      });
      expect([unproven.status, unproven.body.error]).toEqual([403, 'csrf_failed']);
      expect(setCookies(unproven.headers).size).toBe(0);
      expect(await auth.checkRefreshToken(refresh)).toBe(true);

      const res = await logout([ACCESS, CSRF]);
      expect(res.status).toBe(204);
      const cleared = setCookies(res.headers);
      expect([...cleared.keys()].sort()).toEqual([ACCESS, CSRF, REFRESH].sort());
      for (const { attributes } of cleared.values()) expect(attributes).toContain('Max-Age=0');
      expect(await auth.listSessions(1)).toEqual([]);
      expect(await auth.checkRefreshToken(refresh)).toBe(false);
    });
  }

  it("ends the session once the browser has dropped the access cookie: the refresh cookie has the logout route's Path too", async () => {
    await start({ tokenDelivery: 'cookie', accessTokenTtl: 1, leeway: 0 });
    const signedIn = await login();
    // The refresh cookie twice: at the refresh route, and at the logout route (nowhere else).
    const refreshCookies = signedIn.headers
      .getSetCookie()
      .filter((raw) => raw.startsWith(`${REFRESH}=`));
    expect(refreshCookies.map((raw) => /Path=([^;]+)/.exec(raw)![1])).toEqual([
      '/auth/refresh',
      '/auth/logout',
    ]);
    for (const raw of refreshCookies)
      expect(raw).toMatch(/; Max-Age=\d+; HttpOnly; Secure; SameSite=Lax$/);
    const refresh = jar.values.get(REFRESH)!;
    // The access cookie's Max-Age has passed: a browser sends /auth/logout only the refresh
    // cookie of that Path and the CSRF cookie. The session ends (it was a 401 that cleared the
    // cookies and left the session alive in the store).
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const res = await logout([REFRESH, CSRF]);
    expect(res.status).toBe(204);
    expect(await auth.listSessions(1)).toEqual([]);
    expect(await auth.checkRefreshToken(refresh)).toBe(false);
    // Both refresh cookies are cleared.
    const cleared = res.headers.getSetCookie().filter((raw) => raw.startsWith(`${REFRESH}=`));
    expect(cleared.map((raw) => /Path=([^;]+)/.exec(raw)![1])).toEqual([
      '/auth/refresh',
      '/auth/logout',
    ]);
    for (const raw of cleared) expect(raw).toContain('Max-Age=0');
    // Its proof is still required, as for any cookie credential.
    await login();
    const unproven = await call(server.url, '/auth/logout', {
      method: 'POST',
      headers: { origin: server.url, cookie: jar.header([REFRESH]) },
    });
    expect([unproven.status, unproven.body.error]).toEqual([403, 'csrf_failed']);
    expect(await auth.listSessions(1)).toHaveLength(1);
  });

  it('ends the live session when a refresh cookie left at the logout Path names one already over', async () => {
    await start({ tokenDelivery: 'cookie' });
    await login();
    const stale = jar.values.get(REFRESH)!;
    // That session ends elsewhere (an older version's logout cleared only the refresh route's
    // copy); the browser logs in again, and an older version set no copy at the logout Path.
    await auth.invalidateRefreshToken(stale);
    await login();
    expect(await auth.listSessions(1)).toHaveLength(1);
    const res = await call(server.url, '/auth/logout', {
      method: 'POST',
      headers: {
        origin: server.url,
        cookie: `${REFRESH}=${stale}; ${jar.header([ACCESS, CSRF])}`,
        'x-csrf-token': jar.values.get(CSRF)!,
      },
    });
    expect(res.status).toBe(204);
    expect(await auth.listSessions(1)).toEqual([]);
  });

  it('logs out by a bearer header without the proof, the cookies of the browser left out (both)', async () => {
    await start({ tokenDelivery: 'both' });
    const cookied = await login();
    const { access_token } = cookied.body as { access_token: string };
    // A second login of the same user, by a client of the body.
    const native = await call(server.url, '/auth/login', {
      body: { username: 'alice', password: 'wonderland' },
      headers: { 'x-csrf-token': '1' },
    });
    const own = (native.body as { access_token: string }).access_token;
    expect(await auth.listSessions(1)).toHaveLength(2);
    // The jar's cookies (the refresh cookie included) go along, yet the header is what logs out.
    const res = await browser('/auth/logout', {
      method: 'POST',
      headers: { authorization: `Bearer ${own}` },
    });
    expect(res.status).toBe(204);
    const left = await auth.listSessions(1);
    expect(left).toHaveLength(1);
    expect(left[0]!.sessionId).toBe(decodeSegment(access_token, 1).sid);
  });

  it('clears the cookies on a 401, e.g. without any access cookie', async () => {
    await start({ accessTokenTtl: 1, leeway: 0 });
    await login();
    const res = await logout([CSRF]);
    expect([res.status, res.body.error]).toEqual([401, 'token_missing']);
    const cleared = setCookies(res.headers);
    expect([...cleared.keys()].sort()).toEqual([ACCESS, CSRF, REFRESH].sort());
    for (const { attributes } of cleared.values()) expect(attributes).toContain('Max-Age=0');
  });

  it('does not end a session for a forged or foreign-kind expired cookie', async () => {
    await start({ accessTokenTtl: 1, leeway: 0 });
    await login();
    const access = jar.values.get(ACCESS)!;
    const refresh = jar.values.get(REFRESH)!;
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const [header, payload, signature] = access.split('.');
    const flipped = `${signature!.slice(0, -2)}${signature!.endsWith('AA') ? 'BB' : 'AA'}`;
    for (const token of [`${header}.${payload}.${flipped}`, refresh]) {
      jar.values.set(ACCESS, token);
      const res = await logout([ACCESS, CSRF]);
      expect(res.status).toBe(401);
      expect(await auth.listSessions(1)).toHaveLength(1);
    }
  });
});
