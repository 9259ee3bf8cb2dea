import { constants, type KeyObject } from 'node:crypto';

/**
 * JWK members per key type: the public ones a JWKS carries (RFC 7518 §6), which are also the
 * members an RFC 7638 thumbprint hashes (with `kty`, in lexicographic order).
 */
export const JWK_KEY_TYPES = {
  oct: { members: ['k'] },
  RSA: { members: ['e', 'n'] },
  EC: { members: ['crv', 'x', 'y'] },
  OKP: { members: ['crv', 'x'] },
} as const;

export type JwkKeyType = keyof typeof JWK_KEY_TYPES;

interface AlgorithmSpec {
  /**
   * HMAC takes a secret; RSA (RS*) and RSA-PSS (PS*) an RSA key; EC (ES*) a key on `curve`;
   * EdDSA (RFC 8037) an Ed25519 key.
   */
  family: 'HMAC' | 'RSA' | 'RSA-PSS' | 'EC' | 'EdDSA';
  /** The digest, as node:crypto names it; null for EdDSA, which hashes inside the signature. */
  hash: 'sha256' | 'sha384' | 'sha512' | null;
  /** The JWK key type of its keys. */
  kty: JwkKeyType;
  /** HMAC: the least secret length in bytes, the hash output size (RFC 7518 §3.2). */
  minSecretBytes?: number | undefined;
  /**
   * EC: the curve as node:crypto names it, and as a JWK names it (`crv`). EdDSA: the key type
   * as node:crypto names it (`asymmetricKeyType`), and the JWK `crv`.
   */
  curve?: { node: string; jwk: string } | undefined;
}

/**
 * The one table of algorithms: every key ring, JWK import and export, the verifier's
 * `algorithms` option and the keygen command read it. `none` is never among them.
 */
export const ALGORITHM_TABLE = {
  HS256: { family: 'HMAC', hash: 'sha256', kty: 'oct', minSecretBytes: 32 },
  HS384: { family: 'HMAC', hash: 'sha384', kty: 'oct', minSecretBytes: 48 },
  HS512: { family: 'HMAC', hash: 'sha512', kty: 'oct', minSecretBytes: 64 },
  RS256: { family: 'RSA', hash: 'sha256', kty: 'RSA' },
  RS384: { family: 'RSA', hash: 'sha384', kty: 'RSA' },
  RS512: { family: 'RSA', hash: 'sha512', kty: 'RSA' },
  PS256: { family: 'RSA-PSS', hash: 'sha256', kty: 'RSA' },
  PS384: { family: 'RSA-PSS', hash: 'sha384', kty: 'RSA' },
  PS512: { family: 'RSA-PSS', hash: 'sha512', kty: 'RSA' },
  ES256: {
    family: 'EC',
    hash: 'sha256',
    kty: 'EC',
    curve: { node: 'prime256v1', jwk: 'P-256' },
  },
  ES384: {
    family: 'EC',
    hash: 'sha384',
    kty: 'EC',
    curve: { node: 'secp384r1', jwk: 'P-384' },
  },
  ES512: {
    family: 'EC',
    hash: 'sha512',
    kty: 'EC',
    curve: { node: 'secp521r1', jwk: 'P-521' },
  },
  EdDSA: {
    family: 'EdDSA',
    hash: null,
    kty: 'OKP',
    curve: { node: 'ed25519', jwk: 'Ed25519' },
  },
} as const satisfies Record<string, AlgorithmSpec>;

/** The JWS algorithms a key ring accepts. */
export type Algorithm = keyof typeof ALGORITHM_TABLE;

export const ALGORITHMS: readonly Algorithm[] = Object.keys(ALGORITHM_TABLE) as Algorithm[];

/** The table's entry for one algorithm. */
export function algorithmSpec(algorithm: Algorithm): AlgorithmSpec {
  return ALGORITHM_TABLE[algorithm];
}

export function isAlgorithm(value: unknown): value is Algorithm {
  return typeof value === 'string' && Object.hasOwn(ALGORITHM_TABLE, value);
}

export function isSymmetric(algorithm: Algorithm): boolean {
  return ALGORITHM_TABLE[algorithm].family === 'HMAC';
}

/** Whether the algorithm takes an RSA key (RS* and PS*). */
export function isRsa(algorithm: Algorithm): boolean {
  const { family } = ALGORITHM_TABLE[algorithm];
  return family === 'RSA' || family === 'RSA-PSS';
}

/** The least HMAC secret length of an algorithm, in bytes (RFC 7518 §3.2). */
export function minSecretBytes(algorithm: Algorithm): number {
  return algorithmSpec(algorithm).minSecretBytes ?? 32;
}

export const RSA_MIN_BITS = 2048;

/** The digest bytes of a hash as node:crypto names it (sha256 → 32): the PSS salt length. */
const hashBytes = (hash: 'sha256' | 'sha384' | 'sha512') => Number(hash.slice(3)) / 8;

/**
 * Options for node:crypto sign/verify beyond the key, as JWS defines each family (RFC 7518 §3.4,
 * §3.5): PS* use PSS padding with a salt as long as the hash; ES* signatures are r || s of fixed
 * length (IEEE P1363), not DER.
 */
export function signatureOptions(algorithm: Algorithm): {
  padding?: number | undefined;
  saltLength?: number | undefined;
  dsaEncoding?: 'ieee-p1363' | undefined;
} {
  const spec = algorithmSpec(algorithm);
  if (spec.family === 'RSA-PSS')
    return { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: hashBytes(spec.hash!) };
  if (spec.family === 'EC') return { dsaEncoding: 'ieee-p1363' };
  return {};
}

/**
 * Why `key` cannot serve `algorithm`, or undefined when it can. Pinning each key to one algorithm
 * is what makes HS/RS confusion and algorithm swaps impossible. `sizes: false` leaves out the
 * least secret length and RSA modulus, for a key that only verifies what another library signed
 * (koaJwtStrategy's), where only the kind, curve and RSA-PSS parameters decide what verifies.
 */
export function keyMismatch(
  algorithm: Algorithm,
  key: KeyObject,
  { sizes = true }: { sizes?: boolean | undefined } = {},
): string | undefined {
  const spec = algorithmSpec(algorithm);
  if (spec.family === 'HMAC') {
    if (key.type !== 'secret') return `${algorithm} needs a secret, not a ${key.type} key`;
    if (!sizes) return undefined;
    const min = minSecretBytes(algorithm);
    const size = key.symmetricKeySize ?? 0;
    if (size < min) {
      return `an ${algorithm} secret must be at least ${min} bytes (this one has ${size}); generate one with \`node -e "console.log(require('crypto').randomBytes(${min}).toString('base64url'))"\``;
    }
    return undefined;
  }
  if (key.type === 'secret') return `${algorithm} needs an asymmetric key, not a secret`;
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (spec.family === 'RSA' || spec.family === 'RSA-PSS') {
    const allowed = spec.family === 'RSA-PSS' ? ['rsa', 'rsa-pss'] : ['rsa'];
    if (!type || !allowed.includes(type)) return `${algorithm} needs an RSA key, not ${type}`;
    const bits = details.modulusLength ?? 0;
    if (sizes && bits < RSA_MIN_BITS)
      return `RSA keys must be at least ${RSA_MIN_BITS} bits (this one has ${bits})`;
    if (type === 'rsa-pss') {
      // OpenSSL (and jsonwebtoken) refuse to use an RSA-PSS-typed key outside its parameters; refuse it here, at start-up.
      const hash = spec.hash!;
      const salt = hashBytes(hash);
      if (
        details.hashAlgorithm !== hash ||
        details.mgf1HashAlgorithm !== hash ||
        (details.saltLength ?? 0) > salt
      ) {
        return `an RSA-PSS-typed key for ${algorithm} must be restricted to ${hash}, MGF1 ${hash} and a salt of at most ${salt} bytes; or use a plain RSA key`;
      }
    }
    return undefined;
  }
  if (spec.family === 'EdDSA') {
    // Only Ed25519: an Ed448 key would also be "EdDSA", and must not slip in under the same name.
    if (type !== spec.curve?.node) return `${algorithm} needs an Ed25519 key, not ${type}`;
    return undefined;
  }
  if (type !== 'ec') return `${algorithm} needs an EC key, not ${type}`;
  const curve = spec.curve?.node;
  if (details.namedCurve !== curve) {
    return `${algorithm} needs an EC key on ${curve}, not ${details.namedCurve ?? 'an unknown curve'}`;
  }
  return undefined;
}
