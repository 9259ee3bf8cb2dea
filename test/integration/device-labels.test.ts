import { afterEach, describe, expect, it } from 'vitest';
import { type Auth, createAuth, redisStore } from '../../src/index.js';
import { redisClient, testAuth, type TestRedis, uniquePrefix } from '../helpers/auth.js';
import { SECRET } from '../helpers/forge.js';
import { call, serve, type Served } from '../helpers/http.js';
import { webApp } from '../helpers/web.js';

/** Sessions list a device label, and Redis keeps the label, never the raw user agent. */

const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';
const IPHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';

let auth: Auth | undefined;
let server: Served | undefined;
let client: TestRedis | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
  await auth?.close();
  auth = undefined;
  client?.disconnect();
  client = undefined;
});

describe('device labels in the session list', () => {
  it('GET /auth/sessions shows "Firefox on Linux" and "Safari on iOS", and Redis holds no user agent', async () => {
    const keyPrefix = uniquePrefix();
    auth = testAuth({ keyPrefix });
    server = await serve(webApp(auth));
    const credentials = { username: 'alice', password: 'wonderland' };
    const desktop = await call(server.url, '/auth/login', {
      body: credentials,
      headers: { 'user-agent': FIREFOX },
    });
    await call(server.url, '/auth/login', { body: credentials, headers: { 'user-agent': IPHONE } });
    const list = await call(server.url, '/auth/sessions', { token: desktop.body.access_token });
    expect(list.status).toBe(200);
    expect(
      list.body.map((s: { userAgent: string; device: unknown; current: boolean }) => [
        s.userAgent,
        s.device,
        s.current,
      ]),
    ).toEqual([
      [
        'Firefox on Linux',
        { label: 'Firefox on Linux', browser: 'Firefox', os: 'Linux', type: 'desktop' },
        true,
      ],
      [
        'Safari on iOS',
        { label: 'Safari on iOS', browser: 'Safari', os: 'iOS', type: 'mobile' },
        false,
      ],
    ]);

    client = redisClient();
    // The default binary record keeps the label as codes: one 33-byte field per session.
    const stored = Object.values(await client.hgetallBuffer(`${keyPrefix}{u:1}`));
    expect(stored.map((value) => value.length)).toEqual([33, 33]);
    expect(Buffer.concat(stored).toString('latin1')).not.toMatch(/Mozilla|Gecko/);
  });

  it('the text record keeps the label, not the user agent', async () => {
    const keyPrefix = uniquePrefix();
    auth = testAuth({ keyPrefix, recordFormat: 'text' });
    await auth.generateTokens({ id: 'text' }, { ip: '203.0.113.7', userAgent: FIREFOX });
    client = redisClient();
    const stored = Object.values(await client.hgetall(`${keyPrefix}{u:text}`)).join('\n');
    expect(stored).toContain('Firefox|Linux|desktop');
    expect(stored).not.toContain('Mozilla');
    expect(stored).not.toContain('Gecko');
  });

  it('labels sessions recorded with a raw user agent (before labels) when listing them', async () => {
    client = redisClient();
    const store = redisStore(client, { keyPrefix: uniquePrefix() });
    const now = Date.now();
    // What a store written by the previous version holds: the user agent itself.
    await store.create(
      '5',
      {
        sessionId: 'AAAAAAAAAAAAAAAA',
        jti: crypto.randomUUID(),
        now,
        expiresAt: now + 60_000,
        ip: '',
        userAgent: FIREFOX,
      },
      0,
    );
    auth = createAuth({ secret: SECRET, store });
    const [session] = await auth.listSessions(5);
    expect(session).toMatchObject({
      userAgent: 'Firefox on Linux',
      device: { browser: 'Firefox', os: 'Linux', type: 'desktop' },
    });
  });
});
