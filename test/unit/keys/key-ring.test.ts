import {
  createHash,
  createSecretKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AuthConfigError } from '../../../src/errors.js';
import {
  createKeyRing,
  jwkThumbprint,
  type KeyConfig,
  secretKid,
} from '../../../src/keys/key-ring.js';
import { ecKeys, rsaKeys, SECRET } from '../../helpers/forge.js';
import { keyFor } from '../../helpers/keys.js';

function configError(fn: () => unknown): AuthConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(AuthConfigError);
    return error as AuthConfigError;
  }
  throw new Error('expected an AuthConfigError');
}

describe('key ring', () => {
  it('refuses HS secrets shorter than 32 bytes, in every form, naming the option', () => {
    for (const secret of [
      'short',
      'x'.repeat(31),
      Buffer.alloc(31),
      createSecretKey(Buffer.alloc(16)),
    ]) {
      const error = configError(() => createKeyRing({ secret }));
      expect(error.option).toBe('secret');
      expect(error.message).toMatch(/at least 32 bytes/);
    }
  });

  it('refuses repeated-byte and PEM/JWK-looking secrets, saying what to use instead', () => {
    const { publicKey } = rsaKeys();
    const rsaPublicPem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
    const rsaPkcs1Pem = publicKey.export({ format: 'pem', type: 'pkcs1' }).toString();
    const jwk = JSON.stringify(publicKey.export({ format: 'jwk' }));
    const octJwk = JSON.stringify({ kty: 'oct', k: randomBytes(32).toString('base64url') });
    for (const [secret, reason] of [
      [Buffer.alloc(32), /repetitive/],
      ['a'.repeat(32), /repetitive/],
      [createSecretKey(Buffer.alloc(48, 7)), /repetitive/],
      ['abab'.repeat(16), /repetitive/],
      [rsaPublicPem, /PEM/],
      [rsaPkcs1Pem, /PEM/],
      [`junk before it\n${rsaPublicPem}`, /PEM/],
      [Buffer.from(rsaPublicPem), /PEM/],
      [jwk, /JWK/],
      [`  ${octJwk}`, /JWK/],
    ] as const) {
      const error = configError(() => createKeyRing({ secret }));
      expect(error.option).toBe('secret');
      expect(error.message).toMatch(reason);
      // A sentence that says what to use instead: how to generate a real secret.
      expect(error.message).toMatch(/randomBytes\(32\)/);
    }
    // The same checks guard every HS key of a ring, naming that key.
    expect(
      configError(() => createKeyRing({ keys: [{ algorithm: 'HS256', secret: 'z'.repeat(40) }] }))
        .option,
    ).toBe('keys[0].secret');
    // Random secrets in their usual spellings pass: raw bytes, hex, base64url, a long passphrase.
    for (const secret of [
      randomBytes(32),
      randomBytes(32).toString('hex'),
      randomBytes(32).toString('base64url'),
      'correct horse battery staple, then some',
    ])
      expect(createKeyRing({ secret }).signer.algorithm).toBe('HS256');
  });

  it('derives an HS kid that reveals nothing about the secret (keyed, not the JWK thumbprint)', () => {
    const secret = randomBytes(32);
    const key = createSecretKey(secret);
    const { kid } = createKeyRing({ secret }).signer;
    expect(kid).toBe(secretKid(key));
    expect(kid).toMatch(/^[A-Za-z0-9_-]{22}$/);
    // Not the unkeyed thumbprint, nor any plain hash of the secret an attacker could test a guess against.
    expect(kid).not.toBe(jwkThumbprint(key));
    for (const digest of ['base64url', 'hex'] as const) {
      const plain = createHash('sha256').update(secret).digest(digest);
      expect(plain.startsWith(kid)).toBe(false);
      expect(plain).not.toContain(kid);
    }
    // Stable across processes sharing the secret, different for another secret.
    expect(createKeyRing({ secret: Buffer.from(secret) }).signer.kid).toBe(kid);
    expect(createKeyRing({ secret: randomBytes(32) }).signer.kid).not.toBe(kid);
  });

  it('never puts the secret into its error message', () => {
    const secret = 'hunter2-hunter2';
    expect(configError(() => createKeyRing({ secret })).message).not.toContain(secret);
  });

  it('requires a secret or keys, and not both', () => {
    expect(configError(() => createKeyRing({})).option).toBe('secret');
    expect(configError(() => createKeyRing({ secret: '' })).option).toBe('secret');
    expect(
      configError(() =>
        createKeyRing({ secret: SECRET, keys: [{ algorithm: 'HS256', secret: SECRET }] }),
      ).option,
    ).toBe('secret');
  });

  it('says when a key option was given as undefined (an unset environment variable), not just missing', () => {
    const unset = process.env.KJR_TEST_NEVER_SET;
    const pasted = configError(() =>
      createKeyRing({ keys: [{ algorithm: 'ES256', kid: 'k1', privateKey: unset }] }),
    );
    expect(pasted.option).toBe('keys[0]');
    expect(pasted.message).toMatch(/needs a publicKey.*`privateKey` is given as undefined/);
    const both = configError(() =>
      createKeyRing({ keys: [{ algorithm: 'ES256', privateKey: unset, publicKey: unset }] }),
    );
    expect(both.message).toMatch(/`privateKey` and `publicKey` are given as undefined/);
    const secret = configError(() =>
      createKeyRing({ keys: [{ algorithm: 'HS256', secret: unset }] }),
    );
    expect([secret.option, secret.message]).toEqual([
      'keys[0].secret',
      expect.stringMatching(/is required for HS256 \(`secret` is given as undefined/),
    ]);
    // Left out altogether: the plain sentence.
    expect(
      configError(() => createKeyRing({ keys: [{ algorithm: 'ES256' }] })).message,
    ).not.toMatch(/undefined/);
  });

  it('requires hash-sized secrets for HS384 and HS512', () => {
    expect(
      configError(() => createKeyRing({ keys: [{ algorithm: 'HS384', secret: 'x'.repeat(40) }] }))
        .message,
    ).toMatch(/48 bytes/);
    expect(
      configError(() => createKeyRing({ keys: [{ algorithm: 'HS512', secret: 'x'.repeat(63) }] }))
        .message,
    ).toMatch(/64 bytes/);
    expect(
      createKeyRing({ keys: [{ algorithm: 'HS512', secret: randomBytes(64) }] }).signer.algorithm,
    ).toBe('HS512');
  });

  it('refuses RSA keys under 2048 bits', () => {
    const { privateKey } = rsaKeys(1024);
    expect(
      configError(() => createKeyRing({ keys: [{ algorithm: 'RS256', privateKey }] })).message,
    ).toMatch(/2048 bits/);
  });

  it('pins each key to a matching key type and curve', () => {
    const rsa = rsaKeys();
    const p256 = ecKeys('prime256v1');
    expect(
      configError(() =>
        createKeyRing({ keys: [{ algorithm: 'ES256', privateKey: rsa.privateKey }] }),
      ).message,
    ).toMatch(/EC key/);
    expect(
      configError(() =>
        createKeyRing({ keys: [{ algorithm: 'ES384', privateKey: p256.privateKey }] }),
      ).message,
    ).toMatch(/secp384r1/);
    expect(
      configError(() =>
        createKeyRing({ keys: [{ algorithm: 'RS256', privateKey: p256.privateKey }] }),
      ).message,
    ).toMatch(/RSA key/);
    expect(
      configError(() =>
        createKeyRing({ keys: [{ algorithm: 'HS256', privateKey: rsa.privateKey } as never] }),
      ).option,
    ).toMatch(/keys\[0\]/);
    expect(
      configError(() => createKeyRing({ keys: [{ algorithm: 'none' as never, secret: SECRET }] }))
        .option,
    ).toBe('keys[0].algorithm');
  });

  it('pins PS384, PS512, ES512 and EdDSA keys as strictly: type, curve, size, PSS parameters', () => {
    const rsa = rsaKeys();
    const p384 = ecKeys('secp384r1');
    const p521 = ecKeys('secp521r1');
    const ed25519 = generateKeyPairSync('ed25519');
    const ed448 = generateKeyPairSync('ed448');
    const pss256 = generateKeyPairSync('rsa-pss', {
      modulusLength: 2048,
      hashAlgorithm: 'sha256',
      mgf1HashAlgorithm: 'sha256',
    });
    const cases: [KeyConfig, RegExp][] = [
      [{ algorithm: 'ES512', privateKey: p384.privateKey }, /secp521r1/],
      [{ algorithm: 'ES512', publicKey: p384.publicKey, verifyOnly: true }, /secp521r1/],
      [{ algorithm: 'ES384', privateKey: p521.privateKey }, /secp384r1/],
      [{ algorithm: 'ES512', privateKey: ed25519.privateKey }, /EC key/],
      [{ algorithm: 'EdDSA', privateKey: p521.privateKey }, /Ed25519 key/],
      [{ algorithm: 'EdDSA', privateKey: ed448.privateKey }, /Ed25519 key, not ed448/],
      [{ algorithm: 'EdDSA', publicKey: ed448.publicKey, verifyOnly: true }, /Ed25519/],
      [{ algorithm: 'EdDSA', privateKey: rsa.privateKey }, /Ed25519 key/],
      [{ algorithm: 'ES256', privateKey: ed25519.privateKey }, /EC key/],
      [{ algorithm: 'PS384', privateKey: p384.privateKey }, /RSA key/],
      [{ algorithm: 'PS512', privateKey: rsaKeys(1024).privateKey }, /2048 bits/],
      [{ algorithm: 'PS384', privateKey: pss256.privateKey }, /restricted to sha384/],
      [{ algorithm: 'EdDSA', secret: randomBytes(32) } as KeyConfig, /privateKey\/publicKey/],
      [
        {
          algorithm: 'EdDSA',
          privateKey: ed25519.privateKey,
          publicKey: generateKeyPairSync('ed25519').publicKey,
        },
        /does not match/,
      ],
    ];
    for (const [config, reason] of cases) {
      expect(
        configError(() => createKeyRing({ keys: [config] })).message,
        config.algorithm,
      ).toMatch(reason);
    }
    for (const algorithm of ['PS384', 'PS512'] as const)
      expect(
        createKeyRing({ keys: [{ algorithm, privateKey: rsa.privateKey }] }).signer.algorithm,
      ).toBe(algorithm);
    const ring = createKeyRing({
      keys: [
        { algorithm: 'EdDSA', privateKey: ed25519.privateKey },
        { algorithm: 'ES512', privateKey: p521.privateKey, verifyOnly: true },
      ],
    });
    expect(ring.signer.kid).toBe(jwkThumbprint(ed25519.publicKey));
    expect(ring.find(ring.signer.kid, 'EdDSA')).toBeDefined();
    expect(ring.find(ring.signer.kid, 'Ed25519')).toBeUndefined();
    expect(ring.find(ring.signer.kid, 'ES512')).toBeUndefined();
  });

  it('detects a public key that does not belong to the private key', () => {
    const a = rsaKeys();
    const b = rsaKeys();
    expect(
      configError(() =>
        createKeyRing({
          keys: [{ algorithm: 'RS256', privateKey: a.privateKey, publicKey: b.publicKey }],
        }),
      ).message,
    ).toMatch(/does not match/);
  });

  it('reads PEM strings and derives a thumbprint kid (RFC 7638)', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const ring = createKeyRing({ keys: [{ algorithm: 'ES256', privateKey: pem }] });
    expect(ring.signer.kid).toBe(jwkThumbprint(publicKey));
    expect(ring.signer.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('reads DER Buffers in every encoding Node exports, private and public', () => {
    const rsa = rsaKeys();
    const ec = ecKeys('prime256v1');
    const ed = generateKeyPairSync('ed25519');
    const der = (key: KeyObject, type: string) =>
      key.export({
        format: 'der',
        type: type as 'pkcs1' | 'pkcs8' | 'sec1' | 'spki',
      } as never) as Buffer;
    const cases: [
      KeyConfig['algorithm'],
      { privateKey: KeyObject; publicKey: KeyObject },
      string[],
      string[],
    ][] = [
      ['RS256', rsa, ['pkcs8', 'pkcs1'], ['spki', 'pkcs1']],
      ['ES256', ec, ['pkcs8', 'sec1'], ['spki']],
      ['EdDSA', ed, ['pkcs8'], ['spki']],
    ];
    for (const [algorithm, pair, privateTypes, publicTypes] of cases) {
      const kid = jwkThumbprint(pair.publicKey);
      for (const type of privateTypes) {
        const ring = createKeyRing({
          keys: [{ algorithm, privateKey: der(pair.privateKey, type) }],
        });
        expect(ring.signer.kid, `${algorithm} ${type}`).toBe(kid);
        // The private key's DER in place of the public key: the public half is derived.
        const derived = createKeyRing({
          keys: [
            { algorithm, publicKey: der(pair.privateKey, type), verifyOnly: true },
            keyFor(algorithm),
          ],
        });
        expect(derived.keys[0]!.kid).toBe(kid);
      }
      for (const type of publicTypes) {
        const ring = createKeyRing({
          keys: [{ algorithm, privateKey: pair.privateKey, publicKey: der(pair.publicKey, type) }],
        });
        expect(ring.signer.kid, `${algorithm} public ${type}`).toBe(kid);
      }
    }
    const junk = configError(() =>
      createKeyRing({
        keys: [{ algorithm: 'ES256', privateKey: Buffer.from('not a key at all') }],
      }),
    );
    expect(junk.message).toMatch(/could not be read as a private key \(PEM or DER expected\)/);
    // As keys are often pasted: a PEM from an environment variable with its line breaks written
    // as \n, and base64 DER given as a string.
    const pem = rsaKeys().privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const escaped = configError(() =>
      createKeyRing({ keys: [{ algorithm: 'RS256', privateKey: pem.replace(/\n/g, '\\n') }] }),
    );
    expect(escaped.message).toContain(String.raw`value.replace(/\\n/g, '\n')`);
    const base64 = rsaKeys().privateKey.export({ type: 'pkcs8', format: 'der' }).toString('base64');
    const der64 = configError(() =>
      createKeyRing({ keys: [{ algorithm: 'RS256', privateKey: base64 }] }),
    );
    expect(der64.message).toContain("Buffer.from(value, 'base64')");
    // A key pair's part given to an HMAC algorithm: said so, not "secret is required".
    const hmac = configError(() =>
      createKeyRing({ keys: [{ algorithm: 'HS256', privateKey: pem }] as never }),
    );
    expect(hmac.message).toMatch(/HS256 takes a secret, not privateKey/);
  });

  it('signs with the first key that can sign; verify-only keys still verify', () => {
    const old = {
      algorithm: 'HS256' as const,
      secret: randomBytes(32),
      kid: 'old',
      verifyOnly: true,
    };
    const next = { algorithm: 'HS256' as const, secret: randomBytes(32), kid: 'new' };
    const ring = createKeyRing({ keys: [old, next] });
    expect(ring.signer.kid).toBe('new');
    expect(ring.find('old', 'HS256')?.kid).toBe('old');
    expect(configError(() => createKeyRing({ keys: [old] })).message).toMatch(/no key can sign/);
  });

  it('tries a token without a kid only on the one key of its alg, as the README says', () => {
    const one = createKeyRing({ keys: [{ algorithm: 'HS256', secret: SECRET }] });
    expect(one.find(undefined, 'HS256')).toBe(one.signer);
    expect(one.find(undefined, 'HS512')).toBeUndefined();
    expect(one.find(undefined, 'none')).toBeUndefined();
    // Two keys of that algorithm (a rotation): neither is guessed.
    const two = createKeyRing({
      keys: [
        keyFor('HS256'),
        keyFor('HS256', { verifyOnly: true }),
        keyFor('ES256', { verifyOnly: true }),
      ],
    });
    expect(two.find(undefined, 'HS256')).toBeUndefined();
    expect(two.find(undefined, 'ES256')?.algorithm).toBe('ES256');
    expect(two.find(null, 'HS256')).toBeUndefined();
  });

  it('looks kids up only in the ring, and only with the key’s own algorithm', () => {
    const ring = createKeyRing({ keys: [{ algorithm: 'HS256', secret: SECRET, kid: 'a' }] });
    expect(ring.find('a', 'HS256')).toBeDefined();
    expect(ring.find('a', 'HS512')).toBeUndefined();
    expect(ring.find('../../etc/passwd', 'HS256')).toBeUndefined();
    expect(ring.find({ toString: () => 'a' }, 'HS256')).toBeUndefined();
    expect(
      configError(() =>
        createKeyRing({
          keys: [
            { algorithm: 'HS256', secret: SECRET, kid: 'a' },
            { algorithm: 'HS256', secret: randomBytes(32), kid: 'a' },
          ],
        }),
      ).message,
    ).toMatch(/share the kid/);
  });
});
