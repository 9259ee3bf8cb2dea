import { createPublicKey, KeyObject, type webcrypto } from 'node:crypto';
import type { JWK } from 'jose';
import {
  type Algorithm,
  algorithmSpec,
  isAlgorithm,
  isSymmetric,
  JWK_KEY_TYPES,
  keyMismatch,
} from './algorithms.js';

/**
 * jose, loaded on first use: only a verifier reading a remote JWKS needs it, and jose is an
 * ES module that the CommonJS build could not `require()` on Node 20 before 20.19; a dynamic
 * import works in both builds. Node caches the module, so later calls cost a resolved promise.
 */
export const loadJose = () => import('jose');

/** A public signing key as published in a JWKS (RFC 7517): only public members, always kid, alg, use. */
export interface PublicJwk {
  kty: 'RSA' | 'EC' | 'OKP';
  kid: string;
  alg: Algorithm;
  use: 'sig';
  n?: string | undefined;
  e?: string | undefined;
  crv?: string | undefined;
  x?: string | undefined;
  y?: string | undefined;
}

/** JWK members that hold private or secret key material (RFC 7518 §6.2.2, §6.3.2, §6.4.1). */
export const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/**
 * Reads one DER element (tag, length, contents) at `offset`. Only what an SPKI needs, used for
 * RSA-PSS-typed keys that nothing else here can turn into a JWK on Node 20: KeyObject.export
 * (which jose's exportJWK calls for a KeyObject) throws ERR_CRYPTO_JWK_UNSUPPORTED_KEY_TYPE, and
 * WebCrypto (jose's importSPKI) refuses the RSASSA-PSS key type.
 */
function derElement(der: Buffer, offset: number): { tag: number; start: number; end: number } {
  const tag = der[offset]!;
  let length = der[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[start + i]!;
    start += bytes;
  }
  return { tag, start, end: start + length };
}

/**
 * Node refuses to export an `rsa-pss` KeyObject as JWK; its SPKI wraps the same RSAPublicKey
 * (PKCS#1) as a plain RSA key, so re-read that as `rsa` to get `n` and `e`.
 */
function asPlainRsa(key: KeyObject): KeyObject {
  if (key.asymmetricKeyType !== 'rsa-pss') return key;
  const spki = key.export({ format: 'der', type: 'spki' });
  const outer = derElement(spki, 0);
  const algorithmId = derElement(spki, outer.start);
  const bitString = derElement(spki, algorithmId.end);
  // A BIT STRING's first content byte counts unused bits (0 here); the RSAPublicKey follows.
  const pkcs1 = spki.subarray(bitString.start + 1, bitString.end);
  return createPublicKey({ key: pkcs1, format: 'der', type: 'pkcs1' });
}

const isPublishedKeyType = (kty: unknown): kty is PublicJwk['kty'] =>
  kty === 'RSA' || kty === 'EC' || kty === 'OKP';

/**
 * The public members of an asymmetric key, copied one by one from Node's export — never a spread,
 * so a private member can never slip into a published key. Node's export is what jose's exportJWK
 * does for a KeyObject too; called directly, it stays synchronous, so createAuth and auth.jwks()
 * need no await.
 */
export function publicMembers(
  key: KeyObject,
): Pick<PublicJwk, 'kty' | 'n' | 'e' | 'crv' | 'x' | 'y'> {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const jwk = asPlainRsa(publicKey).export({ format: 'jwk' }) as Record<string, string>;
  const { kty } = jwk;
  if (!isPublishedKeyType(kty))
    throw new TypeError(`koa-jwt-redis: cannot publish a ${String(kty)} key`);
  const members: Record<string, string> = { kty };
  for (const name of JWK_KEY_TYPES[kty].members) members[name] = jwk[name]!;
  return members as Pick<PublicJwk, 'kty' | 'n' | 'e' | 'crv' | 'x' | 'y'>;
}

/** The JWK a verifier needs for one asymmetric ring key. */
export function toPublicJwk(kid: string, algorithm: Algorithm, key: KeyObject): PublicJwk {
  return { ...publicMembers(key), kid, alg: algorithm, use: 'sig' };
}

/**
 * Turns one JWK from a remote JWKS into a verify key, or says why not. Every check a ring key gets
 * applies here too: an allowed asymmetric `alg` is required and must fit the key (type, curve,
 * RSA size), and a JWK that carries private or secret material is refused outright. jose's
 * importJWK reads the key; our checks come before it (so each refusal says what is wrong) and
 * after it (keyMismatch on the KeyObject, as for ring keys).
 * Returns `skip` for keys that are not for signatures (`use: 'enc'`), which a JWKS may also hold.
 */
export async function importPublicJwk(
  jwk: unknown,
  allowed: ReadonlySet<Algorithm>,
): Promise<
  | { kid: string | undefined; algorithm: Algorithm; key: KeyObject; jwk: JWK }
  | { skip: string }
  | { error: string }
> {
  if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk))
    return { error: 'is not a JSON object' };
  const entry = jwk as Record<string, unknown>;
  for (const member of PRIVATE_JWK_MEMBERS) {
    if (member in entry) return { error: `carries private or secret key material ("${member}")` };
  }
  if (entry.use !== undefined && entry.use !== 'sig')
    return { skip: `is for "${String(entry.use)}", not signatures` };
  if (
    entry.key_ops !== undefined &&
    !(Array.isArray(entry.key_ops) && entry.key_ops.includes('verify'))
  ) {
    return { skip: 'its key_ops do not include "verify"' };
  }
  const kid = entry.kid;
  if (kid !== undefined && (typeof kid !== 'string' || kid.length === 0 || kid.length > 256)) {
    return { error: 'has a kid that is not a string of 1 to 256 characters' };
  }
  const alg = entry.alg;
  if (alg === undefined)
    return { error: 'has no "alg"; every key must be pinned to one algorithm' };
  if (!isAlgorithm(alg) || isSymmetric(alg) || !allowed.has(alg))
    return { error: `has an algorithm that is not accepted (${JSON.stringify(alg)})` };
  const { kty } = entry;
  if (!isPublishedKeyType(kty))
    return { error: `has a key type that is not accepted (${JSON.stringify(kty)})` };
  const spec = algorithmSpec(alg);
  if (kty !== spec.kty)
    return {
      error: `has a key type that does not fit its alg: ${alg} needs ${keyName(alg)}, not ${kty}`,
    };
  // Only the public members go to jose, copied one by one: no use, key_ops, ext or stray member.
  const members: Record<string, unknown> = { kty };
  for (const name of JWK_KEY_TYPES[kty].members) members[name] = entry[name];
  if (!Object.values(members).every((value) => typeof value === 'string' && value.length > 0)) {
    return { error: `lacks the public members of an ${kty} key` };
  }
  if (spec.curve !== undefined && members.crv !== spec.curve.jwk) {
    return {
      error: `does not fit its alg: ${alg} needs ${keyName(alg)}, not ${JSON.stringify(members.crv)}`,
    };
  }
  let key: KeyObject;
  try {
    const { importJWK } = await loadJose();
    key = KeyObject.from((await importJWK(members as JWK, alg)) as webcrypto.CryptoKey);
  } catch {
    return { error: 'is not a valid public key' };
  }
  const problem = keyMismatch(alg, key);
  if (problem) return { error: `does not fit its alg: ${problem}` };
  return { kid, algorithm: alg, key, jwk: members as JWK };
}

/** How an error names the key an algorithm needs. */
function keyName(algorithm: Algorithm): string {
  const { family, curve } = algorithmSpec(algorithm);
  if (family === 'EdDSA') return 'an Ed25519 key (OKP)';
  if (curve) return `an EC key on ${curve.node} (${curve.jwk})`;
  return 'an RSA key';
}
