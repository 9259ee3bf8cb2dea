import { generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import { exportJWK, importJWK, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { ALGORITHMS, type Algorithm } from '../../../src/keys/algorithms.js';
import { importPublicJwk, PRIVATE_JWK_MEMBERS } from '../../../src/keys/jwk.js';
import {
  createKeyRing,
  createVerifyRing,
  jwkThumbprint,
  publicJwks,
} from '../../../src/keys/key-ring.js';
import { importJwks, MAX_JWKS_KEYS } from '../../../src/keys/remote-jwks.js';
import { TokenService } from '../../../src/tokens/token-service.js';
import { ecKeys, pssKeys, rsaKeys } from '../../helpers/forge.js';
import { keyFor, keyPairFor } from '../../helpers/keys.js';

const ASYMMETRIC = new Set(ALGORITHMS.filter((alg) => !alg.startsWith('HS')));
const jwkOf = (key: { export(o: { format: 'jwk' }): object }) =>
  key.export({ format: 'jwk' }) as Record<string, string>;

describe('publicJwks', () => {
  it('publishes every asymmetric key of the ring with public members only, and no HS key', () => {
    const ring = createKeyRing({
      keys: ALGORITHMS.map((alg, i) => keyFor(alg, { verifyOnly: i > 0 })),
    });
    const { keys } = publicJwks(ring);
    expect(keys.map((k) => k.alg)).toEqual([
      'RS256',
      'RS384',
      'RS512',
      'PS256',
      'PS384',
      'PS512',
      'ES256',
      'ES384',
      'ES512',
      'EdDSA',
    ]);
    for (const jwk of keys) {
      for (const member of PRIVATE_JWK_MEMBERS) expect(jwk).not.toHaveProperty(member);
      expect(jwk.use).toBe('sig');
      expect(jwk.kid).toBe(ring.find(jwk.kid, jwk.alg)?.kid);
    }
  });

  it('handles RSA-PSS-typed keys (which Node cannot export as JWK): same n and e, same thumbprint as a JWK library', async () => {
    // An unrestricted RSA-PSS key would fail inside jsonwebtoken at the first login; it is refused at start-up.
    const loose = generateKeyPairSync('rsa-pss', { modulusLength: 2048 });
    expect(() =>
      createKeyRing({ keys: [{ algorithm: 'PS256', privateKey: loose.privateKey }] }),
    ).toThrow(/must be restricted to sha256/);
    const { privateKey, publicKey } = pssKeys();
    const ring = createKeyRing({ keys: [{ algorithm: 'PS256', privateKey }] });
    const [jwk] = publicJwks(ring).keys;
    expect(Object.keys(jwk!).sort()).toEqual(['alg', 'e', 'kid', 'kty', 'n', 'use']);
    expect(jwk!.kid).toBe(jwkThumbprint(publicKey));
    // A PS256 token signed with the PSS key verifies with the published JWK in jose.
    const tokens = new TokenService({
      ring,
      accessTokenTtl: 60,
      refreshTokenTtl: 120,
      issuer: undefined,
      audience: undefined,
      leeway: 5,
      verifyCacheSize: 0,
    });
    const { token } = tokens.sign('access', { sub: '1' });
    expect(tokens.verify(token, 'access').sub).toBe('1');
    const key = await importJWK(jwk!, 'PS256');
    expect((await jwtVerify(token, key)).payload.sub).toBe('1');
  });
});

describe('importPublicJwk (keys read from a remote JWKS)', () => {
  const ec = ecKeys('prime256v1');

  it('accepts a public key with a fitting alg', async () => {
    const result = await importPublicJwk(
      { ...jwkOf(ec.publicKey), alg: 'ES256', kid: 'a', use: 'sig' },
      ASYMMETRIC,
    );
    expect(result).toMatchObject({ kid: 'a', algorithm: 'ES256' });
    expect(
      await importPublicJwk(
        { ...(await exportJWK(rsaKeys().publicKey)), alg: 'PS256' },
        ASYMMETRIC,
      ),
    ).toMatchObject({ kid: undefined, algorithm: 'PS256' });
  });

  it('refuses any JWK carrying a private or secret member, one by one', async () => {
    for (const member of PRIVATE_JWK_MEMBERS) {
      const result = await importPublicJwk(
        { ...jwkOf(ec.publicKey), alg: 'ES256', [member]: 'AAAA' },
        ASYMMETRIC,
      );
      expect(result).toEqual({ error: `carries private or secret key material ("${member}")` });
    }
    expect(
      await importPublicJwk({ ...jwkOf(rsaKeys().privateKey), alg: 'RS256' }, ASYMMETRIC),
    ).toHaveProperty('error');
  });

  it('pins the algorithm: alg required, asymmetric, allowed, and fitting the key type, curve and size', async () => {
    const rsa = jwkOf(rsaKeys().publicKey);
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...jwkOf(ec.publicKey) }, /no "alg"/],
      [{ ...jwkOf(ec.publicKey), alg: 'none' }, /not accepted/],
      [{ ...jwkOf(ec.publicKey), alg: 'HS256' }, /not accepted/],
      [{ ...jwkOf(ec.publicKey), alg: 'ES384' }, /secp384r1/],
      [{ ...jwkOf(ec.publicKey), alg: 'RS256' }, /RSA key/],
      [{ ...rsa, alg: 'ES256' }, /EC key/],
      [{ ...jwkOf(rsaKeys(1024).publicKey), alg: 'RS256' }, /2048 bits/],
      [{ kty: 'OKP', crv: 'Ed25519', x: 'AAAA', alg: 'ES256' }, /key type/],
      [{ kty: 'RSA', n: 'AAAA', alg: 'RS256' }, /public members/],
      [{ kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA', alg: 'ES256' }, /not a valid public key/],
      [{ ...jwkOf(ec.publicKey), alg: 'ES256', kid: 42 }, /kid/],
      [{ ...jwkOf(ecKeys('secp384r1').publicKey), alg: 'ES512' }, /secp521r1/],
      [{ ...jwkOf(ecKeys('secp521r1').publicKey), alg: 'ES384' }, /secp384r1/],
      [{ ...jwkOf(ec.publicKey), alg: 'EdDSA' }, /key type/],
      [{ ...jwkOf(generateKeyPairSync('ed448').publicKey), alg: 'EdDSA' }, /Ed25519/],
      [{ ...jwkOf(generateKeyPairSync('ed25519').publicKey), alg: 'ES512' }, /key type/],
      [{ ...jwkOf(generateKeyPairSync('ed25519').publicKey), alg: 'Ed25519' }, /not accepted/],
      [{ kty: 'OKP', crv: 'Ed25519', x: 'AAAA', alg: 'EdDSA' }, /not a valid public key/],
      [{ ...jwkOf(rsaKeys(1024).publicKey), alg: 'PS512' }, /2048 bits/],
    ];
    for (const [jwk, reason] of cases) {
      const result = await importPublicJwk(jwk, ASYMMETRIC);
      expect('error' in result && result.error, JSON.stringify(jwk).slice(0, 80)).toMatch(reason);
    }
    expect(
      await importPublicJwk({ ...rsa, alg: 'RS384' }, new Set<Algorithm>(['RS256'])),
    ).toHaveProperty('error');
  });

  it('reads the public keys of every asymmetric algorithm, as jose exports them', async () => {
    for (const algorithm of ASYMMETRIC) {
      const { publicKey } = keyPairFor(algorithm);
      const jwk = { ...(await exportJWK(publicKey)), alg: algorithm };
      const result = await importPublicJwk(jwk, ASYMMETRIC);
      expect(result, algorithm).toMatchObject({ algorithm });
      const key = (result as { key: KeyObject }).key;
      expect(key.equals(publicKey), algorithm).toBe(true);
    }
  });

  it('skips keys that are not for signatures', async () => {
    expect(
      await importPublicJwk({ ...jwkOf(ec.publicKey), alg: 'ES256', use: 'enc' }, ASYMMETRIC),
    ).toHaveProperty('skip');
    expect(
      await importPublicJwk(
        { ...jwkOf(ec.publicKey), alg: 'ES256', key_ops: ['encrypt'] },
        ASYMMETRIC,
      ),
    ).toHaveProperty('skip');
  });
});

describe('importJwks (a JWK Set as jose parsed it)', () => {
  const good = { ...jwkOf(ecKeys('prime256v1').publicKey), alg: 'ES256', kid: 'good' };

  it('keeps the usable keys and reports the others', async () => {
    const { keys, report } = await importJwks(
      { keys: [good, { ...good, alg: 'RS256', kid: 'bad' }, { ...good }] },
      ASYMMETRIC,
    );
    expect(keys.map((k) => k.kid)).toEqual(['good']);
    expect(keys[0]!.signingKey).toBeUndefined();
    expect(report.rejected.map((r) => r.kid)).toEqual(['bad', 'good']);
    expect(report.rejected[1]!.reason).toMatch(/repeats the kid/);
  });

  it('derives the thumbprint kid for a JWK without one: the same as the key ring derives', async () => {
    const { kid: _, ...unnamed } = good;
    const { keys } = await importJwks({ keys: [unnamed] }, ASYMMETRIC);
    expect(keys[0]!.kid).toMatch(/^[\w-]{43}$/);
    expect(keys[0]!.kid).toBe(jwkThumbprint(keys[0]!.verifyKey));
  });

  // Bodies that are not JSON or not a JWK Set at all stop in jose first (integration/verifier.test.ts).
  it('throws (so the last good keys stay) on a body that is not a usable JWKS', async () => {
    for (const body of [
      null,
      [],
      { keys: {} },
      { keys: [] },
      { keys: [{ kty: 'oct', k: randomBytes(32).toString('base64url'), alg: 'HS256' }] },
      { keys: Array(MAX_JWKS_KEYS + 1).fill(good) },
    ]) {
      await expect(importJwks(body, ASYMMETRIC), JSON.stringify(body).slice(0, 40)).rejects.toThrow(
        /JWKS/,
      );
    }
    // A hundred keys are fine.
    const hundred = Array.from({ length: MAX_JWKS_KEYS }, (_, i) => ({ ...good, kid: `k${i}` }));
    expect((await importJwks({ keys: hundred }, ASYMMETRIC)).keys).toHaveLength(MAX_JWKS_KEYS);
  });

  it('builds a ring that verifies but never signs', async () => {
    const ring = createVerifyRing((await importJwks({ keys: [good] }, ASYMMETRIC)).keys);
    expect(ring.find('good', 'ES256')).toBeDefined();
    expect(ring.find('good', 'ES384')).toBeUndefined();
    expect(() => ring.signer).toThrow(/only verifies/);
  });
});
