import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer, type Socket } from 'node:net';
import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../../examples/basic/app.js';
import {
  type Auth,
  AuthConfigError,
  type AuthError,
  type AuthOptions,
  createAuth,
  JwksUnavailableError,
  createVerifier,
  type KeyConfig,
  type Verifier,
  type VerifierOptions,
} from '../../src/index.js';
import { harnessRedisUrl, uniquePrefix } from '../helpers/auth.js';
import { decodeSegment, ecKeys, forgeAsymmetric, rsaKeys, SECRET } from '../helpers/forge.js';
import { call, serve } from '../helpers/http.js';
import { keyFor, verifyOnly } from '../helpers/keys.js';

const alice = { username: 'alice', password: 'wonderland' };
const issuer = 'https://auth.example.test';
const audience = 'orders';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/**
 * The auth service: the example app plus `auth.jwks()`, on a fixed URL for the test's life.
 * `rotate` swaps in a new Auth (a deploy) behind the same URL; `jwksRequests` counts fetches.
 */
interface AuthService {
  url: string;
  jwksUri: string;
  auth: Auth;
  jwksRequests: number;
  rotate(keys: KeyConfig[]): Promise<void>;
  close(): Promise<void>;
}

async function authService(
  keys: KeyConfig[],
  options: Partial<AuthOptions> = {},
): Promise<AuthService> {
  const keyPrefix = uniquePrefix();
  const make = (ring: KeyConfig[]) => {
    const auth = createAuth({
      keys: ring,
      redis: harnessRedisUrl(),
      keyPrefix,
      issuer,
      audience,
      userFields: ['role'],
      ...options,
    });
    const app = new Koa();
    app.use(auth.jwks());
    for (const middleware of createApp(auth).middleware) app.use(middleware);
    return { auth, handle: app.callback() };
  };
  let current = make(keys);
  const retired: Auth[] = [];
  const service = { auth: current.auth, jwksRequests: 0 } as AuthService;
  const server = createHttpServer((req, res) => {
    if (req.url?.startsWith('/.well-known/jwks.json')) service.jwksRequests++;
    void current.handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  let open = true;
  Object.assign(service, {
    url,
    jwksUri: `${url}/.well-known/jwks.json`,
    async rotate(ring: KeyConfig[]) {
      retired.push(current.auth);
      current = make(ring);
      service.auth = current.auth;
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (!open) return resolve();
        open = false;
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
  cleanup.push(async () => {
    await service.close();
    for (const auth of [...retired, current.auth]) await auth.close();
  });
  return service;
}

/** A resource service that trusts the auth service through its JWKS. */
async function resourceService(
  options: VerifierOptions,
): Promise<{ verifier: Verifier; url: string }> {
  const verifier = createVerifier({ issuer, audience, ...options });
  const app = new Koa();
  app.use(async (ctx, next) => {
    if (ctx.path === '/optional') {
      await verifier.getData()(ctx, async () => {
        ctx.body = { user: ctx.state.user?.sub ?? null };
      });
      return;
    }
    await next();
  });
  app.use(verifier.requireAuth());
  app.use((ctx) => {
    ctx.body = { sub: ctx.state.user.sub, role: (ctx.state.user as { role?: string }).role };
  });
  const server = await serve(app);
  cleanup.push(() => server.close());
  return { verifier, url: server.url };
}

const login = async (service: AuthService) =>
  (await call(service.url, '/login', { body: alice })).body;

/** A well-formed ES256 access token signed by a stranger's key, naming any kid. */
const strangerKey = ecKeys('prime256v1').privateKey;
function foreignToken(kid: string): string {
  const now = Math.floor(Date.now() / 1000);
  return forgeAsymmetric(
    { alg: 'ES256', typ: 'at+jwt', kid },
    { sub: 'mallory', token_use: 'access', iat: now, exp: now + 60, iss: issuer, aud: audience },
    strangerKey,
    'sha256',
  );
}

/** The next `jwks_refresh` (or `jwks_error`) of a verifier. */
const nextLoad = (verifier: Verifier) =>
  new Promise<string>((resolve) => {
    verifier.on('jwks_refresh', () => resolve('refresh'));
    verifier.on('jwks_error', () => resolve('error'));
  });

describe('createVerifier: access tokens checked against a remote JWKS', () => {
  it('accepts the auth service’s access tokens (RS256 and ES256) and nothing else', async () => {
    const auth = await authService([keyFor('RS256'), verifyOnly(keyFor('ES256'))]);
    const { url, verifier } = await resourceService({ jwksUri: auth.jwksUri });
    await verifier.ready();
    const rs = await login(auth);
    expect(decodeSegment(rs.access_token, 0).alg).toBe('RS256');
    expect((await call(url, '/orders', { token: rs.access_token })).body).toEqual({
      sub: '1',
      role: 'admin',
    });

    const other = createAuth({ keys: [keyFor('ES256')], issuer, audience });
    cleanup.push(() => other.close());
    const strangers = await other.generateTokens({ id: 1 });
    const refused = await call(url, '/orders', { token: strangers.access_token });
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('token_invalid');

    const cases: [string | undefined, string][] = [
      [undefined, 'token_missing'],
      [rs.refresh_token, 'token_invalid'],
      ['not-a-jwt', 'token_invalid'],
      [foreignToken(decodeSegment(rs.access_token, 0).kid as string), 'token_invalid'],
    ];
    for (const [token, error] of cases) {
      const res = await call(url, '/orders', token === undefined ? {} : { token });
      expect(res.status).toBe(401);
      expect(res.body.error).toBe(error);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
    expect((await call(url, '/optional', { token: rs.access_token })).body).toEqual({ user: '1' });
    expect((await call(url, '/optional', { token: 'junk' })).body).toEqual({ user: null });
  });

  it('checks issuer and audience', async () => {
    const auth = await authService([keyFor('ES256')]);
    const { url: wrongAudience, verifier: a } = await resourceService({
      jwksUri: auth.jwksUri,
      audience: 'billing',
    });
    const { url: wrongIssuer, verifier: b } = await resourceService({
      jwksUri: auth.jwksUri,
      issuer: 'https://evil.test',
    });
    await Promise.all([a.ready(), b.ready()]);
    const { access_token } = await login(auth);
    expect((await call(wrongAudience, '/x', { token: access_token })).status).toBe(401);
    expect((await call(wrongIssuer, '/x', { token: access_token })).status).toBe(401);
  });

  it('accepts any strategy of the auth service, or only those in `strategies`', async () => {
    const auth = await authService([keyFor('ES256')]);
    const any = await resourceService({ jwksUri: auth.jwksUri });
    const onlyRedis = await resourceService({ jwksUri: auth.jwksUri, strategies: ['redis'] });
    await Promise.all([any.verifier.ready(), onlyRedis.verifier.ready()]);
    const { access_token: redis } = await login(auth);
    // The stateless strategy's token, which the service's default requireAuth() refuses.
    const stateless = await auth.auth.createAccessToken({ id: 1 }, { strategy: 'jwt' });
    expect(decodeSegment(stateless, 1).stg).toBe('jwt');
    for (const token of [redis, stateless])
      expect((await call(any.url, '/x', { token })).status).toBe(200);
    expect((await call(onlyRedis.url, '/x', { token: redis })).status).toBe(200);
    const refused = await call(onlyRedis.url, '/x', { token: stateless });
    expect([refused.status, refused.body.error]).toEqual([401, 'token_invalid']);
    await expect(onlyRedis.verifier.verify(stateless)).rejects.toMatchObject({
      code: 'token_invalid',
    });
  });

  it("puts its realm into the challenge of verify()'s rejections, as its middlewares do", async () => {
    const auth = await authService([keyFor('ES256')]);
    const { url, verifier } = await resourceService({ jwksUri: auth.jwksUri, realm: 'api' });
    await verifier.ready();
    const challenge = 'Bearer realm="api", error="invalid_token"';
    const rejected = (await verifier.verify('junk').catch((e: unknown) => e)) as AuthError;
    expect([rejected.code, rejected.headers['WWW-Authenticate']]).toEqual([
      'token_invalid',
      challenge,
    ]);
    const res = await call(url, '/x', { token: 'junk' });
    expect([res.status, res.headers.get('www-authenticate')]).toEqual([401, challenge]);
    expect((await verifier.verify((await login(auth)).access_token)).sub).toBe('1');
    // getData(token) verifies, as auth.getData(token) does (it was refused as an unknown option).
    const token = (await login(auth)).access_token;
    expect((await verifier.getData(token)).sub).toBe('1');
    const getData = verifier.getData.bind(verifier) as (...args: unknown[]) => Promise<unknown>;
    await expect(getData(token, {})).rejects.toThrow(/takes a token, or middleware options, alone/);
    expect(await getData(token, undefined)).toMatchObject({ sub: '1' });
    for (const [token, code] of [
      ['junk', 'token_invalid'],
      [undefined, 'token_missing'],
      [null, 'token_missing'],
    ] as const) {
      const error = (await verifier.getData(token as never).catch((e: unknown) => e)) as AuthError;
      expect([error.code, error.headers['WWW-Authenticate']], String(token)).toEqual([
        code,
        code === 'token_missing' ? 'Bearer realm="api"' : challenge,
      ]);
    }
  });

  it('has no login, refresh or session helpers: they reject with strategy_unsupported', async () => {
    const auth = await authService([keyFor('ES256')]);
    const verifier = createVerifier({ jwksUri: auth.jwksUri });
    const { refresh_token } = await login(auth);
    for (const attempt of [
      verifier.generateTokens({ id: 1 }),
      verifier.refreshTokens(refresh_token),
      verifier.checkRefreshToken(refresh_token),
      verifier.invalidateRefreshToken(refresh_token),
      verifier.revokeAllSessions(1),
      verifier.listSessions(1),
      verifier.revokeSession(1, 'x'),
    ]) {
      await expect(attempt).rejects.toMatchObject({
        code: 'strategy_unsupported',
        message: /verifier only checks access tokens/,
      });
    }
    await verifier.ready();
  });

  it('validates its options once, and createAuth points jwksUri users to it', () => {
    const bad: [unknown, string][] = [
      [{}, 'jwksUri'],
      [{ jwksUri: 'not a url' }, 'jwksUri'],
      [{ jwksUri: 'file:///etc/passwd' }, 'jwksUri'],
      [{ jwksUri: 'https://u:p@auth.test/jwks' }, 'jwksUri'],
      [{ jwksUri: 'https://auth.test/jwks', algorithms: ['HS256'] }, 'algorithms'],
      [{ jwksUri: 'https://auth.test/jwks', cooldown: 0 }, 'cooldown'],
      [{ jwksUri: 'https://auth.test/jwks', timeout: 'soon' }, 'timeout'],
      [{ jwksUri: 'https://auth.test/jwks', leeway: -1 }, 'leeway'],
      [{ jwksUri: 'https://auth.test/jwks', secret: SECRET }, 'secret'],
      [{ jwksUri: 'https://auth.test/jwks', strategies: [] }, 'strategies'],
      [{ jwksUri: 'https://auth.test/jwks', strategies: 'redis' }, 'strategies'],
      [{ jwksUri: 'https://auth.test/jwks', strategies: [''] }, 'strategies'],
    ];
    for (const [options, option] of bad) {
      let error: unknown;
      try {
        createVerifier(options as VerifierOptions);
      } catch (caught) {
        error = caught;
      }
      expect(error, JSON.stringify(options)).toBeInstanceOf(AuthConfigError);
      expect((error as AuthConfigError).option).toBe(option);
    }
    expect(() => createAuth({ jwksUri: 'https://auth.test/jwks' } as never)).toThrow(
      /createVerifier/,
    );
  });

  it('refuses JWKS keys with private parts, without alg, with an alg that does not fit, or RSA under 2048 bits', async () => {
    const good = keyFor('ES256', { kid: 'good' });
    const leaked = ecKeys('prime256v1');
    const rsa1024 = rsaKeys(1024);
    const p384 = ecKeys('secp384r1');
    const jwk = (key: { export(o: { format: 'jwk' }): object }) => key.export({ format: 'jwk' });
    const auth = await authService([good]);
    const served = JSON.parse((await call(auth.url, '/.well-known/jwks.json')).text) as {
      keys: object[];
    };
    const set = {
      keys: [
        { ...jwk(leaked.privateKey), kid: 'leaked', alg: 'ES256', use: 'sig' },
        { ...jwk(leaked.publicKey), kid: 'no-alg', use: 'sig' },
        { ...jwk(p384.publicKey), kid: 'wrong-curve', alg: 'ES256' },
        { ...jwk(leaked.publicKey), kid: 'rs-on-ec', alg: 'RS256' },
        { ...jwk(rsa1024.publicKey), kid: 'small', alg: 'RS256' },
        { kty: 'oct', k: randomBytes(32).toString('base64url'), kid: 'hmac', alg: 'HS256' },
        { ...jwk(p384.publicKey), kid: 'encryption', alg: 'ES384', use: 'enc' },
        ...served.keys,
      ],
    };
    const app = new Koa();
    app.use((ctx) => {
      ctx.body = set;
    });
    const jwksServer = await serve(app);
    cleanup.push(() => jwksServer.close());
    const verifier = createVerifier({ jwksUri: `${jwksServer.url}/jwks.json`, issuer, audience });
    const report = await new Promise<{
      kids: string[];
      rejected: { kid?: string; reason: string }[];
    }>((resolve) => verifier.on('jwks_refresh', resolve));
    expect(report.kids).toEqual(['good']);
    expect(Object.fromEntries(report.rejected.map((r) => [r.kid, r.reason]))).toMatchObject({
      leaked: expect.stringMatching(/private/),
      'no-alg': expect.stringMatching(/no "alg"/),
      'wrong-curve': expect.stringMatching(/secp384r1|P-384|curve/),
      'rs-on-ec': expect.stringMatching(/RSA key/),
      small: expect.stringMatching(/2048 bits/),
      hmac: expect.stringMatching(/private or secret/),
    });
    // Even a token genuinely signed by the leaked key's pair is refused: that key was never loaded.
    const now = Math.floor(Date.now() / 1000);
    const signedByLeaked = forgeAsymmetric(
      { alg: 'ES256', typ: 'at+jwt', kid: 'leaked' },
      { sub: '1', token_use: 'access', iat: now, exp: now + 60, iss: issuer, aud: audience },
      leaked.privateKey,
      'sha256',
    );
    await expect(verifier.verify(signedByLeaked)).rejects.toMatchObject({ code: 'token_invalid' });
    expect((await verifier.verify((await login(auth)).access_token)).sub).toBe('1');
  });
});

describe('createVerifier when keys change or the JWKS host fails', () => {
  it('picks up a new signing key on its unknown kid, and drops a retired key after cacheMaxAge', async () => {
    const old = keyFor('ES256', { kid: 'old' });
    const next = keyFor('RS256', { kid: 'new' });
    const auth = await authService([old]);
    const { url, verifier } = await resourceService({
      jwksUri: auth.jwksUri,
      cooldown: 1,
      cacheMaxAge: 1,
    });
    await verifier.ready();
    const before = await login(auth);

    // The auth service signs with a key the verifier has never seen (step 1 of the recipe skipped).
    await auth.rotate([next, verifyOnly(old)]);
    const during = await login(auth);
    await new Promise((resolve) => setTimeout(resolve, 1100)); // let the 1 s cooldown pass
    expect((await call(url, '/x', { token: during.access_token })).status).toBe(200);
    expect((await call(url, '/x', { token: before.access_token })).status).toBe(200);

    // The old key is retired; past cacheMaxAge the next request refreshes the keys in the background.
    await auth.rotate([next]);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const loaded = nextLoad(verifier);
    await call(url, '/x', { token: during.access_token });
    expect(await loaded).toBe('refresh');
    expect((await call(url, '/x', { token: before.access_token })).status).toBe(401);
    expect((await call(url, '/x', { token: during.access_token })).status).toBe(200);
  });

  it('survives the JWKS host going down: cached keys verify, an unknown kid is a quick 401', async () => {
    const auth = await authService([keyFor('ES256')]);
    const { url, verifier } = await resourceService({
      jwksUri: auth.jwksUri,
      cooldown: 1,
      cacheMaxAge: 1,
    });
    await verifier.ready();
    const { access_token } = await login(auth);
    const errors: Error[] = [];
    verifier.on('jwks_error', ({ error }) => errors.push(error));
    await auth.close();

    await new Promise((resolve) => setTimeout(resolve, 1100)); // keys are stale and the cooldown is over
    for (let i = 0; i < 3; i++) {
      expect((await call(url, '/x', { token: access_token })).status).toBe(200);
      const unknown = await call(url, '/x', { token: foreignToken(`rotated-${i}`) });
      expect(unknown.status).toBe(401);
      expect(unknown.body.error).toBe('token_invalid');
    }
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]!.message).toMatch(/could not load the JWKS .* keeping the last good keys/);
    expect((await call(url, '/x', { token: access_token })).status).toBe(200);
  });

  it('bounds a JWKS host that accepts connections but never answers by the timeout', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    cleanup.push(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy();
          silent.close(() => resolve());
        }),
    );
    const { port } = silent.address() as { port: number };
    const verifier = createVerifier({
      jwksUri: `http://127.0.0.1:${port}/jwks.json`,
      timeout: 200,
      cooldown: 1,
    });
    // The reason is in the error itself: the jwks_error event had no listener yet.
    const error = (await verifier.ready().catch((e: unknown) => e)) as Error;
    // An outage, not a misconfiguration: a start-up may retry it.
    expect(error).toBeInstanceOf(JwksUnavailableError);
    expect(error).not.toBeInstanceOf(AuthConfigError);
    expect(error.message).toMatch(/JWKS host did not answer: .+no answer within 200 ms/);
    expect(error.cause).toBeInstanceOf(Error);
    // No keys were ever loaded: every token is refused with a 401-class error, none hangs.
    await expect(verifier.verify(foreignToken('any'))).rejects.toMatchObject({
      code: 'token_invalid',
      status: 401,
    });
  });

  it('tells a JWKS host that does not answer (ready() rejects with JwksUnavailableError) from a JWKS that is wrong (AuthConfigError)', async () => {
    // A port nothing listens on: connection refused.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port: refusedPort } = closed.address() as { port: number };
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    // A host that answers each path with a status of its own.
    const answering = createHttpServer((req, res) => {
      const status = Number(req.url?.slice(1, 4));
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(status === 200 ? '{"no":"keys"}' : '{}');
    });
    await new Promise<void>((resolve) => answering.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => answering.close(() => resolve())));
    const { port } = answering.address() as { port: number };
    const outcome = async (jwksUri: string) => {
      const verifier = createVerifier({ jwksUri, cooldown: 1, timeout: 1000 });
      const events: boolean[] = [];
      verifier.on('jwks_error', ({ unreachable }) => events.push(unreachable));
      const error = (await verifier.ready().catch((e: unknown) => e)) as Error & { code: string };
      return [error.constructor.name, error.code, events[0]];
    };
    const unavailable = ['JwksUnavailableError', 'jwks_unavailable', true];
    const wrong = ['AuthConfigError', 'invalid_option', false];
    expect(await outcome(`http://127.0.0.1:${refusedPort}/jwks.json`)).toEqual(unavailable);
    for (const status of [500, 503, 429, 408])
      expect(await outcome(`http://127.0.0.1:${port}/${status}`), String(status)).toEqual(
        unavailable,
      );
    for (const status of [404, 403, 200])
      expect(await outcome(`http://127.0.0.1:${port}/${status}`), String(status)).toEqual(wrong);

    // A certificate nothing vouches for (self-signed, made here by openssl): no retry mends it.
    const dir = mkdtempSync(join(tmpdir(), 'kjr-jwks-tls-'));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
      ].concat(
        ['-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1'],
        ['-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
      ),
      { stdio: 'pipe', timeout: 60_000 },
    );
    const tls = createHttpsServer(
      { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) },
      (_req, res) => res.end('{"keys":[]}'),
    );
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => tls.close(() => resolve())));
    const { port: tlsPort } = tls.address() as { port: number };
    expect(await outcome(`https://127.0.0.1:${tlsPort}/jwks.json`)).toEqual(wrong);
  });

  it('starts while the JWKS host is down and recovers when it comes up', async () => {
    const auth = await authService([keyFor('ES256')]);
    const { access_token } = await login(auth);
    const jwksUri = auth.jwksUri;
    await auth.close();
    const { url, verifier } = await resourceService({ jwksUri, cooldown: 1 });
    await expect(verifier.ready()).rejects.toThrow();
    expect((await call(url, '/x', { token: access_token })).status).toBe(401);

    // The same key, served again on the same port.
    const port = Number(new URL(jwksUri).port);
    const app = new Koa();
    app.use(auth.auth.jwks());
    const server = await new Promise<Server>((resolve) => {
      const s = app.listen(port, '127.0.0.1', () => resolve(s));
    });
    cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect((await call(url, '/x', { token: access_token })).status).toBe(200);
  });

  // 30 s: the default, no refetch fits in the test; 1 s: refetches happen, one per second at most.
  it.each([30, 1])(
    '1000 requests with random kids cause a bounded number of JWKS fetches while valid tokens keep working (cooldown %i s)',
    async (cooldown) => {
      const auth = await authService([keyFor('ES256')]);
      const { url, verifier } = await resourceService({ jwksUri: auth.jwksUri, cooldown });
      await verifier.ready();
      const { access_token } = await login(auth);
      const started = Date.now();
      const statuses = { valid: [] as number[], random: [] as number[] };
      const jobs = Array.from({ length: 1100 }, (_, i) => i);
      const worker = async () => {
        for (let i = jobs.shift(); i !== undefined; i = jobs.shift()) {
          if (i % 11 === 0)
            statuses.valid.push((await call(url, '/x', { token: access_token })).status);
          else
            statuses.random.push(
              (
                await call(url, '/x', {
                  token: foreignToken(randomBytes(12).toString('base64url')),
                })
              ).status,
            );
        }
      };
      await Promise.all(Array.from({ length: 20 }, worker));
      const elapsed = (Date.now() - started) / 1000;

      expect(statuses.random).toHaveLength(1000);
      expect(statuses.random.every((s) => s === 401)).toBe(true);
      expect(statuses.valid).toHaveLength(100);
      expect(statuses.valid.every((s) => s === 200)).toBe(true);
      // One fetch at start-up, then at most one per cooldown however many unknown kids arrive.
      const bound = 2 + Math.floor(elapsed / cooldown);
      expect(auth.jwksRequests).toBeLessThanOrEqual(bound);
      expect(verifier.jwksFetches).toBe(auth.jwksRequests);
    },
  );
});
