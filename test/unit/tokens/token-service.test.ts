import { createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { describe, expect, it, vi } from 'vitest';
import { AuthError, UnknownKeyError } from '../../../src/errors.js';
import { type Algorithm, ALGORITHMS, isRsa, isSymmetric } from '../../../src/keys/algorithms.js';
import { createKeyRing, type KeyConfig } from '../../../src/keys/key-ring.js';
import { directSign, isDirect } from '../../../src/tokens/crypto-jws.js';
import { encodedHeader } from '../../../src/tokens/hmac-jws.js';
import { TokenService } from '../../../src/tokens/token-service.js';
import {
  decodeSegment,
  forgeAsymmetric,
  forgeHmac,
  forgeSigned,
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

/**
 * One algorithm per verification path: HMAC, jsonwebtoken (RS256, ES256) and node:crypto
 * (EdDSA), for tests that build tokens by hand and are cheap enough to run on each.
 */
const PATHS = ['HS256', 'RS256', 'ES256', 'EdDSA'] as const;
const pathOf = (algorithm: Algorithm) =>
  isSymmetric(algorithm) ? 'HMAC' : isDirect(algorithm) ? 'node:crypto' : 'jsonwebtoken';

/** Signing keys per algorithm, made once: RS* and PS* share one RSA key, as they may. */
const keyCache = new Map<string, string | KeyObject>();
function cachedKey(name: string, make: () => string | KeyObject): string | KeyObject {
  let key = keyCache.get(name);
  if (key === undefined) keyCache.set(name, (key = make()));
  return key;
}
/** The key of the one-key ring `ringFor(algorithm)` builds. */
const realKey = (algorithm: Algorithm) =>
  isSymmetric(algorithm)
    ? SECRET.repeat(2)
    : isRsa(algorithm)
      ? rsa.privateKey
      : cachedKey(algorithm, () => keyPairFor(algorithm).privateKey);
/** Another key of the same algorithm, which the ring does not know. */
const strangerKey = (algorithm: Algorithm) =>
  isSymmetric(algorithm)
    ? 'a-stranger-secret-that-is-64-bytes-long-a-stranger-secret-that!!'
    : cachedKey(isRsa(algorithm) ? 'RSA stranger' : `${algorithm} stranger`, () =>
        isRsa(algorithm) ? rsaKeys().privateKey : keyPairFor(algorithm).privateKey,
      );
/** A service whose ring holds one key of `algorithm`, with kid k1. */
function ringFor(
  algorithm: Algorithm,
  extra: Partial<ConstructorParameters<typeof TokenService>[0]> = {},
): TokenService {
  const key = realKey(algorithm);
  return service(
    [
      typeof key === 'string'
        ? { algorithm, secret: key, kid: 'k1' }
        : { algorithm, privateKey: key, kid: 'k1' },
    ],
    extra,
  );
}
/** Any payload (a string is its raw text) under an access-token header, signed as the ring signs. */
const signedFor = (algorithm: Algorithm, payload: unknown, key = realKey(algorithm)) =>
  forgeSigned(algorithm, key, { alg: algorithm, typ: 'at+jwt', kid: 'k1' }, payload);

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

  it.each(PATHS)(
    '%s: at leeway 0, nbf and exp count whole seconds and iat the exact time; each leeway second moves the boundary by one',
    (algorithm) => {
      vi.useFakeTimers({ toFake: ['Date'] });
      try {
        // Half a second into second S: nbf and exp are compared with S (as jsonwebtoken does),
        // iat with S + 0.5.
        const S = 1_700_000_000;
        vi.setSystemTime(S * 1000 + 500);
        const strict = ringFor(algorithm, { leeway: 0 });
        const lenient = ringFor(algorithm, { leeway: 1 });
        const token = (claims: object) =>
          signedFor(algorithm, {
            sub: '1',
            sid: 's',
            token_use: 'access',
            iat: S,
            exp: S + 60,
            ...claims,
          });
        const passes = (tokens: TokenService, claims: object) =>
          expect(tokens.verify(token(claims), 'access').sub, JSON.stringify(claims)).toBe('1');
        const fails = (tokens: TokenService, claims: object, code: string) =>
          expect(rejects(tokens, token(claims)).code, JSON.stringify(claims)).toBe(code);

        // nbf: valid once nbf <= S + leeway (a fractional nbf just passed waits for the next second).
        passes(strict, { nbf: S });
        fails(strict, { nbf: S + 1 }, 'token_invalid');
        fails(strict, { nbf: S + 0.4 }, 'token_invalid');
        passes(lenient, { nbf: S + 1 });
        fails(lenient, { nbf: S + 2 }, 'token_invalid');
        // iat: refused once iat > S + 0.5 + leeway.
        passes(strict, { iat: S });
        passes(strict, { iat: S + 0.5 });
        fails(strict, { iat: S + 0.501 }, 'token_invalid');
        fails(strict, { iat: S + 1 }, 'token_invalid');
        passes(lenient, { iat: S + 1 });
        fails(lenient, { iat: S + 2 }, 'token_invalid');
        // exp: expired once S >= exp + leeway.
        passes(strict, { exp: S + 1 });
        fails(strict, { exp: S }, 'token_expired');
        passes(lenient, { exp: S });
        fails(lenient, { exp: S - 1 }, 'token_expired');

        // The token refused at leeway 0 for nbf = S + 1 passes once the clock reaches S + 1.
        vi.setSystemTime((S + 1) * 1000);
        passes(strict, { nbf: S + 1 });
        passes(strict, { iat: S + 1 });
      } finally {
        vi.useRealTimers();
      }
    },
  );

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

  it.each(PATHS)(
    '%s: refuses an iss that is not the configured string, and an aud whose strings miss, whatever their JSON type',
    (algorithm) => {
      const tokens = ringFor(algorithm, { issuer: 'me', audience: ['api', '1'] });
      const token = (claims: object) =>
        signedFor(algorithm, accessClaims({ iss: 'me', aud: 'api', ...claims }));
      expect(tokens.verify(token({}), 'access').sub).toBe('1');
      const refused: object[] = [
        // iss: only the string itself, never an array holding it or another type.
        { iss: ['me'] },
        { iss: [] },
        { iss: [['me']] },
        { iss: { me: true } },
        { iss: 1 },
        { iss: null },
        { iss: true },
        { iss: 'me ' },
        { iss: 'ME' },
        // aud: non-strings never match, even where their text would (1 for '1').
        { aud: [1] },
        { aud: 1 },
        { aud: [null, true, {}] },
        { aud: [['api']] },
        { aud: [{ api: 'api' }] },
        { aud: { 0: 'api', length: 1 } },
        { aud: null },
        { aud: [] },
        { aud: ['API', 'x'] },
      ];
      for (const claims of refused) {
        const error = rejects(tokens, token(claims));
        expect(error.code, `${algorithm} ${JSON.stringify(claims)}`).toBe('token_invalid');
        expect(error).not.toBeInstanceOf(UnknownKeyError);
      }
      // An array is judged by its strings (as jsonwebtoken judges it): one that matches is enough.
      expect(tokens.verify(token({ aud: [1, null, 'api'] }), 'access').sub).toBe('1');
      expect(tokens.verify(token({ aud: [{}, '1'] }), 'access').sub).toBe('1');
    },
  );

  it('checks the signature before claims: an expired token with a bad signature is invalid, not expired', () => {
    const token = forgeHmac(
      { alg: 'HS256', typ: 'at+jwt', kid: 'k1' },
      accessClaims({ exp: now() - 100 }),
      'another-secret-of-32-bytes-length!',
    );
    expect(rejects(hs(), token).code).toBe('token_invalid');
  });
});

describe('signature before claims, on every verification path', () => {
  it.each(ALGORITHMS)(
    '%s: a bad signature over expired, not-yet-valid or foreign claims is token_invalid, never token_expired',
    (algorithm) => {
      const tokens = ringFor(algorithm, { issuer: 'me', audience: ['api'], leeway: 0 });
      const base = {
        sub: '1',
        sid: 's',
        token_use: 'access',
        iss: 'me',
        aud: 'api',
        iat: now() - 600,
      };
      expect(tokens.verify(signedFor(algorithm, { ...base, exp: now() + 60 }), 'access').sub).toBe(
        '1',
      );
      // Correctly signed, the expired claims are reported as such: the code tells which check refused.
      const expired = { ...base, exp: now() - 60 };
      expect(rejects(tokens, signedFor(algorithm, expired)).code).toBe('token_expired');
      for (const claims of [
        expired,
        { ...expired, aud: 'billing' },
        { ...expired, iss: 'evil' },
        { ...expired, nbf: now() + 3600 },
        { ...expired, exp: now() - 3600, iat: now() + 3600 },
      ]) {
        const real = signedFor(algorithm, claims);
        const signature = Buffer.from(real.split('.')[2]!, 'base64url');
        signature[signature.length >> 1]! ^= 0x01;
        for (const [how, token] of [
          [
            'a stranger key of the same algorithm',
            signedFor(algorithm, claims, strangerKey(algorithm)),
          ],
          [
            'the real signature with one bit flipped',
            withSegment(real, 2, signature.toString('base64url')),
          ],
          [
            'the real signature over other claims',
            withSegment(
              real,
              1,
              Buffer.from(JSON.stringify({ ...claims, sub: '2' })).toString('base64url'),
            ),
          ],
        ] as const) {
          const error = rejects(tokens, token);
          const label = `${algorithm} (${pathOf(algorithm)}), ${how}: ${JSON.stringify(claims)}`;
          expect(error.code, label).toBe('token_invalid');
          // The kid named a key of the ring: the signature is what failed, not the lookup.
          expect(error, label).not.toBeInstanceOf(UnknownKeyError);
        }
      }
    },
  );
});

describe('subjects no store can hold', () => {
  it.each(['HS256', 'RS256', 'EdDSA'] as const)(
    '%s: a correctly signed token whose sub holds a control character is token_invalid',
    (algorithm) => {
      const tokens = ringFor(algorithm);
      const base = { sid: 's', token_use: 'access', exp: now() + 60 };
      expect(tokens.verify(signedFor(algorithm, { ...base, sub: 'a b' }), 'access').sub).toBe(
        'a b',
      );
      for (const sub of ['a\u0000b', '\u0000', 'x\ny', 'del\u007f'])
        expect(rejects(tokens, signedFor(algorithm, { ...base, sub })).code, sub).toBe(
          'token_invalid',
        );
    },
  );
});

describe('claims answer alike on every verification path', () => {
  it.each(ALGORITHMS)(
    '%s: correctly signed, expired claims are token_expired even when aud or iss is wrong too; a live token with either is token_invalid',
    (algorithm) => {
      const tokens = ringFor(algorithm, { issuer: 'me', audience: ['api'], leeway: 0 });
      const base = { sub: '1', sid: 's', token_use: 'access', iss: 'me', aud: 'api' };
      const label = `${algorithm} (${pathOf(algorithm)})`;
      for (const foreign of [{}, { aud: 'billing' }, { iss: 'evil' }, { aud: [1], iss: 2 }]) {
        const expired = signedFor(algorithm, { ...base, ...foreign, exp: now() - 60 });
        expect(rejects(tokens, expired).code, `${label} ${JSON.stringify(foreign)}`).toBe(
          'token_expired',
        );
      }
      for (const foreign of [{ aud: 'billing' }, { iss: 'evil' }]) {
        const live = signedFor(algorithm, { ...base, ...foreign, exp: now() + 60 });
        expect(rejects(tokens, live).code, `${label} ${JSON.stringify(foreign)}`).toBe(
          'token_invalid',
        );
      }
    },
  );
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
  it.each(ALGORITHMS)(
    '%s ring: rejects wrong segment counts, bad characters, bad JSON, non-object payloads and bad signatures with token_invalid, and throws nothing else',
    (algorithm) => {
      const tokens = ringFor(algorithm);
      const good = tokens.sign('access', { sub: '1', sid: 's' }).token;
      const sign = (payload: unknown) => signedFor(algorithm, payload);
      // Signed as the ring signs: what follows is refused by the payload checks, not the signature.
      expect(tokens.verify(sign(accessClaims()), 'access').sub).toBe('1');
      const header = (value: string) =>
        withSegment(good, 0, Buffer.from(value).toString('base64url'));
      const cases: unknown[] = [
        '',
        'abc',
        'a.b',
        'a.b.c.d',
        good.split('.').slice(0, 2).join('.'),
        `${good}.`,
        `${good}.x`,
        `.${good}`,
        withSegment(good, 1, 'eyJ+/='),
        withSegment(good, 0, '!!!'),
        withSegment(good, 2, 'a/b+c='),
        ` ${good}`,
        `${good}\n`,
        `${good}=`,
        header('{not json'),
        header('null'),
        header('[1]'),
        header('"str"'),
        header('{}'),
        header(JSON.stringify({ alg: algorithm, kid: 'k1' })),
        header(JSON.stringify({ alg: [algorithm], typ: 'at+jwt', kid: 'k1' })),
        header(JSON.stringify({ alg: algorithm, typ: 'at+jwt', kid: ['k1'] })),
        sign('null'),
        sign('[]'),
        sign('42'),
        sign('"str"'),
        sign('{bad json'),
        sign(''),
        sign('\u0000'),
        sign(null),
        sign([1, 2]),
        sign(7),
        sign(accessClaims({ sub: 1 })),
        sign({ ...accessClaims(), token_use: undefined }),
        // Signatures of wrong lengths or bytes, truncated, or none.
        withSegment(good, 2, 'A'),
        withSegment(good, 2, 'AA'),
        withSegment(good, 2, 'AAAA'),
        withSegment(good, 2, 'A'.repeat(86)),
        withSegment(good, 2, 'A'.repeat(342)),
        withSegment(good, 2, 'A'.repeat(4000)),
        withSegment(good, 2, good.split('.')[2]!.slice(0, -2)),
        `${good.split('.').slice(0, 2).join('.')}.`,
        `${good.split('.')[0]}.${'b'.repeat(2_000_000)}.c`,
        null,
        undefined,
        42,
        {},
        ['a', 'b'],
        new String(good),
        { toString: () => good },
      ];
      for (const token of cases)
        for (const kind of ['access', 'refresh'] as const)
          expect(
            rejects(tokens, token, kind).code,
            `${algorithm} ${kind}: ${String(token).slice(0, 80)}`,
          ).toBe('token_invalid');
      expect(tokens.verify(good, 'access').sub).toBe('1');
    },
  );

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
