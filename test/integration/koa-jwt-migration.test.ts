import { createSecretKey, generateKeyPairSync } from 'node:crypto';
import jwt from 'jsonwebtoken';
import Koa from 'koa';
import koaJwt from 'koa-jwt';
import { afterEach, describe, expect, it } from 'vitest';
import { createMigratingApp } from '../../examples/koa-jwt-migration/app.js';
import {
  type Auth,
  AuthConfigError,
  koaJwtStrategy,
  type KoaJwtStrategyOptions,
  UnsupportedError,
} from '../../src/index.js';
import { testAuth } from '../helpers/auth.js';
import { ecKeys, forgeHmac, rsaKeys } from '../helpers/forge.js';
import { call, serve, type Served } from '../helpers/http.js';

/**
 * examples/koa-jwt-migration: tokens a koa-jwt app issued keep working until the window ends,
 * read-only, while logins hand out the new tokens. Against real koa-jwt and a real Redis.
 */

const OLD_SECRET = 'the-secret-koa-jwt-used-in-production';
const HOUR = 3600;

let auth: Auth;
let server: Served;
const extra: Served[] = [];

afterEach(async () => {
  await server?.close();
  for (const s of extra.splice(0)) await s.close();
  await auth?.close();
});

async function start(until = new Date(Date.now() + 30 * 24 * HOUR * 1000)): Promise<void> {
  auth = testAuth({ userFields: ['username', 'role'] });
  server = await serve(createMigratingApp(auth, { oldSecret: OLD_SECRET, until }));
}

/** A token as the koa-jwt app's login signed it. */
const legacyToken = (
  payload: object = { id: 1, username: 'alice' },
  options: jwt.SignOptions = { expiresIn: HOUR },
) => jwt.sign(payload, OLD_SECRET, options);

describe('migrating from koa-jwt', () => {
  it('accepts a token that the old koa-jwt middleware accepts, with the payload on ctx.state.user', async () => {
    const token = legacyToken();
    // The old app, as it ran: koa-jwt itself accepts the token.
    const old = new Koa();
    old.use(koaJwt({ secret: OLD_SECRET })).use((ctx) => {
      ctx.body = ctx.state.user;
    });
    const oldServer = await serve(old);
    extra.push(oldServer);
    const before = await call(oldServer.url, '/', { token });
    expect(before.status).toBe(200);

    await start();
    const after = await call(server.url, '/me', { token });
    expect(after.status).toBe(200);
    // The same claims as before, plus `sub` (the id as a string) and the fields requireAuth promises.
    expect(after.body).toEqual({ ...before.body, sub: '1', token_use: 'access' });
    expect((await call(server.url, '/token', { token })).body).toEqual({ length: token.length });
  });

  it('gives new logins the new tokens, which work on the same routes and end at logout', async () => {
    await start();
    const login = await call(server.url, '/auth/login', {
      body: { username: 'alice', password: 'wonderland' },
    });
    expect(login.status).toBe(200);
    const { access_token, refresh_token } = login.body as {
      access_token: string;
      refresh_token: string;
    };
    // Not signed with the old secret: nothing new comes from the old system.
    expect(() => jwt.verify(access_token, OLD_SECRET)).toThrow();
    const me = await call(server.url, '/me', { token: access_token });
    expect([me.status, me.body]).toEqual([200, expect.anything()]);
    expect(me.body).toMatchObject({ sub: '1', username: 'alice', role: 'admin' });
    expect(me.body.sid).toEqual(expect.any(String));
    // The new tokens keep their session check: after logout the access token is refused.
    await call(server.url, '/auth/logout', { body: { refresh_token } });
    const revoked = await call(server.url, '/me', { token: access_token });
    expect(revoked.status).toBe(401);
    expect(revoked.body.error).toBe('token_revoked');
    // A refresh token is no access token, on either path.
    expect((await call(server.url, '/me', { token: refresh_token })).status).toBe(401);
  });

  it('refuses koa-jwt tokens after the window, whatever their exp, and tokens without exp until then', async () => {
    const forever = legacyToken({ id: 2, username: 'bob' }, {}); // koa-jwt apps often set no exp
    await start();
    expect((await call(server.url, '/me', { token: forever })).status).toBe(200);
    await server.close();
    await auth.close();

    await start(new Date(Date.now() - 1000));
    for (const token of [forever, legacyToken()]) {
      const res = await call(server.url, '/me', { token });
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('token_expired');
    }
  });

  it('takes HS384 and HS512 tokens with the same secret, as koa-jwt without `algorithms` did', async () => {
    const old = new Koa();
    old.use(koaJwt({ secret: OLD_SECRET })).use((ctx) => {
      ctx.body = ctx.state.user;
    });
    const oldServer = await serve(old);
    extra.push(oldServer);
    await start();
    for (const algorithm of ['HS384', 'HS512'] as const) {
      const token = legacyToken({ id: 1, username: 'alice' }, { expiresIn: HOUR, algorithm });
      expect((await call(oldServer.url, '/', { token })).status, algorithm).toBe(200);
      const res = await call(server.url, '/me', { token });
      expect([res.status, res.body.sub], algorithm).toEqual([200, '1']);
    }
  });

  it('refuses a wrong secret, alg none, another algorithm, an expired token and a token naming no user', async () => {
    await start();
    const none = jwt.sign({ id: 1 }, '', { algorithm: 'none' });
    const hs256 = { alg: 'HS256', typ: 'JWT' };
    const later = Math.floor(Date.now() / 1000) + HOUR;
    const [header, payload] = legacyToken().split('.');
    const cases: [string, string][] = [
      [jwt.sign({ id: 1 }, 'another-secret-entirely-32-bytes!!'), 'token_invalid'],
      [none, 'token_invalid'],
      [`${header}.${payload}.`, 'token_invalid'],
      // Another kind of key's algorithm (jsonwebtoken, koa-jwt's, refuses it with a secret too).
      [jwt.sign({ id: 1 }, rsaKeys().privateKey, { algorithm: 'RS256' }), 'token_invalid'],
      [legacyToken({ id: 1, exp: Math.floor(Date.now() / 1000) - 60 }, {}), 'token_expired'],
      [legacyToken({ username: 'nobody' }), 'token_invalid'],
      ['not.a.token', 'token_invalid'],
      // Signed with the old secret, yet refused as the library's own tokens would be: koa-jwt let
      // these through (SECURITY.md: non-number time claims; headers that point elsewhere).
      [forgeHmac(hs256, { id: 1, iat: 'not-a-number', exp: later }, OLD_SECRET), 'token_invalid'],
      [forgeHmac({ ...hs256, crit: ['x'] }, { id: 1, exp: later }, OLD_SECRET), 'token_invalid'],
      [
        forgeHmac({ ...hs256, jku: 'https://x/' }, { id: 1, exp: later }, OLD_SECRET),
        'token_invalid',
      ],
    ];
    for (const [token, error] of cases) {
      const res = await call(server.url, '/me', { token });
      expect([res.status, res.body.error]).toEqual([401, error]);
    }
  });

  it('keeps the library’s own claims its own: a legacy sid or token_use does not pass through', async () => {
    await start();
    const token = legacyToken({ id: 3, sid: 'forged-session', token_use: 'refresh', jti: 'x' });
    const res = await call(server.url, '/me', { token });
    expect(res.status).toBe(200);
    expect(res.body.sid).toBeUndefined();
    expect(res.body.jti).toBeUndefined();
    expect(res.body.token_use).toBe('access');
  });

  it('passthrough → getData: a good token sets the user, a bad one leaves the request anonymous', async () => {
    await start();
    expect((await call(server.url, '/greeting', { token: legacyToken() })).body).toEqual({
      hello: 'alice',
    });
    const anonymous = await call(server.url, '/greeting', { token: 'garbage' });
    expect([anonymous.status, anonymous.body]).toEqual([200, { hello: 'stranger' }]);
    expect((await call(server.url, '/greeting')).body).toEqual({ hello: 'stranger' });
  });

  it('refuses to issue tokens, and refuses bad options at start-up', async () => {
    await start();
    await expect(auth.generateTokens({ id: 1 }, { strategy: 'koa-jwt' })).rejects.toBeInstanceOf(
      UnsupportedError,
    );
    expect(() => auth.strategies.get('koa-jwt').writeToken({ id: 1 }, 'access')).toThrow(
      UnsupportedError,
    );
    const until = new Date(Date.now() + HOUR * 1000);
    const pem = { type: 'spki', format: 'pem' } as const;
    const rsaPublic = rsaKeys().publicKey.export(pem);
    const ecPublic = ecKeys('prime256v1').publicKey.export(pem);
    for (const [options, option] of [
      [{ until }, 'koaJwtStrategy.secret'],
      [{ secret: '', until }, 'koaJwtStrategy.secret'],
      [{ secret: OLD_SECRET }, 'koaJwtStrategy.until'],
      [{ secret: OLD_SECRET, until: new Date('nope') }, 'koaJwtStrategy.until'],
      // A PEM pasted with literal \n would verify as an HMAC secret anyone with the public key knows.
      [{ secret: String(rsaPublic).replace(/\n/g, '\\n'), until }, 'koaJwtStrategy.secret'],
      [{ secret: OLD_SECRET, until, algorithms: ['none'] }, 'koaJwtStrategy.algorithms'],
      [{ secret: OLD_SECRET, until, algorithms: [] }, 'koaJwtStrategy.algorithms'],
      // A key that cannot verify the algorithms would refuse every old token with a 401.
      [{ secret: OLD_SECRET, until, algorithms: ['RS256'] }, 'koaJwtStrategy.algorithms'],
      // Left out, the algorithms are the key's (as jsonwebtoken's default): an Ed25519 key has none.
      [{ secret: generateKeyPairSync('ed25519').publicKey, until }, 'koaJwtStrategy.algorithms'],
      [{ secret: rsaPublic, until, algorithms: ['ES256'] }, 'koaJwtStrategy.algorithms'],
      // An EC key verifies its curve's one algorithm.
      [{ secret: ecPublic, until, algorithms: ['ES384'] }, 'koaJwtStrategy.algorithms'],
      // '' would turn the issuer check off; [] would refuse every token.
      [{ secret: OLD_SECRET, until, issuer: '' }, 'koaJwtStrategy.issuer'],
      [{ secret: OLD_SECRET, until, audience: [] }, 'koaJwtStrategy.audience'],
      [{ secret: OLD_SECRET, until, audience: ['a', 5] }, 'koaJwtStrategy.audience'],
      // koa-jwt's own signature: the payload would arrive as ctx, the token as undefined.
      [
        { secret: OLD_SECRET, until, isRevoked: async (_ctx: unknown, _d: unknown) => false },
        'koaJwtStrategy.isRevoked',
      ],
      // Accepted before, then a 500 at the first request with a new token.
      [{ secret: OLD_SECRET, until, primary: 5 }, 'koaJwtStrategy.primary'],
      [{ secret: OLD_SECRET, until, primary: {} }, 'koaJwtStrategy.primary'],
    ] as const) {
      let thrown: unknown;
      try {
        koaJwtStrategy(options as never);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(AuthConfigError);
      expect((thrown as AuthConfigError).option).toBe(option);
    }
  });

  it("koa-jwt's cookie: 'token' → cookie delivery reading the old cookie's name, once the prefix is off", async () => {
    const token = legacyToken();
    const me = async (cookies: { names: { access: string }; prefix?: boolean }, cookie: string) => {
      auth = testAuth({ tokenDelivery: 'cookie', cookies });
      auth.strategies.register(
        'koa-jwt',
        koaJwtStrategy({ secret: OLD_SECRET, until: new Date(Date.now() + HOUR * 1000) }),
      );
      const app = new Koa();
      app.use(auth.requireAuth({ strategy: 'koa-jwt' })).use((ctx) => {
        ctx.body = { sub: ctx.state.user.sub };
      });
      server = await serve(app);
      try {
        const res = await call(server.url, '/', { headers: { cookie } });
        return [res.status, res.body.error ?? res.body.sub];
      } finally {
        await server.close();
        await auth.close();
      }
    };
    // As the README's table says: the cookie the koa-jwt app set is read under its own name.
    expect(await me({ names: { access: 'token' }, prefix: false }, `token=${token}`)).toEqual([
      200,
      '1',
    ]);
    // With the prefix on (the default), the name read is __Host-token: the old cookie is not.
    expect(await me({ names: { access: 'token' } }, `token=${token}`)).toEqual([
      401,
      'token_missing',
    ]);
    expect(await me({ names: { access: 'token' } }, `__Host-token=${token}`)).toEqual([200, '1']);
  });

  it('takes the secret as koa-jwt did: a string, a Buffer or a KeyObject, of any length or size', async () => {
    auth = testAuth();
    const until = new Date(Date.now() + HOUR * 1000);
    const short = 'short';
    const { publicKey, privateKey } = rsaKeys();
    const small = rsaKeys(1024);
    const ec = ecKeys('prime256v1');
    const ec384 = ecKeys('secp384r1');
    const pem = { type: 'spki', format: 'pem' } as const;
    const secrets: [string, KoaJwtStrategyOptions, string][] = [
      ['buffer', { secret: Buffer.from(OLD_SECRET), until }, legacyToken()],
      ['keyobject', { secret: createSecretKey(Buffer.from(OLD_SECRET)), until }, legacyToken()],
      ['short', { secret: short, until }, jwt.sign({ id: 1 }, short)],
      [
        'rsa',
        { secret: publicKey, until, algorithms: ['RS256', 'PS256'] },
        jwt.sign({ id: 1 }, privateKey, { algorithm: 'RS256' }),
      ],
      // jsonwebtoken refuses a private KeyObject for verifying: its public half is used.
      [
        'private',
        { secret: privateKey, until, algorithms: ['RS256'] },
        jwt.sign({ id: 1 }, privateKey, { algorithm: 'RS256' }),
      ],
      // No size rule: koa-jwt verified with an RSA key of any size, and so does this.
      [
        'rsa1024',
        { secret: small.publicKey.export(pem), until, algorithms: ['RS256'] },
        jwt.sign({ id: 1 }, small.privateKey, {
          algorithm: 'RS256',
          allowInsecureKeySizes: true,
        }),
      ],
      [
        'ec',
        { secret: ec.publicKey, until, algorithms: ['ES256'] },
        jwt.sign({ id: 1 }, ec.privateKey, { algorithm: 'ES256' }),
      ],
      // Without `algorithms`, what koa-jwt (jsonwebtoken 9) took with the key: every HS* for a
      // secret, RS* and PS* for RSA, the curve's ES* for EC.
      [
        'hs384',
        { secret: OLD_SECRET, until },
        jwt.sign({ id: 1 }, OLD_SECRET, { algorithm: 'HS384' }),
      ],
      [
        'hs512',
        { secret: OLD_SECRET, until },
        jwt.sign({ id: 1 }, OLD_SECRET, { algorithm: 'HS512' }),
      ],
      [
        'rs512',
        { secret: publicKey, until },
        jwt.sign({ id: 1 }, privateKey, { algorithm: 'RS512' }),
      ],
      [
        'ps384',
        { secret: publicKey, until },
        jwt.sign({ id: 1 }, privateKey, { algorithm: 'PS384' }),
      ],
      [
        'es384',
        { secret: ec384.publicKey, until },
        jwt.sign({ id: 1 }, ec384.privateKey, { algorithm: 'ES384' }),
      ],
      // koa-jwt took RegExp audiences.
      [
        'regexp-audience',
        { secret: OLD_SECRET, until, audience: [/^api:/] },
        jwt.sign({ id: 1, aud: 'api:orders' }, OLD_SECRET),
      ],
    ];
    for (const [name, options] of secrets) auth.strategies.register(name, koaJwtStrategy(options));
    for (const [name, , token] of secrets)
      expect(await auth.getData(token, { strategy: name }), name).toMatchObject({ sub: '1' });
  });

  it("honours koa-jwt's isRevoked and a custom subject", async () => {
    auth = testAuth();
    auth.strategies.register(
      'legacy',
      koaJwtStrategy({
        secret: OLD_SECRET,
        until: new Date(Date.now() + HOUR * 1000),
        subject: (p) => p.email as string,
        isRevoked: async (p) => {
          if (p.email === 'down@example.com') throw new Error('denylist database down');
          return p.email === 'banned@example.com';
        },
      }),
    );
    const app = new Koa();
    app.use(auth.requireAuth({ strategy: 'legacy' })).use((ctx) => {
      ctx.body = { sub: ctx.state.user.sub };
    });
    server = await serve(app);
    const ok = await call(server.url, '/', { token: legacyToken({ email: 'carol@example.com' }) });
    expect(ok.body).toEqual({ sub: 'carol@example.com' });
    const banned = await call(server.url, '/', {
      token: legacyToken({ email: 'banned@example.com' }),
    });
    expect([banned.status, banned.body.error]).toEqual([401, 'token_revoked']);
    // A denylist that cannot answer says nothing about the token: 503, retry, not a logout (nor
    // a 500 with the database's message).
    const down = await call(server.url, '/', { token: legacyToken({ email: 'down@example.com' }) });
    expect([down.status, down.body.error]).toEqual([503, 'store_unavailable']);
    expect(down.text).not.toContain('denylist database down');
  });
});
