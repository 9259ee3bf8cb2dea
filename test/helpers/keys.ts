import { generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import type { Algorithm, KeyConfig } from '../../src/index.js';
import { ecKeys, rsaKeys } from './forge.js';

const SECRET_BYTES: Record<string, number> = { HS256: 32, HS384: 48, HS512: 64 };

/** A fresh key of the ring for `algorithm`: a random secret, or a new key pair. */
export function keyFor(algorithm: Algorithm, extra: Partial<KeyConfig> = {}): KeyConfig {
  if (algorithm.startsWith('HS'))
    return { algorithm, secret: randomBytes(SECRET_BYTES[algorithm]!), ...extra };
  return { algorithm, privateKey: keyPairFor(algorithm).privateKey, ...extra };
}

/** A new key pair that fits an asymmetric `algorithm`. */
export function keyPairFor(algorithm: Algorithm): { privateKey: KeyObject; publicKey: KeyObject } {
  if (algorithm === 'EdDSA') return generateKeyPairSync('ed25519');
  const curve = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' }[
    algorithm as string
  ];
  return curve ? ecKeys(curve) : rsaKeys();
}

/** The same key, as the verify-only entry of a rotation overlap. */
export const verifyOnly = (key: KeyConfig): KeyConfig => ({ ...key, verifyOnly: true });
