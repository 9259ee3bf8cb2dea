import type { KeyObject } from 'node:crypto';

/** The JWS algorithms a key ring accepts. `none` is never among them. */
export type Algorithm =
  'HS256' | 'HS384' | 'HS512' | 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'ES256' | 'ES384';

export const ALGORITHMS: readonly Algorithm[] = [
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'ES256',
  'ES384',
];

export function isAlgorithm(value: unknown): value is Algorithm {
  return typeof value === 'string' && (ALGORITHMS as readonly string[]).includes(value);
}

export function isSymmetric(algorithm: Algorithm): boolean {
  return algorithm.startsWith('HS');
}

/** RFC 7518 §3.2: an HMAC key at least as long as the hash output. */
export const HMAC_MIN_BYTES: Record<string, number> = { HS256: 32, HS384: 48, HS512: 64 };

export const RSA_MIN_BITS = 2048;

const EC_CURVES: Record<string, string> = { ES256: 'prime256v1', ES384: 'secp384r1' };

/**
 * Why `key` cannot serve `algorithm`, or undefined when it can. Pinning each key to one algorithm
 * is what makes HS/RS confusion and algorithm swaps impossible.
 */
export function keyMismatch(algorithm: Algorithm, key: KeyObject): string | undefined {
  if (isSymmetric(algorithm)) {
    if (key.type !== 'secret') return `${algorithm} needs a secret, not a ${key.type} key`;
    const min = HMAC_MIN_BYTES[algorithm] ?? 32;
    const size = key.symmetricKeySize ?? 0;
    if (size < min) {
      return `an ${algorithm} secret must be at least ${min} bytes (this one has ${size}); generate one with \`node -e "console.log(require('crypto').randomBytes(${min}).toString('base64url'))"\``;
    }
    return undefined;
  }
  if (key.type === 'secret') return `${algorithm} needs an asymmetric key, not a secret`;
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (algorithm.startsWith('RS') || algorithm.startsWith('PS')) {
    const allowed = algorithm.startsWith('PS') ? ['rsa', 'rsa-pss'] : ['rsa'];
    if (!type || !allowed.includes(type)) return `${algorithm} needs an RSA key, not ${type}`;
    const bits = details.modulusLength ?? 0;
    if (bits < RSA_MIN_BITS)
      return `RSA keys must be at least ${RSA_MIN_BITS} bits (this one has ${bits})`;
    if (type === 'rsa-pss') {
      // jsonwebtoken refuses RSA-PSS-typed keys whose parameters do not match the algorithm; refuse them here, at start-up.
      const hash = `sha${algorithm.slice(2)}`;
      if (
        details.hashAlgorithm !== hash ||
        details.mgf1HashAlgorithm !== hash ||
        (details.saltLength ?? 0) > Number(algorithm.slice(2)) / 8
      ) {
        return `an RSA-PSS-typed key for ${algorithm} must be restricted to ${hash}, MGF1 ${hash} and a salt of at most ${Number(algorithm.slice(2)) / 8} bytes; or use a plain RSA key`;
      }
    }
    return undefined;
  }
  if (type !== 'ec') return `${algorithm} needs an EC key, not ${type}`;
  const curve = EC_CURVES[algorithm];
  if (details.namedCurve !== curve) {
    return `${algorithm} needs an EC key on ${curve}, not ${details.namedCurve ?? 'an unknown curve'}`;
  }
  return undefined;
}
