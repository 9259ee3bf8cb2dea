import { randomBytes } from 'node:crypto';
import type { Algorithm, KeyConfig } from '../../src/index.js';
import { ecKeys, rsaKeys } from './forge.js';

const SECRET_BYTES: Record<string, number> = { HS256: 32, HS384: 48, HS512: 64 };

/** A fresh key of the ring for `algorithm`: a random secret, or a new key pair. */
export function keyFor(algorithm: Algorithm, extra: Partial<KeyConfig> = {}): KeyConfig {
  if (algorithm.startsWith('HS'))
    return { algorithm, secret: randomBytes(SECRET_BYTES[algorithm]!), ...extra };
  const pair =
    algorithm === 'ES256'
      ? ecKeys('prime256v1')
      : algorithm === 'ES384'
        ? ecKeys('secp384r1')
        : rsaKeys();
  return { algorithm, privateKey: pair.privateKey, ...extra };
}

/** The same key, as the verify-only entry of a rotation overlap. */
export const verifyOnly = (key: KeyConfig): KeyConfig => ({ ...key, verifyOnly: true });
