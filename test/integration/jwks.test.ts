import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  createRemoteJWKSet,
  errors as joseErrors,
  exportJWK,
  type JSONWebKeySet,
  jwtVerify,
  SignJWT,
} from 'jose';
import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../../examples/basic/app.js';
import {
  type Algorithm,
  type Auth,
  type AuthOptions,
  createAuth,
  createVerifier,
  type KeyConfig,
} from '../../src/index.js';
import { harnessRedisUrl, uniquePrefix } from '../helpers/auth.js';
import { decodeSegment, forgeHmac, pssKeys, withSegment } from '../helpers/forge.js';
import { call, serve, type Served } from '../helpers/http.js';
import { keyFor, keyPairFor, verifyOnly } from '../helpers/keys.js';

const alice = { username: 'alice', password: 'wonderland' };
const PUBLIC_MEMBERS = new Set(['kty', 'kid', 'alg', 'use', 'n', 'e', 'crv', 'x', 'y']);
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'];

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** The example app with `auth.jwks()` in front of it, on a free port. */
async function authService(
  keys: KeyConfig[],
  options: Partial<AuthOptions> = {},
  jwksOptions?: Parameters<Auth['jwks']>[0],
): Promise<{ auth: Auth; server: Served }> {
  const auth = createAuth({
    keys,
    redis: harnessRedisUrl(),
    keyPrefix: uniquePrefix(),
    ...options,
  });
  const app = new Koa();
  app.use(auth.jwks(jwksOptions));
  for (const middleware of createApp(auth).middleware) app.use(middleware);
  const server = await serve(app);
  cleanup.push(async () => {
    await server.close();
    await auth.close();
  });
  return { auth, server };
}

describe('auth.jwks()', () => {
  it('publishes the public keys only, field by field: no secret, no private part, HS keys never', async () => {
    const secret = keyFor('HS512', { kid: 'hs', verifyOnly: true });
    // An RSA-PSS-typed key, which Node cannot export as JWK directly.
    const pss = pssKeys();
    const keys: KeyConfig[] = [
      keyFor('ES256'),
      verifyOnly(keyFor('RS256', { kid: 'rsa-old' })),
      secret,
      { algorithm: 'PS256', privateKey: pss.privateKey, verifyOnly: true },
      verifyOnly(keyFor('ES384')),
      verifyOnly(keyFor('RS512')),
    ];
    const { server } = await authService(keys);
    const res = await call(server.url, '/.well-known/jwks.json');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('cache-control')).toBe('public, max-age=300');
    expect(res.headers.get('etag')).toMatch(/^"[\w-]+"$/);

    expect(Object.keys(res.body)).toEqual(['keys']);
    const published = res.body.keys as Record<string, unknown>[];
    expect(published.map((k) => k.alg)).toEqual(['ES256', 'RS256', 'PS256', 'ES384', 'RS512']);
    for (const jwk of published) {
      for (const member of PRIVATE_MEMBERS) expect(jwk).not.toHaveProperty(member);
      for (const member of Object.keys(jwk))
        expect(PUBLIC_MEMBERS.has(member), `unexpected member ${member}`).toBe(true);
      expect(jwk.use).toBe('sig');
      expect(typeof jwk.kid).toBe('string');
      if (jwk.kty === 'RSA')
        expect(Object.keys(jwk).sort()).toEqual(['alg', 'e', 'kid', 'kty', 'n', 'use']);
      else expect(Object.keys(jwk).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
      // kid defaults to the RFC 7638 thumbprint, as an independent implementation computes it.
      if (jwk.kid !== 'rsa-old') expect(jwk.kid).toBe(await calculateJwkThumbprint(jwk as never));
    }
    expect(published.some((k) => k.kid === 'hs')).toBe(false);
    expect(res.text).not.toContain((secret.secret as Buffer).toString('base64url'));
    expect(res.text).not.toContain((secret.secret as Buffer).toString('base64'));
  });

  it('answers HEAD, revalidates with the ETag, and leaves other paths and methods to the app', async () => {
    const { server } = await authService([keyFor('ES256')]);
    const first = await call(server.url, '/.well-known/jwks.json');
    const head = await call(server.url, '/.well-known/jwks.json', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
    // fetch() would add `Cache-Control: no-cache` to a conditional request, which forbids a 304.
    const conditional = {
      'if-none-match': first.headers.get('etag')!,
      'cache-control': 'max-age=0',
    };
    const again = await call(server.url, '/.well-known/jwks.json', { headers: conditional });
    expect(again.status).toBe(304);
    expect(
      (await call(server.url, '/.well-known/jwks.json', { method: 'POST', body: {} })).status,
    ).toBe(404);
    expect((await call(server.url, '/login', { body: alice })).status).toBe(200);
  });

  it('takes another path and max-age, and refuses nonsense options and a ring with nothing to publish', async () => {
    const { auth, server } = await authService(
      [keyFor('RS256')],
      {},
      { path: '/keys', maxAge: 60 },
    );
    const res = await call(server.url, '/keys');
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('public, max-age=60');
    expect((await call(server.url, '/.well-known/jwks.json')).status).toBe(404);
    expect(() => auth.jwks({ path: 'keys' })).toThrow(/path/);
    // ctx.path has no query or fragment, and keeps escapes: these would never match a request.
    for (const path of ['/keys?v=1', '/keys#a', '/my keys', '/clés'])
      expect(() => auth.jwks({ path }), path).toThrow(/jwks\.path/);
    expect(() => auth.jwks({ path: '/v1/keys.json' })).not.toThrow();
    expect(() => auth.jwks({ maxAge: -1 })).toThrow(/maxAge/);
    const hsOnly = createAuth({ keys: [keyFor('HS256')] });
    expect(() => hsOnly.jwks()).toThrow(/nothing to publish/);
    await hsOnly.close();
  });
});

describe('an independent verifier (jose) accepts our access tokens through our JWKS', () => {
  const issuer = 'https://auth.example.test';
  const audience = 'api';

  it.each([
    'RS256',
    'ES256',
    'PS256',
    'ES384',
    'RS512',
    'PS384',
    'PS512',
    'ES512',
    'EdDSA',
  ] as Algorithm[])('%s', async (algorithm) => {
    const { server } = await authService([keyFor(algorithm)], {
      issuer,
      audience,
      userFields: ['role'],
    });
    const JWKS = createRemoteJWKSet(new URL(`${server.url}/.well-known/jwks.json`));
    const pair = (await call(server.url, '/login', { body: alice })).body;

    const { payload, protectedHeader } = await jwtVerify(pair.access_token, JWKS, {
      issuer,
      audience,
      typ: 'at+jwt',
      algorithms: [algorithm],
    });
    expect(payload).toMatchObject({
      sub: '1',
      role: 'admin',
      token_use: 'access',
      iss: issuer,
      aud: audience,
    });
    expect(protectedHeader).toMatchObject({
      alg: algorithm,
      kid: decodeSegment(pair.access_token, 0).kid,
    });
    // jose sees the kind split too: a refresh token is not an access token.
    await expect(
      jwtVerify(pair.refresh_token, JWKS, { issuer, audience, typ: 'at+jwt' }),
    ).rejects.toBeInstanceOf(joseErrors.JWTClaimValidationFailed);
  });

  it('finds the right key by kid during a rotation overlap', async () => {
    const old = keyFor('RS256', { kid: 'old' });
    const next = keyFor('ES256', { kid: 'new' });
    const keyPrefix = uniquePrefix();
    const before = await authService([old], { keyPrefix });
    const oldToken = (await call(before.server.url, '/login', { body: alice })).body.access_token;
    const during = await authService([next, verifyOnly(old)], { keyPrefix });
    const newToken = (await call(during.server.url, '/login', { body: alice })).body.access_token;
    const JWKS = createRemoteJWKSet(new URL(`${during.server.url}/.well-known/jwks.json`));
    expect((await jwtVerify(oldToken, JWKS)).protectedHeader.kid).toBe('old');
    expect((await jwtVerify(newToken, JWKS)).protectedHeader.kid).toBe('new');
  });
});

/** The algorithms signed and verified with node:crypto directly (jsonwebtoken lacks EdDSA). */
const DIRECT: Algorithm[] = ['PS384', 'PS512', 'ES512', 'EdDSA'];
/** For each, a neighbour it must not be confused with: same key type, another algorithm. */
const NEIGHBOUR: Record<string, Algorithm> = {
  PS384: 'PS512',
  PS512: 'RS512',
  ES512: 'ES384',
  EdDSA: 'ES256',
};

/** The same token with its signature's last bytes changed (a valid base64url spelling). */
function tampered(token: string): string {
  const signature = Buffer.from(token.split('.')[2]!, 'base64url');
  signature[signature.length - 1]! ^= 1;
  return withSegment(token, 2, signature.toString('base64url'));
}

const relabelled = (token: string, alg: string) =>
  withSegment(
    token,
    0,
    Buffer.from(JSON.stringify({ ...decodeSegment(token, 0), alg })).toString('base64url'),
  );

describe('PS384, PS512, ES512 and EdDSA, with jose as the independent party both ways', () => {
  const issuer = 'https://auth.example.test';
  const audience = 'api';

  it.each(DIRECT)(
    '%s: our tokens verify in jose with the JWKS we publish (createLocalJWKSet); tampered ones do not',
    async (algorithm) => {
      const { server } = await authService([keyFor(algorithm)], { issuer, audience });
      const published = (await call(server.url, '/.well-known/jwks.json')).body as JSONWebKeySet;
      const [jwk] = published.keys;
      expect(jwk).toMatchObject({ alg: algorithm, use: 'sig' });
      expect(jwk!.kid).toBe(await calculateJwkThumbprint(jwk!));
      const JWKS = createLocalJWKSet(published);
      const pair = (await call(server.url, '/login', { body: alice })).body;
      const { payload, protectedHeader } = await jwtVerify(pair.access_token, JWKS, {
        issuer,
        audience,
        typ: 'at+jwt',
        algorithms: [algorithm],
      });
      expect(payload).toMatchObject({ sub: '1', token_use: 'access' });
      expect(protectedHeader).toMatchObject({ alg: algorithm, kid: jwk!.kid });
      // The refresh token is signed the same way.
      expect((await jwtVerify(pair.refresh_token, JWKS, { typ: 'rt+jwt' })).payload.sub).toBe('1');

      const bad = tampered(pair.access_token);
      await expect(jwtVerify(bad, JWKS)).rejects.toBeInstanceOf(
        joseErrors.JWSSignatureVerificationFailed,
      );
      const refused = await call(server.url, '/me', { token: bad });
      expect(refused.status).toBe(401);
      expect(refused.body.error).toBe('token_invalid');
      expect((await call(server.url, '/me', { token: pair.access_token })).status).toBe(200);
    },
  );

  it.each(DIRECT)(
    '%s: tokens jose signs verify here through a remote JWKS and a configured key; forged, re-labelled, expired or foreign ones do not',
    async (algorithm) => {
      const pair = keyPairFor(algorithm);
      const kid = `jose-${algorithm}`;
      const publicJwk = { ...(await exportJWK(pair.publicKey)), kid, alg: algorithm, use: 'sig' };
      const app = new Koa();
      app.use((ctx) => {
        ctx.body = { keys: [publicJwk] };
      });
      const jwksServer = await serve(app);
      cleanup.push(() => jwksServer.close());
      const verifier = createVerifier({ jwksUri: `${jwksServer.url}/jwks.json`, issuer, audience });
      await verifier.ready();
      const auth = createAuth({
        keys: [keyFor('ES256'), { algorithm, kid, publicKey: pair.publicKey, verifyOnly: true }],
        issuer,
        audience,
      });
      cleanup.push(() => auth.close());
      const configured = auth.strategies.get('jwt');

      const now = Math.floor(Date.now() / 1000);
      const sign = (claims: Record<string, unknown> = {}, key = pair.privateKey, alg = algorithm) =>
        new SignJWT({
          sub: '42',
          token_use: 'access',
          stg: 'jwt',
          iss: issuer,
          aud: audience,
          iat: now,
          exp: now + 120,
          ...claims,
        })
          .setProtectedHeader({ alg, typ: 'at+jwt', kid })
          .sign(key);
      const code = async (token: string) => {
        const errors: unknown[] = [];
        await verifier.verify(token).catch((error: unknown) => errors.push(error));
        // readToken may throw at once rather than reject: wrap it.
        await (async () => configured.readToken(token, { checkSession: false }))().catch(
          (error: unknown) => errors.push(error),
        );
        expect(errors, 'both must refuse').toHaveLength(2);
        const codes = errors.map((error) => (error as { code?: string }).code);
        expect(codes[0]).toBe(codes[1]);
        return codes[0];
      };

      const token = await sign();
      expect((await verifier.verify(token)).sub).toBe('42');
      expect((await configured.readToken(token, { checkSession: false })).sub).toBe('42');

      expect(await code(tampered(token))).toBe('token_invalid');
      // The header names another algorithm: no key is pinned to it under this kid.
      for (const alg of [NEIGHBOUR[algorithm]!, 'HS256', 'none', 'None', 'Ed25519'])
        expect(await code(relabelled(token, alg)), alg).toBe('token_invalid');
      expect(await code(`${token.split('.').slice(0, 2).join('.')}.`)).toBe('token_invalid');
      // HS256 "signed" with the public key (as PEM or JWK text): the classic confusion.
      const pem = pair.publicKey.export({ format: 'pem', type: 'spki' }).toString();
      for (const secret of [pem, JSON.stringify(publicJwk)]) {
        const forged = forgeHmac(
          { alg: 'HS256', typ: 'at+jwt', kid },
          decodeSegment(token, 1),
          secret,
        );
        expect(await code(forged)).toBe('token_invalid');
      }
      // Signed by another key of the same type (a stranger), or by a key of the neighbour algorithm.
      expect(await code(await sign({}, keyPairFor(algorithm).privateKey))).toBe('token_invalid');
      const neighbour = NEIGHBOUR[algorithm]!;
      expect(await code(await sign({}, keyPairFor(neighbour).privateKey, neighbour))).toBe(
        'token_invalid',
      );
      // Claims are checked exactly as for every other algorithm.
      expect(await code(await sign({ exp: now - 60 }))).toBe('token_expired');
      expect(await code(await sign({ nbf: now + 600 }))).toBe('token_invalid');
      expect(await code(await sign({ iss: 'https://evil.test' }))).toBe('token_invalid');
      expect(await code(await sign({ aud: 'billing' }))).toBe('token_invalid');
      expect(await code(await sign({ exp: undefined }))).toBe('token_invalid');
      expect(await code(await sign({ token_use: 'refresh' }))).toBe('token_invalid');
    },
  );
});
