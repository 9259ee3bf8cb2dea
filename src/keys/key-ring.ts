import {
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  KeyObject,
  sign as cryptoSign,
  verify as cryptoVerify,
} from 'node:crypto';
import { bool, onlyKnown, shown } from '../config/validate.js';
import { AuthConfigError } from '../errors.js';
import {
  type Algorithm,
  ALGORITHMS,
  algorithmSpec,
  isAlgorithm,
  isSymmetric,
  JWK_KEY_TYPES,
  type JwkKeyType,
  keyMismatch,
  signatureOptions,
} from './algorithms.js';
import { type PublicJwk, publicMembers, toPublicJwk } from './jwk.js';

export type KeyMaterial = string | Buffer | KeyObject;

/** One entry of the `keys` option. */
export interface KeyConfig {
  /**
   * Key id put in the token header. @default the RFC 7638 JWK thumbprint of the public key; for
   * an HS secret, a keyed hash that reveals nothing about the secret
   */
  kid?: string | undefined;
  /** The one algorithm this key signs and verifies with. */
  algorithm: Algorithm;
  /** HS* only: the shared secret (at least as many bytes as the hash output). */
  secret?: KeyMaterial | undefined;
  /** RS/PS/ES/EdDSA: the private key (PEM, DER Buffer or KeyObject). Needed by the signing key. */
  privateKey?: KeyMaterial | undefined;
  /** RS/PS/ES/EdDSA: the public key. @default derived from `privateKey` */
  publicKey?: KeyMaterial | undefined;
  /** Verify with this key but never sign (the overlap while rotating keys). @default false */
  verifyOnly?: boolean | undefined;
}

/** A key as the ring holds it: KeyObjects built once at start-up. */
export interface RingKey {
  readonly kid: string;
  readonly algorithm: Algorithm;
  readonly signingKey: KeyObject | undefined;
  readonly verifyKey: KeyObject;
  readonly verifyOnly: boolean;
}

export interface KeyRing {
  /** The key new tokens are signed with. */
  readonly signer: RingKey;
  readonly keys: readonly RingKey[];
  /** The key a token header names, or undefined: `kid` is only ever a map lookup. */
  find(kid: unknown, alg: unknown): RingKey | undefined;
}

function toKeyObject(
  option: string,
  material: KeyMaterial,
  kind: 'secret' | 'private' | 'public',
): KeyObject {
  if (material instanceof KeyObject) return material;
  if (typeof material !== 'string' && !Buffer.isBuffer(material)) {
    throw new AuthConfigError(option, 'must be a string, a Buffer or a crypto.KeyObject');
  }
  try {
    if (kind === 'secret') {
      return createSecretKey(
        typeof material === 'string' ? Buffer.from(material, 'utf8') : material,
      );
    }
    return asymmetricKey(material, kind);
  } catch (cause) {
    throw new AuthConfigError(
      option,
      `could not be read as a ${kind} key (PEM or DER expected)${unreadableHint(material)}`,
      { cause },
    );
  }
}

/** What is likely wrong with key material Node could not read, as it is often pasted. */
export function unreadableHint(material: string | Buffer): string {
  if (typeof material !== 'string') return '';
  if (material.includes('-----BEGIN') && material.includes('\\n'))
    return ": it holds the two characters \\n where the PEM's line breaks belong (an environment variable?), so replace them, e.g. value.replace(/\\\\n/g, '\\n')";
  if (!material.includes('-----BEGIN') && /^[A-Za-z0-9+/=\s]+$/.test(material))
    return ": base64 DER goes in as a Buffer, Buffer.from(value, 'base64'); a string is read as PEM";
  return '';
}

/** The DER encodings a private key may come in; Node reads only PEM unless told which. */
const PRIVATE_DER = ['pkcs8', 'sec1', 'pkcs1'] as const;
const PUBLIC_DER = ['spki', 'pkcs1'] as const;

/**
 * A PEM string or Buffer, or a DER Buffer in any of the encodings above, tried in turn. A public
 * key may also be given as its private key (the public half is derived), as with PEM.
 */
function asymmetricKey(material: string | Buffer, kind: 'private' | 'public'): KeyObject {
  const read = kind === 'private' ? createPrivateKey : createPublicKey;
  if (typeof material === 'string' || material.includes('-----BEGIN ')) return read(material);
  const attempts: (() => KeyObject)[] = PRIVATE_DER.map(
    (type) => () => createPrivateKey({ key: material, format: 'der', type }),
  );
  if (kind === 'public') {
    attempts.unshift(
      ...PUBLIC_DER.map((type) => () => createPublicKey({ key: material, format: 'der', type })),
    );
  }
  let first: unknown;
  for (const attempt of attempts) {
    try {
      const key = attempt();
      return kind === 'public' && key.type === 'private' ? createPublicKey(key) : key;
    } catch (error) {
      first ??= error;
    }
  }
  throw first;
}

/** RFC 7638 thumbprint: SHA-256 over the required JWK members in lexicographic order. */
export function jwkThumbprint(key: KeyObject): string {
  const jwk = (
    key.type === 'secret' ? key.export({ format: 'jwk' }) : publicMembers(key)
  ) as Record<string, string>;
  const kty = jwk.kty as JwkKeyType;
  // The required members and kty, in lexicographic order (every member name sorts as listed).
  const members = Object.fromEntries(
    [...JWK_KEY_TYPES[kty].members, 'kty'].sort().map((name) => [name, jwk[name]]),
  );
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

/** The label an HS secret's default kid is an HMAC of. Changing it changes every default HS kid. */
const KID_LABEL = 'koa-jwt-redis key id v1';

/**
 * The default `kid` of an HMAC secret: HMAC-SHA256 of a fixed label keyed by the secret, cut to
 * 128 bits. Unlike the JWK thumbprint (an unkeyed hash of the secret, which lets anyone test a
 * guess with one SHA-256 and no token), testing a guess against it costs exactly what testing it
 * against any token's signature costs, so publishing it in every header tells nothing more.
 */
export function secretKid(key: KeyObject): string {
  return createHmac('sha256', key).update(KID_LABEL).digest().subarray(0, 16).toString('base64url');
}

const GENERATE_SECRET = `node -e "console.log(require('crypto').randomBytes(32).toString('base64url'))"`;

/**
 * Why `secret` is no HMAC secret although it is long enough, or undefined. Length alone lets
 * through secrets with almost no entropy (32 zero bytes, 'a'.repeat(32)) and the classic
 * confusion of pasting a public key (PEM) or a JWK where a shared secret belongs.
 */
export function weakSecret(secret: Buffer): string | undefined {
  const text = secret.toString('latin1');
  if (/-----BEGIN [A-Z0-9 ]+-----/.test(text)) {
    return `looks like a PEM key; an HS* secret is random bytes shared by signer and verifier. For a key pair use \`keys: [{ algorithm: 'RS256', privateKey }]\`, or generate a secret with ${GENERATE_SECRET}`;
  }
  if (/^\s*\{[\s\S]*"kty"\s*:/.test(text)) {
    return `looks like a JWK; pass the key itself through \`keys\` (a crypto.KeyObject from createPrivateKey({ key, format: 'jwk' })), or generate a secret with ${GENERATE_SECRET}`;
  }
  if (new Set(secret).size < 8) {
    return `is too repetitive to be random (fewer than 8 different byte values); generate one with ${GENERATE_SECRET}`;
  }
  return undefined;
}

/** A sign/verify round trip at start-up catches a private key paired with the wrong public key. */
function checkPair(option: string, algorithm: Algorithm, priv: KeyObject, pub: KeyObject): void {
  const data = Buffer.from('koa-jwt-redis key check');
  const { hash } = algorithmSpec(algorithm);
  const padding = signatureOptions(algorithm);
  const signature = cryptoSign(hash, data, { key: priv, ...padding });
  if (!cryptoVerify(hash, data, { key: pub, ...padding }, signature)) {
    throw new AuthConfigError(option, 'publicKey does not match privateKey');
  }
}

const KEY_CONFIG_NAMES = [
  'kid',
  'algorithm',
  'secret',
  'privateKey',
  'publicKey',
  'verifyOnly',
] as const satisfies readonly (keyof KeyConfig)[];

/**
 * What to add to a "missing" error when the option was written but holds undefined: most often an
 * environment variable that is not set (keygen prints `privateKey: process.env.JWT_PRIVATE_KEY`).
 */
function givenUndefined(config: KeyConfig, names: readonly (keyof KeyConfig)[]): string {
  const named = names.filter((name) => Object.hasOwn(config, name) && config[name] === undefined);
  return named.length === 0
    ? ''
    : ` (${named.map((name) => `\`${name}\``).join(' and ')} ${named.length === 1 ? 'is' : 'are'} given as undefined: is the environment variable set?)`;
}

/** `at` names the option in errors; `secretAt` lets the `secret` shorthand report itself as `secret`. */
function buildKey(config: KeyConfig, at: string, secretAt = `${at}.secret`): RingKey {
  if (config === null || typeof config !== 'object') {
    throw new AuthConfigError(
      at,
      'must be an object like { algorithm, secret } or { algorithm, privateKey }',
    );
  }
  // Names first: `{ alg }` is a typo to name, not an algorithm missing; and a misspelt
  // `verifyOnly` would let the retired key sign.
  onlyKnown(at, config, KEY_CONFIG_NAMES);
  const { algorithm } = config;
  if (!isAlgorithm(algorithm)) {
    throw new AuthConfigError(
      `${at}.algorithm`,
      `must be one of ${ALGORITHMS.join(', ')} (got ${shown(algorithm)})`,
    );
  }
  // Not `=== true`: a `verifyOnly: 'yes'` read as false would let the retired key sign too.
  const verifyOnly = bool(`${at}.verifyOnly`, config.verifyOnly, false);
  let signingKey: KeyObject | undefined;
  let verifyKey: KeyObject;
  if (isSymmetric(algorithm)) {
    if (config.privateKey !== undefined || config.publicKey !== undefined) {
      throw new AuthConfigError(at, `${algorithm} takes a secret, not privateKey/publicKey`);
    }
    if (config.secret === undefined)
      throw new AuthConfigError(
        secretAt,
        `is required for ${algorithm}${givenUndefined(config, ['secret'])}`,
      );
    signingKey = verifyKey = toKeyObject(secretAt, config.secret, 'secret');
    const problem = keyMismatch(algorithm, verifyKey) ?? weakSecret(verifyKey.export());
    if (problem) throw new AuthConfigError(secretAt, problem);
  } else {
    if (config.secret !== undefined) {
      throw new AuthConfigError(
        `${at}.secret`,
        `${algorithm} takes privateKey/publicKey, not a secret`,
      );
    }
    if (config.privateKey !== undefined) {
      signingKey = toKeyObject(`${at}.privateKey`, config.privateKey, 'private');
      if (signingKey.type !== 'private')
        throw new AuthConfigError(`${at}.privateKey`, 'is not a private key');
      const problem = keyMismatch(algorithm, signingKey);
      if (problem) throw new AuthConfigError(`${at}.privateKey`, problem);
    }
    if (config.publicKey !== undefined) {
      verifyKey = toKeyObject(`${at}.publicKey`, config.publicKey, 'public');
      if (verifyKey.type === 'private') verifyKey = createPublicKey(verifyKey);
    } else if (signingKey) {
      verifyKey = createPublicKey(signingKey);
    } else {
      throw new AuthConfigError(
        at,
        `${algorithm} needs a publicKey (or a privateKey to derive it from)${givenUndefined(config, ['privateKey', 'publicKey'])}`,
      );
    }
    const problem = keyMismatch(algorithm, verifyKey);
    if (problem) throw new AuthConfigError(`${at}.publicKey`, problem);
    if (signingKey && config.publicKey !== undefined)
      checkPair(at, algorithm, signingKey, verifyKey);
  }
  // Asymmetric keys keep their published RFC 7638 thumbprint; a secret's kid must not reveal it.
  const kid =
    config.kid ?? (verifyKey.type === 'secret' ? secretKid(verifyKey) : jwkThumbprint(verifyKey));
  if (typeof kid !== 'string' || kid.length === 0 || kid.length > 256) {
    throw new AuthConfigError(`${at}.kid`, 'must be a non-empty string of at most 256 characters');
  }
  return { kid, algorithm, signingKey: verifyOnly ? undefined : signingKey, verifyKey, verifyOnly };
}

/** Builds the key ring from `secret` or `keys`, validating everything once. */
export function createKeyRing(options: {
  secret?: KeyMaterial | undefined;
  keys?: readonly KeyConfig[] | undefined;
}): KeyRing {
  const { secret, keys } = options;
  if (secret !== undefined && keys !== undefined) {
    throw new AuthConfigError('secret', 'give either `secret` or `keys`, not both');
  }
  let configs: readonly KeyConfig[];
  if (keys !== undefined) {
    if (!Array.isArray(keys) || keys.length === 0) {
      throw new AuthConfigError('keys', 'must be a non-empty array of key configurations');
    }
    configs = keys;
  } else if (secret !== undefined && secret !== null && (secret as unknown) !== '') {
    configs = [{ algorithm: 'HS256', secret }];
  } else {
    throw new AuthConfigError(
      'secret',
      'is required: pass `secret` (at least 32 random bytes, e.g. process.env.JWT_SECRET) or `keys`',
    );
  }
  const ring =
    keys === undefined
      ? [buildKey(configs[0]!, 'secret', 'secret')]
      : // Array.from visits a sparse array's holes, which map skips: a hole is named, not a TypeError later.
        Array.from(configs, (config, index) => buildKey(config, `keys[${index}]`));
  const signer = ring.find((key) => key.signingKey !== undefined);
  if (!signer) {
    throw new AuthConfigError(
      'keys',
      'no key can sign: give the first active key a secret or privateKey, and do not mark every key verifyOnly',
    );
  }
  return ringOf(ring, () => signer);
}

/**
 * A ring that only verifies, e.g. built from a remote JWKS. Asking it for a signer is a bug in
 * the caller, reported as such.
 */
export function createVerifyRing(keys: readonly RingKey[]): KeyRing {
  return ringOf(keys, () => {
    throw new TypeError('koa-jwt-redis: this key ring only verifies; it has no signing key');
  });
}

function ringOf(ring: readonly RingKey[], signer: () => RingKey): KeyRing {
  const byKid = new Map<string, RingKey>();
  for (const key of ring) {
    if (byKid.has(key.kid))
      throw new AuthConfigError('keys', `two keys share the kid ${JSON.stringify(key.kid)}`);
    byKid.set(key.kid, key);
  }
  return {
    get signer() {
      return signer();
    },
    keys: ring,
    find(kid, alg) {
      if (typeof kid === 'string') {
        const key = byKid.get(kid);
        return key && key.algorithm === alg ? key : undefined;
      }
      if (kid !== undefined) return undefined;
      // No kid: only a key pinned to the header's algorithm may be tried, and only if it is the sole one.
      let match: RingKey | undefined;
      for (const key of ring) {
        if (key.algorithm !== alg) continue;
        if (match) return undefined;
        match = key;
      }
      return match;
    },
  };
}

/**
 * The ring's public keys as a JWK Set: asymmetric keys only (HS secrets are never published),
 * verify-only keys included (verifiers need them during a rotation), private parts never.
 */
export function publicJwks(ring: KeyRing): { keys: PublicJwk[] } {
  return {
    keys: ring.keys
      .filter((key) => !isSymmetric(key.algorithm))
      .map((key) => toPublicJwk(key.kid, key.algorithm, key.verifyKey)),
  };
}
