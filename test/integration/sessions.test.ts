import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../examples/basic/app.js';
import type { Auth } from '../../src/index.js';
import {
  allKeys,
  keysWithTtl,
  redisClient,
  type TestRedis,
  testAuth,
  uniquePrefix,
} from '../helpers/auth.js';
import { call, type Reply, serve, type Served } from '../helpers/http.js';
import { decodeSegment } from '../helpers/forge.js';
import { compactHashEncoding } from '../helpers/redis-server.js';
import { SCAN_FIELDS } from '../../src/stores/lua.js';

const alice = { username: 'alice', password: 'wonderland' };

let client: TestRedis;
let auth: Auth;
let server: Served;
let prefix: string;

async function start(options: Parameters<typeof testAuth>[0] = {}): Promise<void> {
  prefix = uniquePrefix();
  auth = testAuth({ keyPrefix: prefix, userFields: ['name', 'role'], ...options });
  server = await serve(createApp(auth));
}

const login = async (headers: Record<string, string> = {}): Promise<Reply> =>
  call(server.url, '/login', { body: alice, headers });
const refresh = (token: string) => call(server.url, '/refresh', { body: { refresh_token: token } });
const me = (token: string) => call(server.url, '/me', { token });

beforeAll(() => {
  client = redisClient();
});
afterAll(async () => {
  await client.quit();
});
afterEach(async () => {
  await server?.close();
  await auth?.close();
});

describe('login, refresh, logout over HTTP', () => {
  it('logs in and reaches a protected route with the access token', async () => {
    await start();
    const res = await login();
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body).toMatchObject({ token_type: 'bearer', expires_in: 900 });
    const user = await me(res.body.access_token);
    expect(user.status).toBe(200);
    expect(user.body).toMatchObject({
      sub: '1',
      name: 'alice',
      role: 'admin',
      token_use: 'access',
    });
  });

  it('rotates: the old refresh token is then rejected and its family revoked, while another login lives on', async () => {
    // Strict reuse detection (no grace period): the first replay already revokes.
    await start({ refreshGracePeriod: 0 });
    const first = (await login()).body;
    const other = (await login()).body;
    const second = await refresh(first.refresh_token);
    expect(second.status).toBe(200);
    expect(second.body.refresh_token).not.toBe(first.refresh_token);
    expect((await me(second.body.access_token)).status).toBe(200);

    const replay = await refresh(first.refresh_token);
    expect(replay.status).toBe(401);
    expect(replay.body.error).toBe('refresh_reused');
    // The whole family is gone: the newest refresh token and its access token too.
    expect((await refresh(second.body.refresh_token)).body.error).toBe('token_revoked');
    const revoked = await me(second.body.access_token);
    expect(revoked.status).toBe(401);
    expect(revoked.body.error).toBe('token_revoked');
    // The user's other login is untouched.
    expect((await me(other.access_token)).status).toBe(200);
    expect((await refresh(other.refresh_token)).status).toBe(200);
  });

  it('lets exactly one of 50 concurrent refreshes of one token succeed', async () => {
    await start({ refreshGracePeriod: 0 });
    const { refresh_token } = (await login()).body;
    const replies = await Promise.all(Array.from({ length: 50 }, () => refresh(refresh_token)));
    const ok = replies.filter((r) => r.status === 200);
    expect(ok).toHaveLength(1);
    for (const r of replies) expect([200, 401]).toContain(r.status);
  });

  it('answers a refresh of the just-rotated token within refreshGracePeriod with the live chain, not a 409', async () => {
    await start({ refreshGracePeriod: 10 });
    const { refresh_token } = (await login()).body;
    const winner = await refresh(refresh_token);
    const second = await refresh(refresh_token);
    expect(second.status).toBe(200);
    // The same live refresh-token id as the winner's, and a working access token.
    expect(decodeSegment(second.body.refresh_token, 1).jti).toBe(
      decodeSegment(winner.body.refresh_token, 1).jti,
    );
    expect((await me(second.body.access_token)).status).toBe(200);
    expect((await refresh(second.body.refresh_token)).status).toBe(200);
  });

  it('logs out one session, idempotently', async () => {
    await start();
    const a = (await login()).body;
    const b = (await login()).body;
    const out = await call(server.url, '/logout', { body: { refresh_token: a.refresh_token } });
    expect(out.status).toBe(204);
    expect(
      (await call(server.url, '/logout', { body: { refresh_token: a.refresh_token } })).status,
    ).toBe(204);
    expect((await refresh(a.refresh_token)).body.error).toBe('token_revoked');
    expect((await me(a.access_token)).body.error).toBe('token_revoked');
    expect((await me(b.access_token)).status).toBe(200);
  });

  it('revokes all sessions of a user and lists sessions with their metadata', async () => {
    await start();
    const a = (await login({ 'user-agent': 'phone-app/1.0' })).body;
    await login({ 'user-agent': 'laptop' });
    const list = await call(server.url, '/sessions', { token: a.access_token });
    expect(list.status).toBe(200);
    expect(list.body).toHaveLength(2);
    // No browser in these user agents: the label is the client's product name.
    expect(list.body.map((s: { userAgent: string }) => s.userAgent).sort()).toEqual([
      'laptop',
      'phone-app',
    ]);
    expect(list.body[0]).toMatchObject({ ip: '127.0.0.1' });
    for (const s of list.body) expect(Date.parse(s.expiresAt)).toBeGreaterThan(Date.now());
    const all = await call(server.url, '/logout-all', { method: 'POST', token: a.access_token });
    expect(all.body).toEqual({ revoked: 2 });
    expect((await me(a.access_token)).status).toBe(401);
    expect(await auth.listSessions(1)).toEqual([]);
  });

  it('with checkSession: false, access tokens outlive logout until they expire', async () => {
    await start({ checkSession: false });
    const a = (await login()).body;
    await call(server.url, '/logout', { body: { refresh_token: a.refresh_token } });
    expect((await me(a.access_token)).status).toBe(200);
    expect((await refresh(a.refresh_token)).status).toBe(401);
  });
});

describe('refusals over HTTP', () => {
  it('answers 401 with WWW-Authenticate, a JSON body and no-store', async () => {
    await start({ realm: 'api' });
    const none = await call(server.url, '/me');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="api"');
    expect(none.headers.get('content-type')).toMatch(/application\/json/);
    expect(none.body).toEqual({ error: 'token_missing', message: expect.any(String) });
    const bad = await me('abc.def.ghi');
    expect(bad.headers.get('www-authenticate')).toBe('Bearer realm="api", error="invalid_token"');
    expect(bad.body.error).toBe('token_invalid');
    expect(bad.headers.get('cache-control')).toBe('no-store');
  });

  it('answers a malformed Bearer header with 401 token_invalid, and no token or another scheme with token_missing', async () => {
    await start();
    const { access_token } = (await login()).body;
    const sent = (authorization: string, path = '/me') =>
      call(server.url, path, { headers: { authorization } });
    // A credential was given, just not as "Bearer <token>": not the "no token" of a bare request.
    for (const header of [
      `Bearer\t${access_token}`,
      `Bearer ${access_token}, Bearer ${access_token}`,
      `Bearer ${access_token} ${access_token}`,
      `bearer,${access_token}`,
    ]) {
      const res = await sent(header);
      expect([res.status, res.body.error], header).toEqual([401, 'token_invalid']);
      expect(res.body.message).toContain('"Bearer <token>"');
      expect(res.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
      // Optional auth: anonymous, with the reason kept (see getData), not a failed request.
      expect((await sent(header, '/public')).body).toEqual({ hello: 'stranger' });
    }
    for (const header of ['Bearer', 'Basic YWxpY2U6d29uZGVybGFuZA==', `Bearerx ${access_token}`]) {
      const res = await sent(header);
      expect([res.status, res.body.error], header).toEqual([401, 'token_missing']);
    }
    // The plain form, with any number of spaces and any case of the scheme, still reads.
    for (const header of [`Bearer ${access_token}`, `bearer   ${access_token}`])
      expect((await sent(header)).status, header).toBe(200);
  });

  it('every 401 of the basic example carries Cache-Control: no-store', async () => {
    await start();
    const pair = (await login()).body;
    const replies = [
      await call(server.url, '/login', { body: { username: 'alice', password: 'wrong' } }),
      await call(server.url, '/login', { body: { username: 'nobody', password: 'x' } }),
      await call(server.url, '/me'),
      await me('abc.def.ghi'),
      await me(pair.refresh_token),
      await refresh('abc.def.ghi'),
      await refresh(pair.access_token),
      await call(server.url, '/refresh', { body: {} }),
      await call(server.url, '/logout', { body: { refresh_token: 'abc.def.ghi' } }),
      await call(server.url, '/sessions', { token: 'abc.def.ghi' }),
    ];
    await call(server.url, '/logout', { body: { refresh_token: pair.refresh_token } });
    replies.push(await me(pair.access_token), await refresh(pair.refresh_token));
    for (const reply of replies) {
      expect(reply.status).toBe(401);
      expect(reply.headers.get('cache-control')).toBe('no-store');
      expect(reply.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
  });

  it('never reads a token from the query string', async () => {
    await start();
    const { access_token } = (await login()).body;
    for (const q of ['access_token', 'token', 'jwt']) {
      const res = await call(server.url, `/me?${q}=${access_token}`);
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('token_missing');
    }
  });

  it('refuses a refresh token used as a bearer token', async () => {
    await start();
    const { refresh_token } = (await login()).body;
    const res = await me(refresh_token);
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('token_invalid');
  });

  it('refuses an access token sent to refresh, and changes nothing in Redis', async () => {
    await start();
    const { access_token } = (await login()).body;
    const keys = await allKeys(client, `${prefix}*`);
    const before = await Promise.all(keys.map((k) => client.dump(k)));
    const res = await refresh(access_token);
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('token_invalid');
    expect(await Promise.all(keys.map((k) => client.dump(k)))).toEqual(before);
    expect(await allKeys(client, `${prefix}*`)).toHaveLength(keys.length);
  });

  it('answers garbage with 401 or 400, never 500 or a stack trace', async () => {
    await start();
    const bodies: unknown[] = [
      {},
      { refresh_token: 42 },
      { refresh_token: 'x'.repeat(100_000) },
      { refresh_token: 'a.b.c' },
      '{"refresh_token":',
      '[]',
      'null',
    ];
    for (const body of bodies) {
      for (const path of ['/refresh', '/logout']) {
        const res = await call(server.url, path, { body });
        expect([400, 401]).toContain(res.status);
        expect(res.text).not.toMatch(/\bat .*\.(ts|js):\d+/);
      }
    }
    for (const header of [
      'Bearer',
      'Bearer ',
      'Basic abc',
      'Bearer a b',
      `Bearer ${'x'.repeat(9000)}`,
      'Bearer ....',
    ]) {
      const res = await call(server.url, '/me', { headers: { authorization: header } });
      expect(res.status).toBe(401);
    }
  });

  it('getData leaves the user undefined for a bad token and sets it for a good one', async () => {
    await start();
    expect((await call(server.url, '/public')).body).toEqual({ hello: 'stranger' });
    expect((await call(server.url, '/public', { token: 'a.b.c' })).body).toEqual({
      hello: 'stranger',
    });
    const { access_token } = (await login()).body;
    expect((await call(server.url, '/public', { token: access_token })).body).toEqual({
      hello: '1',
    });
  });
});

describe('the Redis data model', () => {
  /** SCAN_FIELDS + 1 logins of 60 s (one field each: no metadata): a large hash. */
  async function largeHash(id: string): Promise<string[]> {
    const tokens = [];
    for (let i = 0; i <= SCAN_FIELDS; i++)
      tokens.push((await auth.generateTokens({ id })).refresh_token);
    return tokens;
  }

  /**
   * Refreshes `tokens` on the same store as an instance would after a deploy that lowered
   * refreshTokenTtl to 2 s: each rotation ends its session sooner than its login did (a token's
   * own `lifetime` is kept by its rotations, so only a changed setting shortens one).
   */
  async function refreshLowered(...tokens: string[]): Promise<void> {
    const lowered = testAuth({ keyPrefix: prefix, accessTokenTtl: 1, refreshTokenTtl: 2 });
    try {
      for (const token of tokens) await lowered.refreshTokens(token);
    } finally {
      await lowered.close();
    }
  }

  it('keeps one hash per user, under its hash tag, with a TTL', async () => {
    await start();
    await login();
    await login();
    const keys = await keysWithTtl(client, prefix);
    expect([...keys.keys()]).toEqual([`${prefix}{u:1}`]);
    // Rotated records stay under 64 bytes, so Redis keeps the hash in its compact encoding.
    const { refresh_token } = (await login()).body;
    expect((await refresh(refresh_token)).status).toBe(200);
    expect(await client.object('ENCODING', `${prefix}{u:1}`)).toBe(
      await compactHashEncoding(client),
    );
    for (const ttl of keys.values()) {
      expect(ttl).toBeGreaterThan(2_500_000_000);
      expect(ttl).toBeLessThanOrEqual(2_592_000_000);
    }
  });

  it('stays in the compact listpack encoding with a browser user agent, a grace period and rotations', async () => {
    await start({ refreshGracePeriod: 10 });
    const userAgent =
      'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
    let pair = await auth.generateTokens(
      { id: 'ua' },
      { ip: '2001:db8:85a3::8a2e:370:7334', userAgent },
    );
    for (let i = 0; i < 3; i++) pair = await auth.refreshTokens(pair.refresh_token);
    expect(await client.object('ENCODING', `${prefix}{u:ua}`)).toBe(
      await compactHashEncoding(client),
    );
    const [session] = await auth.listSessions('ua');
    expect(session).toMatchObject({
      userAgent: 'Chrome on Windows',
      device: { label: 'Chrome on Windows', browser: 'Chrome', os: 'Windows', type: 'desktop' },
      ip: '2001:db8:85a3::8a2e:370:7334',
    });
  });

  it('keeps hostile user ids inside their hash tag', async () => {
    await start();
    for (const id of ['a}b{c', '{u:1}', 'x:y']) await auth.generateTokens({ id });
    for (const key of await allKeys(client, `${prefix}*`)) {
      expect(key.match(/\{/g)).toHaveLength(1);
      expect(key.match(/\}/g)).toHaveLength(1);
    }
  });

  it('prunes expired sessions once the hash is large; a small hash keeps them until a scan or its expiry', async () => {
    await start({ accessTokenTtl: 1, refreshTokenTtl: 60 });
    // No ip or user agent given, so one field per family.
    for (let i = 0; i < SCAN_FIELDS; i++)
      await auth.createRefreshToken({ id: 'many' }, { lifetime: 2 });
    await auth.createRefreshToken({ id: 'few' }, { lifetime: 2 });
    await auth.generateTokens({ id: 'few' });
    await sleep(2100);
    await auth.generateTokens({ id: 'few' });
    expect(await client.hlen(`${prefix}{u:few}`)).toBe(3);
    expect(await auth.listSessions('few')).toHaveLength(2);
    await auth.generateTokens({ id: 'many' });
    expect(await client.hlen(`${prefix}{u:many}`)).toBe(1);
  });

  it('scans a large hash only once its earliest session may have expired, and lowers that time on every shorter write', async () => {
    await start({ accessTokenTtl: 1, refreshTokenTtl: 60 });
    const key = `${prefix}{u:big}`;
    const mark = async () => Number(await client.hget(key, '~'));
    // One field per family (no ip or user agent). A small hash has no mark; the login that makes
    // it large marks it due (0).
    for (let i = 0; i < SCAN_FIELDS - 1; i++)
      await auth.createRefreshToken({ id: 'big' }, { lifetime: 60 });
    expect(await client.hget(key, '~')).toBeNull();
    await auth.createRefreshToken({ id: 'big' }, { lifetime: 60 });
    expect(await client.hget(key, '~')).toBe('0');
    // The next login scans it and marks its earliest expiry.
    await auth.createRefreshToken({ id: 'big' }, { lifetime: 60 });
    expect(await mark()).toBeGreaterThan(Date.now() + 50_000);
    // A shorter login lowers the mark, and so does a refresh that shortens a session
    // (refreshTokenTtl lowered to 2 s, where its login gave 60).
    const shortened = (await auth.generateTokens({ id: 'big' })).refresh_token;
    await auth.createRefreshToken({ id: 'big' }, { lifetime: 3 });
    expect(await mark()).toBeLessThanOrEqual(Date.now() + 3000);
    await refreshLowered(shortened);
    expect(await mark()).toBeLessThanOrEqual(Date.now() + 2000);
    await sleep(3100);
    // Before the mark passes, a login does not scan: with a mark set ahead (as by a login
    // elsewhere), the two expired families stay in the hash, though no read counts them.
    await client.hset(key, '~', String(Date.now() + 60_000));
    await auth.createRefreshToken({ id: 'big' }, { lifetime: 60 });
    // 20 families (2 expired) and the mark.
    expect(await client.hlen(key)).toBe(SCAN_FIELDS + 5);
    expect(await auth.listSessions('big')).toHaveLength(SCAN_FIELDS + 2);
    // Once it has passed, the next login prunes them and marks the earliest live expiry again.
    await client.hset(key, '~', '1');
    await auth.createRefreshToken({ id: 'big' }, { lifetime: 60 });
    expect(await client.hlen(key)).toBe(SCAN_FIELDS + 4);
    expect(await auth.listSessions('big')).toHaveLength(SCAN_FIELDS + 3);
    expect(await mark()).toBeGreaterThan(Date.now() + 50_000);
  });

  it('a large hash whose sessions all end sooner on refresh expires with them', async () => {
    // Logins of 60 s, refreshes of 2 s (refreshTokenTtl lowered): each refresh shortens its family.
    await start({ accessTokenTtl: 1, refreshTokenTtl: 60 });
    const key = `${prefix}{u:shrink}`;
    const tokens = await largeHash('shrink');
    expect(await client.hget(key, '~')).not.toBeNull();
    expect(await client.pttl(key)).toBeGreaterThan(50_000);
    await refreshLowered(...tokens);
    // The key's expiry follows its latest family down, not the 60 s the logins gave it.
    expect(await client.pttl(key)).toBeLessThanOrEqual(2000);
    expect(await auth.listSessions('shrink')).toHaveLength(SCAN_FIELDS + 1);
  });

  it('a large hash an older version left without its mark is still scanned by a refresh that shortens a session', async () => {
    await start({ accessTokenTtl: 1, refreshTokenTtl: 60 });
    const key = `${prefix}{u:unmarked}`;
    const tokens = await largeHash('unmarked');
    await client.hdel(key, '~');
    // A refresh that shortens its session (60 s, then refreshTokenTtl lowered to 2 s): the field
    // count tells the hash is large, and the scan marks it with its earliest expiry, that session's.
    await refreshLowered(tokens[0]!);
    const mark = Number(await client.hget(key, '~'));
    expect(mark).toBeGreaterThan(0);
    expect(mark).toBeLessThanOrEqual(Date.now() + 2000);
  });

  it('keeps the mark in a large hash only: a revoke, a reuse or an expired refresh that leaves it small drops it', async () => {
    await start({ accessTokenTtl: 1, refreshTokenTtl: 60, refreshGracePeriod: 0 });
    const key = `${prefix}{u:mark}`;
    const fill = async (lifetime = 60) => {
      const tokens = [];
      while ((await client.hlen(key)) < SCAN_FIELDS + 2)
        tokens.push(await auth.createRefreshToken({ id: 'mark' }, { lifetime }));
      expect(await client.hget(key, '~')).not.toBeNull();
      return tokens;
    };
    const idOf = (token: string) => decodeSegment(token, 1).sid as string;
    // One at a time: the mark is there exactly while the hash is large.
    const revokeDown = async (tokens: string[]) => {
      for (const token of tokens.splice(0, 3)) {
        await auth.revokeSession('mark', idOf(token));
        const large = (await client.hlen(key)) >= SCAN_FIELDS;
        expect(await client.hget(key, '~')).toEqual(large ? expect.any(String) : null);
      }
    };

    // Revokes: the mark stays while the hash is large, and goes with the revoke that makes it
    // small.
    let tokens = await fill();
    await revokeDown(tokens);
    expect(await client.hlen(key)).toBeLessThan(SCAN_FIELDS);
    expect(await client.hget(key, '~')).toBeNull();

    // A reused refresh token (no grace period) revokes its family: the same.
    await client.del(key);
    tokens = await fill();
    await revokeDown(tokens);
    tokens.unshift(
      ...(await Promise.all([0, 1].map(() => auth.createRefreshToken({ id: 'mark' })))),
    );
    expect(await client.hlen(key)).toBeGreaterThanOrEqual(SCAN_FIELDS);
    expect(await client.hget(key, '~')).not.toBeNull();
    for (const token of tokens.slice(0, 3)) {
      await auth.refreshTokens(token);
      await expect(auth.refreshTokens(token)).rejects.toMatchObject({ code: 'refresh_reused' });
    }
    expect(await client.hlen(key)).toBeLessThan(SCAN_FIELDS);
    expect(await client.hget(key, '~')).toBeNull();

    // A refresh of a family that expired but is still stored drops it, and with it the mark
    // once the hash is small. The mark is set ahead so no scan prunes the expired ones first;
    // the tokens are just past their exp, inside the default 5 s leeway, so the store sees them.
    await client.del(key);
    const short = await fill(3);
    await client.hset(key, '~', String(Date.now() + 60_000));
    await sleep(3100);
    for (const token of short.slice(0, 4))
      await expect(auth.refreshTokens(token)).rejects.toMatchObject({ code: 'token_revoked' });
    expect(await client.hlen(key)).toBeLessThan(SCAN_FIELDS);
    expect(await client.hget(key, '~')).toBeNull();
  });

  it('still caps a large hash whose mark is not due', async () => {
    await start({ maxSessionsPerUser: 20 });
    for (let i = 0; i < 30; i++) await auth.createRefreshToken({ id: 'capped' });
    expect(await client.hget(`${prefix}{u:capped}`, '~')).not.toBeNull();
    expect(await auth.listSessions('capped')).toHaveLength(20);
    // Twenty families, one field each, and the mark.
    expect(await client.hlen(`${prefix}{u:capped}`)).toBe(21);
  });

  it('lets keys expire with their last session', async () => {
    await start({ accessTokenTtl: 1, refreshTokenTtl: 2 });
    await auth.generateTokens({ id: 'short' });
    await auth.createAccessToken({ id: 'short' });
    await sleep(2100);
    expect(await allKeys(client, `${prefix}*`)).toEqual([]);
  });

  it('keeps a key alive as long as its latest session, whichever login came last', async () => {
    await start({ accessTokenTtl: 30, refreshTokenTtl: 60 });
    const key = `${prefix}{u:ttl}`;
    await auth.generateTokens({ id: 'ttl' });
    const first = await client.pttl(key);
    expect(first).toBeGreaterThan(55_000);
    // A later login whose session ends sooner (a lone 5 s access token) does not shorten the key.
    await auth.createAccessToken({ id: 'ttl' }, { lifetime: 5 });
    expect(await client.pttl(key)).toBeGreaterThan(55_000);
  });

  it('caps live sessions per user, ending the oldest', async () => {
    await start({ maxSessionsPerUser: 3 });
    const pairs = [];
    for (let i = 0; i < 5; i++) {
      pairs.push(await auth.generateTokens({ id: 7 }, { userAgent: `device-${i}` }));
      await sleep(3);
    }
    const sessions = await auth.listSessions(7);
    expect(sessions.map((s) => s.userAgent)).toEqual(['device-2', 'device-3', 'device-4']);
    expect(await auth.checkRefreshToken(pairs[0]!.refresh_token)).toBe(false);
    expect(await auth.checkRefreshToken(pairs[4]!.refresh_token)).toBe(true);
  });

  it('bounds stored metadata: a huge user agent becomes a short label', async () => {
    await start();
    await auth.generateTokens({ id: 8 }, { userAgent: 'u|a'.repeat(10_000), ip: '1.2.3.4|evil' });
    const [session] = await auth.listSessions(8);
    expect(session!.userAgent!.length).toBeLessThanOrEqual(32);
    expect(session!.ip).toBe('1.2.3.4evil');
  });
});
