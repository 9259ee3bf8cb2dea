import { request } from 'node:http';
import { gzipSync } from 'node:zlib';
import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import type { Auth } from '../../src/index.js';
import { testAuth } from '../helpers/auth.js';
import { call, type Reply, serve, type Served } from '../helpers/http.js';
import { loadKoaBody } from '../../src/middleware/json-body.js';
import { checkPassword, Jar, webApp } from '../helpers/web.js';

/**
 * What the auth routes do with bodies that are not the JSON they expect: 415 for another media
 * type, 400 for malformed JSON or a login that is not an object, 413 when too large — never a
 * 401 that would look like wrong credentials, never a 500.
 */

let auth: Auth;
let server: Served;
let logins: number;

async function start(tokenDelivery: 'json' | 'cookie' = 'json'): Promise<void> {
  auth = testAuth({ tokenDelivery });
  logins = 0;
  server = await serve(
    webApp(auth, {
      login: (ctx) => {
        logins++;
        // Only what was sent: koa-body 6's unparsed text (under a symbol) is not handed on.
        expect(Object.getOwnPropertySymbols(ctx.request.body as object)).toEqual([]);
        const { username, password } = ctx.request.body as Record<string, unknown>;
        return username === 'alice' && password === 'wonderland' ? { id: 1 } : null;
      },
    }),
  );
}

afterEach(async () => {
  await server?.close();
  await auth?.close();
});

/** A raw POST: `body` sent as is, with exactly the headers given. */
async function post(path: string, body: string | undefined, headers: Record<string, string>) {
  const response = await fetch(server.url + path, { method: 'POST', body, headers });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text ? (JSON.parse(text) as { error: string; message: string }) : undefined,
  };
}

/** A JSON POST sent chunked (no Content-Length), `body` as one chunk, or no chunk at all. */
function postChunked(path: string, body?: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
    });
    req.on('response', (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function expectError(
  res: { status: number; body?: unknown },
  status: number,
  error: string,
  message: string = expect.any(String),
) {
  expect(res.status).toBe(status);
  expect(res.body).toEqual({ error, message });
}

const form = 'username=alice&password=wonderland';
const json = JSON.stringify({ username: 'alice', password: 'wonderland' });

describe('login bodies', () => {
  it('refuses a form post with 415 unsupported_media_type and Accept: application/json, without calling login', async () => {
    await start();
    const res = await post('/auth/login', form, {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expectError(res, 415, 'unsupported_media_type');
    expect(res.headers.get('accept')).toBe('application/json');
    expect(res.headers.get('www-authenticate')).toBeNull();
    expect(logins).toBe(0);
  });

  it('refuses text/plain, multipart and a body with no content type at all with 415', async () => {
    await start();
    expectError(
      await post('/auth/login', json, { 'content-type': 'text/plain' }),
      415,
      'unsupported_media_type',
    );
    const multipart = new FormData();
    multipart.set('username', 'alice');
    const res = await fetch(`${server.url}/auth/login`, { method: 'POST', body: multipart });
    expectError({ status: res.status, body: await res.json() }, 415, 'unsupported_media_type');
    // fetch adds a content type for a string body; a Blob without a type sends none.
    const untyped = await fetch(`${server.url}/auth/login`, {
      method: 'POST',
      body: new Blob([json]),
    });
    expectError(
      { status: untyped.status, body: await untyped.json() },
      415,
      'unsupported_media_type',
    );
    expect(logins).toBe(0);
  });

  it('accepts application/json with a charset parameter', async () => {
    await start();
    const res = await post('/auth/login', json, {
      'content-type': 'application/json; charset=utf-8',
    });
    expect(res.status).toBe(200);
  });

  it('answers malformed JSON, a JSON array or scalar and an empty body with 400 invalid_request', async () => {
    await start();
    const type = { 'content-type': 'application/json' };
    expectError(
      await post('/auth/login', '{"username": "alice",', type),
      400,
      'invalid_request',
      'The request body is not valid JSON.',
    );
    expectError(await post('/auth/login', '["alice", "wonderland"]', type), 400, 'invalid_request');
    // Well-formed JSON that is no object is not called malformed.
    for (const scalar of ['"alice"', 'null', '0', 'false', '7'])
      expectError(
        await post('/auth/login', scalar, type),
        400,
        'invalid_request',
        'The request body is not a JSON object.',
      );
    expectError(await post('/auth/login', undefined, type), 400, 'invalid_request');
    expectError(await post('/auth/login', undefined, {}), 400, 'invalid_request');
    expect(logins).toBe(0);
  });

  it('answers a body with a "__proto__" key with 400 naming the key, not as malformed JSON', async () => {
    await start();
    const type = { 'content-type': 'application/json' };
    for (const body of [
      '{"username": "alice", "password": "wonderland", "__proto__": {"admin": true}}',
      '{"username": "alice", "password": "wonderland", "meta": {"__proto__": null}}',
      '{"username": "alice", "password": "wonderland", "list": [{"\\u005f_proto__": {"x": 1}}]}',
    ]) {
      const res = await post('/auth/login', body, type);
      expectError(res, 400, 'invalid_request');
      expect(res.body!.message).toMatch(/__proto__/);
    }
    expect(logins).toBe(0);
  });

  it('answers an empty chunked JSON body with 400, as an empty body with a length (the parser would make it {})', async () => {
    await start();
    // Chunked, no chunk at all (fetch would send an empty stream with Content-Length: 0).
    const res = await postChunked('/auth/login');
    expectError(res, 400, 'invalid_request');
    // An explicit {} is a JSON object: the app's login decides (here, wrong credentials).
    expectError(
      await post('/auth/login', '{}', { 'content-type': 'application/json' }),
      401,
      'invalid_credentials',
    );
    expect(logins).toBe(1);
  });

  it('answers a content encoding it cannot decode with 415, not as bad JSON', async () => {
    await start();
    const res = await post('/auth/login', json, {
      'content-type': 'application/json',
      'content-encoding': 'no-such-coding',
    });
    expectError(res, 415, 'unsupported_media_type');
    expect(res.headers.get('accept')).toBe('application/json');
    expect(logins).toBe(0);
  });

  it('answers a body over 16 KiB with 413 body_too_large', async () => {
    await start();
    const big = JSON.stringify({ username: 'alice', password: 'x'.repeat(17 * 1024) });
    expectError(
      await post('/auth/login', big, { 'content-type': 'application/json' }),
      413,
      'body_too_large',
    );
  });

  it('keeps 401 invalid_credentials for a well-formed login with wrong credentials', async () => {
    await start();
    const res: Reply = await call(server.url, '/auth/login', {
      body: { username: 'alice', password: 'nope' },
    });
    expectError(res, 401, 'invalid_credentials');
    expect(logins).toBe(1);
  });
});

describe('refresh and logout bodies', () => {
  it('refuses a form-encoded refresh token with 415, and malformed JSON with 400', async () => {
    await start();
    const pair = (await call(server.url, '/auth/login', { body: JSON.parse(json) as object })).body;
    const token = pair.refresh_token as string;
    for (const path of ['/auth/refresh', '/auth/logout']) {
      expectError(
        await post(path, `refresh_token=${token}`, {
          'content-type': 'application/x-www-form-urlencoded',
        }),
        415,
        'unsupported_media_type',
      );
      expectError(
        await post(path, '{"refresh_token":', { 'content-type': 'application/json' }),
        400,
        'invalid_request',
      );
    }
    // A refresh_token that is no string, or an empty one, is named as such.
    for (const [value, message] of [
      [5, '`refresh_token` must be a string.'],
      ['', '`refresh_token` is empty.'],
    ] as const) {
      const body = JSON.stringify({ refresh_token: value });
      const type = { 'content-type': 'application/json' };
      expectError(await post('/auth/refresh', body, type), 400, 'invalid_request', message);
    }
    // The refused requests changed nothing: the token still refreshes.
    expect(
      (await call(server.url, '/auth/refresh', { body: { refresh_token: token } })).status,
    ).toBe(200);
  });

  it('answers a JSON array to refresh, logout and logout-all with 400 invalid_request, ending and rotating nothing', async () => {
    await start();
    const login = async () =>
      (await call(server.url, '/auth/login', { body: JSON.parse(json) as object })).body as {
        access_token: string;
        refresh_token: string;
      };
    const first = await login();
    await login();
    const sessions = async () =>
      ((await call(server.url, '/auth/sessions', { token: first.access_token })).body as unknown[])
        .length;
    expect(await sessions()).toBe(2);
    // What a client that wraps its body in a list by mistake sends. Read as an empty body,
    // logout-all's would have ended both sessions, the caller's too.
    for (const [path, body] of [
      ['/auth/refresh', [{ refresh_token: first.refresh_token }]],
      ['/auth/logout', [{ refresh_token: first.refresh_token }]],
      ['/auth/logout-all', [{ keep_current: true }]],
      ['/auth/logout-all', []],
    ] as const) {
      expectError(
        await call(server.url, path, { body, token: first.access_token }),
        400,
        'invalid_request',
        'The request body is not a JSON object.',
      );
    }
    expect(await sessions()).toBe(2);
    // The refresh token was neither rotated nor revoked.
    expect(
      (await call(server.url, '/auth/refresh', { body: { refresh_token: first.refresh_token } }))
        .status,
    ).toBe(200);
  });

  it('in cookie delivery still refreshes with an empty body and no content type', async () => {
    await start('cookie');
    const login = await call(server.url, '/auth/login', {
      body: JSON.parse(json) as object,
      headers: { origin: server.url, 'x-csrf-token': '1' },
    });
    expect(login.status).toBe(200);
    const cookies = login.headers
      .getSetCookie()
      .map((c) => c.split(';', 1)[0]!)
      .join('; ');
    const csrf = /__Host-csrf_token=([^;]+)/.exec(cookies)![1]!;
    const res = await post('/auth/refresh', undefined, {
      cookie: cookies,
      origin: server.url,
      'x-csrf-token': csrf,
    });
    expect(res.status).toBe(200);
  });
});

describe('behind an app-wide body parser', () => {
  /** The routes mounted after `before` (an app's own body parser), as a Koa app commonly has it. */
  async function startBehind(
    before: Koa.Middleware,
    tokenDelivery: 'json' | 'cookie' = 'json',
  ): Promise<{ errors: Error[] }> {
    auth = testAuth({ tokenDelivery });
    logins = 0;
    const app = new Koa();
    const errors: Error[] = [];
    app.silent = true;
    app.on('error', (error: Error) => errors.push(error));
    app.use(before);
    const router = auth.routes({
      login: (ctx) => {
        logins++;
        return checkPassword(ctx.request.body);
      },
    });
    app.use(router.routes());
    server = await serve(app);
    return { errors };
  }

  it('logs in, refreshes and logs out with the body the app parsed, held to the same rules', async () => {
    // The installed koa-body major (the koa-body projects map it), app-wide, with its defaults.
    await startBehind(loadKoaBody()());
    const login = await post('/auth/login', json, { 'content-type': 'application/json' });
    expect(login.status).toBe(200);
    const tokens = login.body as unknown as { access_token: string; refresh_token: string };
    const refreshed = await post(
      '/auth/refresh',
      JSON.stringify({ refresh_token: tokens.refresh_token }),
      { 'content-type': 'application/json' },
    );
    expect(refreshed.status).toBe(200);
    const next = refreshed.body as unknown as { access_token: string; refresh_token: string };
    const logout = await post(
      '/auth/logout',
      JSON.stringify({ refresh_token: next.refresh_token }),
      {
        'content-type': 'application/json',
        authorization: `Bearer ${next.access_token}`,
      },
    );
    expect(logout.status).toBe(204);
    // The app's parser takes forms; the routes still refuse them, before login is called.
    expectError(
      await post('/auth/login', form, { 'content-type': 'application/x-www-form-urlencoded' }),
      415,
      'unsupported_media_type',
    );
    expectError(
      await post('/auth/login', '[1]', { 'content-type': 'application/json' }),
      400,
      'invalid_request',
    );
    // koa-body's default limit is 1 MB; the routes' is 16 KiB, whoever parsed the body.
    const big = JSON.stringify({ username: 'alice', password: 'x'.repeat(20_000) });
    expectError(
      await post('/auth/login', big, { 'content-type': 'application/json' }),
      413,
      'body_too_large',
    );
    expect(logins).toBe(1);
  });

  it('refreshes and logs out with a JSON content type and no body at all, as without the parser', async () => {
    // A client that always sends `Content-Type: application/json`, here with Content-Length: 0.
    const noBody = { 'content-type': 'application/json' };
    await startBehind(loadKoaBody()());
    const login = async () =>
      (await post('/auth/login', json, noBody)).body as unknown as {
        access_token: string;
        refresh_token: string;
      };
    let tokens = await login();
    const bearer = (token: string) => ({ ...noBody, authorization: `Bearer ${token}` });
    expect((await post('/auth/refresh', undefined, bearer(tokens.refresh_token))).status).toBe(200);
    tokens = await login();
    expect((await post('/auth/logout-all', undefined, bearer(tokens.access_token))).status).toBe(
      200,
    );
    tokens = await login();
    expect((await post('/auth/logout', undefined, bearer(tokens.access_token))).status).toBe(204);
    await server.close();
    await auth.close();

    // Cookie delivery: the refresh cookie with its CSRF header.
    await startBehind(loadKoaBody()(), 'cookie');
    const cookieLogin = await post('/auth/login', json, { ...noBody, 'x-csrf-token': 'login' });
    expect(cookieLogin.status).toBe(200);
    const jar = new Jar();
    jar.take(cookieLogin.headers);
    const csrf = jar.values.get('__Host-csrf_token')!;
    const refreshed = await post('/auth/refresh', undefined, {
      ...noBody,
      cookie: jar.header(),
      'x-csrf-token': csrf,
    });
    expect(refreshed.status).toBe(200);
    jar.take(refreshed.headers);
    const logout = await post('/auth/logout', undefined, {
      ...noBody,
      cookie: jar.header(),
      'x-csrf-token': jar.values.get('__Host-csrf_token')!,
    });
    expect(logout.status).toBe(204);
  });

  it('answers an empty chunked or compressed login body with 400, never calling login', async () => {
    await startBehind(loadKoaBody()());
    const failed: unknown[] = [];
    auth.on('login_failed', (event) => failed.push(event));
    // Chunked with no chunk, and gzip of nothing: koa-body hands on {} for both.
    expectError(await postChunked('/auth/login'), 400, 'invalid_request');
    expectError(
      await post('/auth/login', gzipSync('') as unknown as string, {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
      }),
      400,
      'invalid_request',
    );
    // A {} sent the same way cannot be told from them without the text (README): 400 too.
    expectError(await postChunked('/auth/login', '{}'), 400, 'invalid_request');
    expect(logins).toBe(0);
    expect(failed).toEqual([]);
    // With a length, a {} is a JSON object: the app's login decides.
    expectError(
      await post('/auth/login', '{}', { 'content-type': 'application/json' }),
      401,
      'invalid_credentials',
    );
    expect(logins).toBe(1);
    await server.close();
    await auth.close();

    // A parser that keeps the text (includeUnparsed) tells them apart, chunked too.
    await startBehind(loadKoaBody()({ includeUnparsed: true }));
    expectError(await postChunked('/auth/login'), 400, 'invalid_request');
    expectError(await postChunked('/auth/login', '{}'), 401, 'invalid_credentials');
    expect(logins).toBe(1);
  });

  it('refuses what a lenient parser hands on: a JSON scalar, and a "__proto__" key', async () => {
    let next: unknown;
    await startBehind(async (ctx, nextMiddleware) => {
      for await (const chunk of ctx.req) void chunk;
      (ctx.request as { body?: unknown }).body = next;
      await nextMiddleware();
    });
    next = 'alice';
    expectError(
      await post('/auth/login', '"alice"', { 'content-type': 'application/json' }),
      400,
      'invalid_request',
      'The request body is not a JSON object.',
    );
    next = JSON.parse('{"username":"alice","__proto__":{"admin":true}}') as unknown;
    expectError(
      await post('/auth/login', '{}', { 'content-type': 'application/json' }),
      400,
      'invalid_request',
      'The request body has a "__proto__" key, which is refused.',
    );
    expect(logins).toBe(0);
  });

  it('holds a chunked or compressed body the app parsed to 16 KiB as received, decoded', async () => {
    await startBehind(loadKoaBody()());
    const big = JSON.stringify({ username: 'alice', password: 'x'.repeat(20_000) });
    // Chunked: no Content-Length at all.
    const chunked = await postChunked('/auth/login', big);
    expectError(chunked, 413, 'body_too_large');
    // Gzip: a Content-Length far under the limit for a body far over it.
    const zipped = gzipSync(big);
    expect(zipped.length).toBeLessThan(1024);
    expectError(
      await post('/auth/login', zipped as unknown as string, {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
      }),
      413,
      'body_too_large',
    );
    expect(logins).toBe(0);
    // The same small body compressed passes.
    const res = await post('/auth/login', gzipSync(json) as unknown as string, {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    });
    expect(res.status).toBe(200);
  });

  it('holds what a client pads a chunked body with to 16 KiB where the text is kept, and says what it measures where not', async () => {
    // Under 16 KiB parsed, over it as sent: spaces, and \u escapes of plain letters.
    const padded = `${json.slice(0, -1)}${' '.repeat(200 * 1024)}}`;
    const escaped = `${json.slice(0, -1)},"x":"${'\\u0061'.repeat(10_000)}"}`;
    expect(JSON.stringify(JSON.parse(escaped)).length).toBeLessThan(16 * 1024);
    // koa-body keeping the text (includeUnparsed; koa-body 6 under a symbol): measured as sent.
    await startBehind(loadKoaBody()({ includeUnparsed: true }));
    expectError(await postChunked('/auth/login', padded), 413, 'body_too_large');
    expectError(await postChunked('/auth/login', escaped), 413, 'body_too_large');
    expect(logins).toBe(0);
    await server.close();
    await auth.close();
    // Without the text, only the parsed value is left: written out again, as README says, it is
    // under 16 KiB, and that is all login is handed.
    await startBehind(loadKoaBody()());
    expect((await postChunked('/auth/login', padded)).status).toBe(200);
    expect((await postChunked('/auth/login', escaped)).status).toBe(200);
  });

  it('a bodyless request (a cookie refresh) after a middleware that drained the stream is no 500', async () => {
    const { errors } = await startBehind(async (ctx, next) => {
      for await (const chunk of ctx.req) void chunk;
      await next();
    });
    // No body to parse: the refresh reads its token from the body, cookie or header, and finds none.
    const res = await post('/auth/refresh', undefined, {});
    expectError(res, 401, 'token_missing');
    expect(errors).toEqual([]);
  });

  it('answers a body read by a middleware that kept nothing with a 500 that says what to change', async () => {
    const { errors } = await startBehind(async (ctx, next) => {
      for await (const chunk of ctx.req) void chunk;
      await next();
    });
    const res = await fetch(`${server.url}/auth/login`, {
      method: 'POST',
      body: json,
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(500);
    expect(errors.map((error) => error.message)).toEqual([
      expect.stringContaining('mount auth.routes() before it'),
    ]);
    expect(logins).toBe(0);
  });
});
