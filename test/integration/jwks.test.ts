import { calculateJwkThumbprint, createRemoteJWKSet, errors as joseErrors, jwtVerify } from 'jose';
import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../../examples/basic/app.js';
import {
  type Algorithm,
  type Auth,
  type AuthOptions,
  createAuth,
  type KeyConfig,
} from '../../src/index.js';
import { harnessRedisUrl, uniquePrefix } from '../helpers/auth.js';
import { decodeSegment, pssKeys } from '../helpers/forge.js';
import { call, serve, type Served } from '../helpers/http.js';
import { keyFor, verifyOnly } from '../helpers/keys.js';

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
    expect(() => auth.jwks({ maxAge: -1 })).toThrow(/maxAge/);
    const hsOnly = createAuth({ keys: [keyFor('HS256')] });
    expect(() => hsOnly.jwks()).toThrow(/nothing to publish/);
    await hsOnly.close();
  });
});

describe('an independent verifier (jose) accepts our access tokens through our JWKS', () => {
  const issuer = 'https://auth.example.test';
  const audience = 'api';

  it.each(['RS256', 'ES256', 'PS256', 'ES384', 'RS512'] as Algorithm[])('%s', async (algorithm) => {
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
