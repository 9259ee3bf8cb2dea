import { createPublicKey, sign, verify } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { describe, expect, it, vi } from 'vitest';
import { AuthError, UnknownKeyError } from '../../../src/errors.js';
import type { Algorithm } from '../../../src/keys/algorithms.js';
import { createKeyRing, type KeyConfig } from '../../../src/keys/key-ring.js';
import { directSign } from '../../../src/tokens/crypto-jws.js';
import { encodedHeader } from '../../../src/tokens/hmac-jws.js';
import { TokenService } from '../../../src/tokens/token-service.js';
import {
  decodeSegment,
  forgeAsymmetric,
  forgeHmac,
  rsaKeys,
  SECRET,
  withSegment,
} from '../../helpers/forge.js';
import { keyPairFor } from '../../helpers/keys.js';

const rsa = rsaKeys();

function service(
  keys: KeyConfig[],
  extra: Partial<ConstructorParameters<typeof TokenService>[0]> = {},
): TokenService {
  return new TokenService({
    ring: createKeyRing({ keys }),
    accessTokenTtl: 900,
    refreshTokenTtl: 3600,
    issuer: undefined,
    audience: undefined,
    leeway: 5,
    // On, as by default: every refusal below must also hold with the cache in front.
    verifyCacheSize: 100,
    ...extra,
  });
}

const hs = () => service([{ algorithm: 'HS256', secret: SECRET, kid: 'k1' }]);
const rs = () => service([{ algorithm: 'RS256', privateKey: rsa.privateKey, kid: 'r1' }]);
const now = () => Math.floor(Date.now() / 1000);
const accessClaims = (extra: object = {}) => ({
  sub: '1',
  sid: 's',
  token_use: 'access',
  iat: now(),
  exp: now() + 60,
  ...extra,
});

function rejects(
  tokens: TokenService,
  token: unknown,
  kind: 'access' | 'refresh' = 'access',
): AuthError {
  try {
    tokens.verify(token, kind);
  } catch (error) {
    expect(error).toBeInstanceOf(AuthError);
    return error as AuthError;
  }
  throw new Error('expected the token to be rejected');
}

describe('algorithm allowlist per key', () => {
  it('rejects alg "none" in any spelling', () => {
    const tokens = hs();
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      const token = `${Buffer.from(JSON.stringify({ alg, typ: 'at+jwt', kid: 'k1' })).toString('base64url')}.${Buffer.from(JSON.stringify(accessClaims())).toString('base64url')}.`;
      expect(rejects(tokens, token).code).toBe('token_invalid');
      expect(rejects(tokens, `${token}AAAA`).code).toBe('token_invalid');
    }
  });

  it('rejects HS256 tokens signed with the RSA public key, in every encoding', () => {
    const tokens = rs();
    const pub = createPublicKey(rsa.privateKey);
    const spki = pub.export({ format: 'pem', type: 'spki' }).toString();
    const pkcs1 = pub.export({ format: 'pem', type: 'pkcs1' }).toString();
    const jwk = JSON.stringify(pub.export({ format: 'jwk' }));
    for (const secret of [spki, pkcs1, `junk before\n${spki}`, jwk, spki.trim()]) {
      for (const header of [
        { alg: 'HS256', typ: 'at+jwt', kid: 'r1' },
        { alg: 'HS256', typ: 'at+jwt' },
      ]) {
        expect(rejects(tokens, forgeHmac(header, accessClaims(), secret)).code).toBe(
          'token_invalid',
        );
      }
    }
  });

  it('rejects algorithm swaps: HS256 to HS512 and RS256 to PS256', () => {
    expect(
      rejects(
        hs(),
        forgeHmac({ alg: 'HS512', typ: 'at+jwt', kid: 'k1' }, accessClaims(), SECRET, 'sha512'),
      ).code,
    ).toBe('token_invalid');
    const pss = forgeAsymmetric(
      { alg: 'PS256', typ: 'at+jwt', kid: 'r1' },
      accessClaims(),
      rsa.privateKey,
      'sha256',
      true,
    );
    expect(rejects(rs(), pss).code).toBe('token_invalid');
  });

  it('accepts its own tokens for every algorithm pinned in the ring', () => {
    const tokens = rs();
    const { token } = tokens.sign('access', { sub: '1', sid: 's' });
    expect(decodeSegment(token, 0)).toMatchObject({ alg: 'RS256', typ: 'at+jwt', kid: 'r1' });
    expect(tokens.verify(token, 'access').sub).toBe('1');
  });
});

describe('kinds cannot be confused', () => {
  it('differ in header typ and in the token_use claim', () => {
    const tokens = hs();
    const access = tokens.sign('access', { sub: '1', sid: 's' }).token;
    const refresh = tokens.sign('refresh', { sub: '1', sid: 's', jti: 'j' }).token;
    expect(decodeSegment(access, 0).typ).toBe('at+jwt');
    expect(decodeSegment(refresh, 0).typ).toBe('rt+jwt');
    expect(decodeSegment(access, 1).token_use).toBe('access');
    expect(decodeSegment(refresh, 1).token_use).toBe('refresh');
    expect(rejects(tokens, refresh, 'access').code).toBe('token_invalid');
    expect(rejects(tokens, access, 'refresh').code).toBe('token_invalid');
  });

  it('checks typ itself: a matching claim with the wrong header typ is refused, and vice versa', () => {
    const tokens = hs();
    expect(
      rejects(tokens, forgeHmac({ alg: 'HS256', typ: 'rt+jwt', kid: 'k1' }, accessClaims(), SECRET))
        .code,
    ).toBe('token_invalid');
    expect(
      rejects(tokens, forgeHmac({ alg: 'HS256', typ: 'JWT', kid: 'k1' }, accessClaims(), SECRET))
        .code,
    ).toBe('token_invalid');
    expect(
      rejects(
        tokens,
        forgeHmac(
          { alg: 'HS256', typ: 'at+jwt', kid: 'k1' },
          accessClaims({ token_use: 'refresh' }),
          SECRET,
        ),
      ).code,
    ).toBe('token_invalid');
    expect(
      tokens.verify(
        forgeHmac({ alg: 'HS256', typ: 'at+jwt', kid: 'k1' }, accessClaims(), SECRET),
        'access',
      ).sub,
    ).toBe('1');
  });
});

describe('claims', () => {
  const sign = (claims: object) =>
    forgeHmac({ alg: 'HS256', typ: 'at+jwt', kid: 'k1' }, claims, SECRET);

  it('requires exp', () => {
    const { exp: _exp, ...noExp } = accessClaims();
    expect(rejects(hs(), sign(noExp)).code).toBe('token_invalid');
    expect(rejects(hs(), sign(accessClaims({ exp: 'soon' }))).code).toBe('token_invalid');
  });

  it('reports expiry as token_expired, honouring the leeway', () => {
    expect(rejects(hs(), sign(accessClaims({ exp: now() - 10 }))).code).toBe('token_expired');
    expect(hs().verify(sign(accessClaims({ exp: now() - 2 })), 'access').sub).toBe('1');
    expect(
      rejects(
        service([{ algorithm: 'HS256', secret: SECRET, kid: 'k1' }], { leeway: 0 }),
        sign(accessClaims({ exp: now() - 2 })),
      ).code,
    ).toBe('token_expired');
  });

  it('honours nbf and iat with the leeway', () => {
    expect(rejects(hs(), sign(accessClaims({ nbf: now() + 60 }))).code).toBe('token_invalid');
    expect(hs().verify(sign(accessClaims({ nbf: now() + 2 })), 'access').sub).toBe('1');
    expect(rejects(hs(), sign(accessClaims({ iat: now() + 60 }))).code).toBe('token_invalid');
    expect(hs().verify(sign(accessClaims({ iat: now() + 2 })), 'access').sub).toBe('1');
  });

  it('refuses non-number iat, exp and nbf (a string, -1e400, 1e400), where a number would be range-checked', () => {
    // Raw JSON text: JSON.stringify cannot write -1e400, which JSON.parse reads as -Infinity.
    const raw = (name: string, literal: string) => {
      const claims = accessClaims() as Record<string, unknown>;
      delete claims[name];
      const json = JSON.stringify(claims).slice(0, -1);
      return sign(`${json},"${name}":${literal}}` as unknown as object);
    };
    for (const name of ['iat', 'exp', 'nbf', 'auth_time'])
      for (const literal of [`"${now()}"`, '-1e400', '1e400', 'null', 'true', '[1]', '{}']) {
        const error = rejects(hs(), raw(name, literal));
        expect(error.code, `${name}: ${literal}`).toBe('token_invalid');
      }
    // The same claims as finite numbers pass.
    expect(hs().verify(raw('iat', String(now())), 'access').sub).toBe('1');
    expect(hs().verify(raw('nbf', String(now() - 1)), 'access').sub).toBe('1');
    expect(hs().verify(raw('auth_time', String(now() - 100)), 'access').sub).toBe('1');
  });

  it('binds tokens to a strategy: a bound view stamps stg and refuses any other (or none)', () => {
    const base = hs();
    const redis = base.forStrategy('redis');
    const stateless = base.forStrategy('jwt');
    const access = redis.sign('access', { sub: '1', sid: 's' }).token;
    const refresh = redis.sign('refresh', { sub: '1', sid: 's', jti: 'j', auth_time: now() }).token;
    expect(decodeSegment(access, 1).stg).toBe('redis');
    expect(redis.verify(access, 'access').stg).toBe('redis');
    expect(redis.verify(refresh, 'refresh').stg).toBe('redis');
    // Twice each: the second answer comes through the verified-token cache, shared by the views.
    for (let i = 0; i < 2; i++) {
      expect(rejects(stateless, access).code).toBe('token_invalid');
      expect(rejects(stateless, refresh, 'refresh').code).toBe('token_invalid');
      expect(rejects(redis, sign(accessClaims())).code).toBe('token_invalid');
      expect(rejects(redis, sign(accessClaims({ stg: 'jwt' }))).code).toBe('token_invalid');
    }
  });

  it('validates iss and aud when configured, arrays too', () => {
    const tokens = service([{ algorithm: 'HS256', secret: SECRET, kid: 'k1' }], {
      issuer: 'me',
      audience: ['api', 'web'],
    });
    expect(tokens.verify(sign(accessClaims({ iss: 'me', aud: 'web' })), 'access').sub).toBe('1');
    expect(tokens.verify(sign(accessClaims({ iss: 'me', aud: ['x', 'api'] })), 'access').sub).toBe(
      '1',
    );
    expect(rejects(tokens, sign(accessClaims({ iss: 'evil', aud: 'api' }))).code).toBe(
      'token_invalid',
    );
    expect(rejects(tokens, sign(accessClaims({ iss: 'me', aud: 'other' }))).code).toBe(
      'token_invalid',
    );
    expect(rejects(tokens, sign(accessClaims({ aud: 'api' }))).code).toBe('token_invalid');
    const issued = tokens.sign('access', { sub: '1', sid: 's' }).token;
    expect(decodeSegment(issued, 1)).toMatchObject({ iss: 'me', aud: ['api', 'web'] });
  });

  it('checks the signature before claims: an expired token with a bad signature is invalid, not expired', () => {
    const token = forgeHmac(
      { alg: 'HS256', typ: 'at+jwt', kid: 'k1' },
      accessClaims({ exp: now() - 100 }),
      'another-secret-of-32-bytes-length!',
    );
    expect(rejects(hs(), token).code).toBe('token_invalid');
  });
});

describe('untrusted headers', () => {
  it('uses kid only as a lookup key', () => {
    for (const kid of [
      '../../../dev/null',
      "' OR 1=1 --",
      'http://127.0.0.1/key',
      42,
      null,
      { $ne: 1 },
    ]) {
      expect(
        rejects(hs(), forgeHmac({ alg: 'HS256', typ: 'at+jwt', kid }, accessClaims(), SECRET)).code,
      ).toBe('token_invalid');
    }
  });

  it('marks only "no such key" as an unknown key (what makes a JWKS verifier refetch), never a bad signature or a bad token', () => {
    const tokens = service([
      { algorithm: 'HS256', secret: SECRET, kid: 'k1' },
      { algorithm: 'RS256', privateKey: rsa.privateKey, kid: 'old', verifyOnly: true },
    ]);
    expect(
      rejects(
        tokens,
        forgeHmac({ alg: 'HS256', typ: 'at+jwt', kid: 'k2' }, accessClaims(), SECRET),
      ),
    ).toBeInstanceOf(UnknownKeyError);
    expect(
      rejects(
        tokens,
        forgeHmac({ alg: 'HS512', typ: 'at+jwt', kid: 'k1' }, accessClaims(), SECRET, 'sha512'),
      ),
    ).toBeInstanceOf(UnknownKeyError);
    for (const token of [
      forgeHmac({ alg: 'HS256', typ: 'at+jwt', kid: 'k1' }, accessClaims(), 'w'.repeat(32)),
      'a.b.c',
      'x'.repeat(9000),
    ]) {
      const error = rejects(tokens, token);
      expect(error.code).toBe('token_invalid');
      expect(error).not.toBeInstanceOf(UnknownKeyError);
    }
    // A verify-only key verifies a token it signed before it was demoted.
    const before = service([{ algorithm: 'RS256', privateKey: rsa.privateKey, kid: 'old' }]).sign(
      'access',
      { sub: '1' },
    ).token;
    expect(tokens.verify(before, 'access').sub).toBe('1');
  });

  it('never follows jku, x5u, an embedded jwk, x5c, or crit', () => {
    const pub = createPublicKey(rsa.privateKey).export({ format: 'jwk' });
    const base = { alg: 'HS256', typ: 'at+jwt', kid: 'k1' };
    for (const extra of [
      { jku: 'http://127.0.0.1:1/jwks' },
      { x5u: 'http://127.0.0.1:1/cert' },
      { jwk: pub },
      { x5c: ['AAAA'] },
      { crit: ['exp'] },
    ]) {
      // Even correctly signed, such a token is refused.
      expect(rejects(hs(), forgeHmac({ ...base, ...extra }, accessClaims(), SECRET)).code).toBe(
        'token_invalid',
      );
    }
  });

  it('remembers parsed headers without changing an answer, past the number it keeps', () => {
    // Headers are remembered by their encoded form once they named a key of the ring; the same
    // header on another instance, or after 200 distinct ones filled the map, is checked as new.
    const tokens = hs();
    const other = service([{ algorithm: 'HS256', secret: SECRET, kid: 'k2' }]);
    for (let i = 0; i < 200; i++) {
      const header = { alg: 'HS256', typ: 'at+jwt', kid: 'k1', n: i };
      const token = forgeHmac(header, accessClaims(), SECRET);
      expect(tokens.verify(token, 'access').sub).toBe('1');
      expect(tokens.verify(token, 'access').sub).toBe('1');
      // Remembered for k1's ring, still no key on a ring without k1.
      expect(() => other.verify(token, 'access')).toThrow(UnknownKeyError);
      // The same remembered header over a refresh payload: still the wrong kind.
      expect(rejects(tokens, forgeHmac(header, accessClaims(), SECRET), 'refresh').code).toBe(
        'token_invalid',
      );
      // And over a bad signature: still invalid.
      expect(
        rejects(tokens, forgeHmac(header, accessClaims(), 'another-secret-of-32-bytes!!!!!!')).code,
      ).toBe('token_invalid');
    }
    // The remembered header is shared and read-only: the next verification sees it unchanged.
    const good = tokens.sign('access', { sub: '2', sid: 's' }).token;
    expect(tokens.verify(good, 'access').sub).toBe('2');
    expect(
      service([{ algorithm: 'HS256', secret: SECRET, kid: 'k1' }]).verify(good, 'access').sub,
    ).toBe('2');
  });
});

describe('malformed input', () => {
  const sign = (payload: unknown) =>
    forgeHmac({ alg: 'HS256', typ: 'at+jwt', kid: 'k1' }, payload, SECRET);

  it('rejects wrong segment counts, bad characters, bad JSON and non-object payloads', () => {
    const good = hs().sign('access', { sub: '1', sid: 's' }).token;
    const cases: unknown[] = [
      '',
      'abc',
      'a.b',
      'a.b.c.d',
      good.split('.').slice(0, 2).join('.'),
      `${good}.x`,
      withSegment(good, 1, 'eyJ+/='),
      withSegment(good, 0, '!!!'),
      ` ${good}`,
      `${good}\n`,
      withSegment(good, 0, Buffer.from('{not json').toString('base64url')),
      withSegment(good, 0, Buffer.from('null').toString('base64url')),
      withSegment(good, 0, Buffer.from('[1]').toString('base64url')),
      sign('null'),
      sign('[]'),
      sign('42'),
      sign('"str"'),
      sign('{bad json'),
      sign(null),
      sign([1, 2]),
      sign(7),
      null,
      undefined,
      42,
      {},
      ['a', 'b'],
    ];
    for (const token of cases) expect(rejects(hs(), token).code).toBe('token_invalid');
  });

  it('rejects huge tokens before parsing or verifying them', () => {
    const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'at+jwt', kid: 'k1' })).toString(
      'base64url',
    );
    const huge = `${header}.${'b'.repeat(2_000_000)}.c`;
    const verify = vi.spyOn(jwt, 'verify');
    const parse = vi.spyOn(JSON, 'parse');
    try {
      expect(rejects(hs(), huge).code).toBe('token_invalid');
      expect(verify).not.toHaveBeenCalled();
      expect(parse).not.toHaveBeenCalled();
    } finally {
      verify.mockRestore();
      parse.mockRestore();
    }
  });

  it('never puts the token or the secret into an error message', () => {
    const good = hs().sign('access', { sub: '1', sid: 's' }).token;
    const forged = forgeHmac(
      { alg: 'HS256', typ: 'at+jwt', kid: 'k1' },
      accessClaims(),
      'wrong-secret-that-is-32-bytes-long',
    );
    for (const token of [forged, withSegment(good, 2, 'AAAA'), `${good}x`]) {
      const error = rejects(hs(), token);
      expect(error.message).not.toContain(token);
      expect(error.message).not.toContain(token.split('.')[1]);
      expect(error.message).not.toContain(SECRET);
      expect(JSON.stringify(error)).not.toContain(token.split('.')[1]);
    }
  });

  it('matches jsonwebtoken on a token it signs with the same KeyObject', () => {
    const ring = createKeyRing({ keys: [{ algorithm: 'HS256', secret: SECRET, kid: 'k1' }] });
    const token = jwt.sign(accessClaims(), ring.signer.signingKey!, {
      algorithm: 'HS256',
      header: { alg: 'HS256', typ: 'at+jwt', kid: 'k1' },
    });
    expect(hs().verify(token, 'access').sid).toBe('s');
  });

  it('signs HMAC tokens byte for byte as jsonwebtoken does, and jsonwebtoken accepts them', () => {
    for (const algorithm of ['HS256', 'HS384', 'HS512'] as const) {
      const secret = SECRET.repeat(2);
      const tokens = service([{ algorithm, secret, kid: 'k1' }]);
      const now = Date.now();
      const { token } = tokens.sign(
        'refresh',
        { sub: 'ü 1', sid: 's', jti: 'j', auth_time: 1, n: [1] },
        now,
      );
      const payload = decodeSegment(token, 1) as Record<string, unknown>;
      const key = createKeyRing({ keys: [{ algorithm, secret, kid: 'k1' }] }).signer.signingKey!;
      expect(token).toBe(
        jwt.sign(payload, key, { algorithm, header: { alg: algorithm, typ: 'rt+jwt', kid: 'k1' } }),
      );
      expect(jwt.verify(token, key, { algorithms: [algorithm] })).toEqual(payload);
      expect(tokens.verify(token, 'refresh').jti).toBe('j');
    }
  });

  it('refuses a second base64url spelling of a valid HMAC signature', () => {
    const good = hs().sign('access', { sub: '1', sid: 's' }).token;
    const signature = good.split('.')[2]!;
    // 32 bytes are 43 characters: the last one carries 2 unused bits, so 4 spellings decode alike.
    const last = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const index = last.indexOf(signature.at(-1)!);
    const twin = `${signature.slice(0, -1)}${last[index ^ 1]}`;
    expect(Buffer.from(twin, 'base64url')).toEqual(Buffer.from(signature, 'base64url'));
    expect(rejects(hs(), withSegment(good, 2, twin)).code).toBe('token_invalid');
  });
});

describe('PS384, PS512, ES512 and EdDSA (signed with node:crypto, not jsonwebtoken)', () => {
  const DIRECT = ['PS384', 'PS512', 'ES512', 'EdDSA'] as const;
  const direct = (algorithm: Algorithm, privateKey = keyPairFor(algorithm).privateKey) =>
    service([{ algorithm, privateKey, kid: 'd1' }]);

  it('signs tokens jsonwebtoken accepts where it can (PS384, PS512, ES512), with extra headers too', () => {
    for (const algorithm of ['PS384', 'PS512', 'ES512'] as const) {
      const { privateKey, publicKey } = keyPairFor(algorithm);
      const tokens = direct(algorithm, privateKey);
      const { token } = tokens.sign('access', { sub: '1', sid: 's' }, Date.now(), {
        headers: { x5t: 'abc' },
      });
      expect(decodeSegment(token, 0)).toEqual({
        x5t: 'abc',
        alg: algorithm,
        typ: 'at+jwt',
        kid: 'd1',
      });
      expect(jwt.verify(token, publicKey, { algorithms: [algorithm] })).toMatchObject({ sub: '1' });
      expect(tokens.verify(token, 'access').sub).toBe('1');
      // And the other way: what jsonwebtoken signs verifies here.
      const theirs = jwt.sign(accessClaims(), privateKey, {
        algorithm,
        header: { alg: algorithm, typ: 'at+jwt', kid: 'd1' },
      });
      expect(tokens.verify(theirs, 'access').sub).toBe('1');
    }
  });

  it('refuses a second spelling, a truncated or padded signature, and an ES512 signature in DER', () => {
    for (const algorithm of DIRECT) {
      const { privateKey } = keyPairFor(algorithm);
      const tokens = direct(algorithm, privateKey);
      const good = tokens.sign('access', { sub: '1', sid: 's' }).token;
      const signature = Buffer.from(good.split('.')[2]!, 'base64url');
      if (algorithm === 'ES512') expect(signature).toHaveLength(132);
      if (algorithm === 'EdDSA') expect(signature).toHaveLength(64);
      for (const bytes of [
        signature.subarray(0, -1),
        Buffer.concat([signature, Buffer.alloc(1)]),
        Buffer.concat([Buffer.alloc(1), signature]),
        Buffer.alloc(0),
      ])
        expect(rejects(tokens, withSegment(good, 2, bytes.toString('base64url'))).code).toBe(
          'token_invalid',
        );
      // A non-canonical spelling of the same bytes (unused low bits set in the last character).
      const text = good.split('.')[2]!;
      if (text.length % 4 !== 0) {
        const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
        const twin = `${text.slice(0, -1)}${alphabet[alphabet.indexOf(text.at(-1)!) ^ 1]}`;
        expect(Buffer.from(twin, 'base64url')).toEqual(signature);
        expect(rejects(tokens, withSegment(good, 2, twin)).code).toBe('token_invalid');
      }
      expect(tokens.verify(good, 'access').sub).toBe('1');
    }
    const { privateKey } = keyPairFor('ES512');
    const der = forgeAsymmetric(
      { alg: 'ES512', typ: 'at+jwt', kid: 'd1' },
      accessClaims(),
      privateKey,
      'sha512',
    );
    expect(rejects(direct('ES512', privateKey), der).code).toBe('token_invalid');
  });

  it('signs PS384/PS512 with a salt as long as the hash, and verifies only that', () => {
    for (const [algorithm, hash, salt] of [
      ['PS384', 'sha384', 48],
      ['PS512', 'sha512', 64],
    ] as const) {
      const { privateKey } = keyPairFor(algorithm);
      const tokens = direct(algorithm, privateKey);
      const input = tokens.sign('access', { sub: '1', sid: 's' }).token.split('.');
      const signature = Buffer.from(input[2]!, 'base64url');
      const data = Buffer.from(`${input[0]}.${input[1]}`);
      const pss = (saltLength: number) => ({ key: privateKey, padding: 6, saltLength });
      expect(verify(hash, data, pss(salt), signature)).toBe(true);
      expect(verify(hash, data, pss(salt + 1), signature)).toBe(false);
      // A signature with a shorter salt (valid PSS, not valid PS384/PS512) is refused.
      const short = sign(hash, data, pss(20)).toString('base64url');
      expect(rejects(tokens, `${input[0]}.${input[1]}.${short}`).code).toBe('token_invalid');
    }
  });

  it('refuses none, HS256 with the public key, and every other algorithm under the key’s kid', () => {
    for (const algorithm of DIRECT) {
      const { privateKey, publicKey } = keyPairFor(algorithm);
      const tokens = direct(algorithm, privateKey);
      const good = tokens.sign('access', { sub: '1', sid: 's' }).token;
      for (const alg of [
        'none',
        'HS256',
        'RS256',
        'PS256',
        'PS384',
        'PS512',
        'ES256',
        'ES512',
        'EdDSA',
        'Ed25519',
      ]) {
        if (alg === algorithm) continue;
        const header = Buffer.from(JSON.stringify({ alg, typ: 'at+jwt', kid: 'd1' })).toString(
          'base64url',
        );
        expect(rejects(tokens, withSegment(good, 0, header)), alg).toBeInstanceOf(UnknownKeyError);
      }
      const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
      const forged = forgeHmac({ alg: 'HS256', typ: 'at+jwt', kid: 'd1' }, accessClaims(), pem);
      expect(rejects(tokens, forged).code).toBe('token_invalid');
      // Signed by a stranger's key of the same algorithm.
      const stranger = direct(algorithm).sign('access', { sub: '1', sid: 's' }).token;
      expect(rejects(tokens, stranger)).not.toBeInstanceOf(UnknownKeyError);
      expect(rejects(tokens, stranger).code).toBe('token_invalid');
    }
  });

  it('checks claims exactly as for the other algorithms: exp, nbf, iat, iss, aud, kind', () => {
    for (const algorithm of DIRECT) {
      const { privateKey } = keyPairFor(algorithm);
      const strict = service([{ algorithm, privateKey, kid: 'd1' }], {
        issuer: 'https://auth.test',
        audience: ['api', 'web'],
        leeway: 0,
      });
      // Any claims, signed as the library signs (sign() would set exp and iat itself).
      const signed = (claims: object) =>
        directSign(algorithm, privateKey, encodedHeader(algorithm, 'at+jwt', 'd1'), {
          ...accessClaims(),
          ...claims,
        });
      const ok = signed({ iss: 'https://auth.test', aud: 'web' });
      expect(strict.verify(ok, 'access').sub).toBe('1');
      const cases: [object, string][] = [
        [{ iss: 'https://auth.test', aud: 'web', exp: now() - 1 }, 'token_expired'],
        [{ iss: 'https://auth.test', aud: 'web', nbf: now() + 60 }, 'token_invalid'],
        [{ iss: 'https://auth.test', aud: 'web', iat: now() + 60 }, 'token_invalid'],
        [{ iss: 'https://evil.test', aud: 'web' }, 'token_invalid'],
        [{ iss: 'https://auth.test', aud: 'billing' }, 'token_invalid'],
        [{ aud: 'web' }, 'token_invalid'],
        [{ iss: 'https://auth.test', aud: 'web', exp: '9999999999' }, 'token_invalid'],
      ];
      for (const [claims, code] of cases)
        expect(rejects(strict, signed(claims)).code, `${algorithm} ${JSON.stringify(claims)}`).toBe(
          code,
        );
      const refresh = direct(algorithm, privateKey).sign('refresh', {
        sub: '1',
        sid: 's',
        jti: 'j',
        auth_time: now(),
      }).token;
      expect(rejects(direct(algorithm, privateKey), refresh, 'access').code).toBe('token_invalid');
      // The claim says access, the header says refresh.
      const mixed = directSign(algorithm, privateKey, encodedHeader(algorithm, 'rt+jwt', 'd1'), {
        ...accessClaims(),
      });
      expect(rejects(direct(algorithm, privateKey), mixed).code).toBe('token_invalid');
    }
  });
});
