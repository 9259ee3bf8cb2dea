import { createPublicKey, type KeyObject } from 'node:crypto';
import {
  type Algorithm,
  isAlgorithm,
  isSymmetric,
  JWK_KEY_TYPES,
  keyMismatch,
} from './algorithms.js';

/** A public signing key as published in a JWKS (RFC 7517): only public members, always kid, alg, use. */
export interface PublicJwk {
  kty: 'RSA' | 'EC';
  kid: string;
  alg: Algorithm;
  use: 'sig';
  n?: string;
  e?: string;
  crv?: string;
  x?: string;
  y?: string;
}

/** JWK members that hold private or secret key material (RFC 7518 §6.2.2, §6.3.2, §6.4.1). */
export const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/**
 * Reads one DER element (tag, length, contents) at `offset`. Only what an SPKI needs: a short
 * parser rather than a dependency, used for RSA-PSS keys that Node cannot export as JWK.
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

/**
 * The public members of an asymmetric key, copied one by one from Node's export — never a spread,
 * so a private member can never slip into a published key.
 */
export function publicMembers(
  key: KeyObject,
): Pick<PublicJwk, 'kty' | 'n' | 'e' | 'crv' | 'x' | 'y'> {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const jwk = asPlainRsa(publicKey).export({ format: 'jwk' }) as Record<string, string>;
  const { kty } = jwk;
  if (kty !== 'RSA' && kty !== 'EC')
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
 * RSA size), and a JWK that carries private or secret material is refused outright.
 * Returns `skip` for keys that are not for signatures (`use: 'enc'`), which a JWKS may also hold.
 */
export function importPublicJwk(
  jwk: unknown,
  allowed: ReadonlySet<Algorithm>,
):
  | { kid: string | undefined; algorithm: Algorithm; key: KeyObject }
  | { skip: string }
  | { error: string } {
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
  if (kty !== 'RSA' && kty !== 'EC')
    return { error: `has a key type that is not accepted (${JSON.stringify(kty)})` };
  const members: Record<string, unknown> = { kty };
  for (const name of JWK_KEY_TYPES[kty].members) members[name] = entry[name];
  if (!Object.values(members).every((value) => typeof value === 'string' && value.length > 0)) {
    return { error: `lacks the public members of an ${String(entry.kty)} key` };
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: members as never, format: 'jwk' });
  } catch {
    return { error: 'is not a valid public key' };
  }
  const problem = keyMismatch(alg, key);
  if (problem) return { error: `does not fit its alg: ${problem}` };
  return { kid, algorithm: alg, key };
}
