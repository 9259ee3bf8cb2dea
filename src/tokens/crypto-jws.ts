import { type KeyObject, sign, verify } from 'node:crypto';
import { type Algorithm, algorithmSpec, signatureOptions } from '../keys/algorithms.js';
import { signingInput } from './hmac-jws.js';

/**
 * Compact JWS for the asymmetric algorithms signed and verified with node:crypto directly rather
 * than through jsonwebtoken: EdDSA, which jsonwebtoken refuses, and PS384, PS512 and ES512, which
 * it handles but no faster (bench/algorithms.ts: the same signing time within noise, and each
 * verification 4 to 8 µs slower for its per-call option and key checks, all of which the key ring
 * settles once at start-up). The algorithms that were there before keep going through jsonwebtoken.
 */
export const DIRECT_ALGORITHMS: ReadonlySet<Algorithm> = new Set<Algorithm>([
  'PS384',
  'PS512',
  'ES512',
  'EdDSA',
]);

export const isDirect = (algorithm: Algorithm): boolean => DIRECT_ALGORITHMS.has(algorithm);

/** A token with the encoded `header`, signed with a private key of `algorithm`. */
export function directSign(
  algorithm: Algorithm,
  key: KeyObject,
  header: string,
  payload: Record<string, unknown>,
): string {
  const input = signingInput(header, payload);
  const signature = sign(algorithmSpec(algorithm).hash, Buffer.from(input), {
    key,
    ...signatureOptions(algorithm),
  });
  return `${input}.${signature.toString('base64url')}`;
}

/**
 * Whether the last segment of `token` is a valid `algorithm` signature of the rest under `key`.
 * Only the canonical base64url spelling of a signature is accepted (no second spelling of the
 * same bytes); an ES* signature must be r || s of exactly the curve's size, which node:crypto
 * checks for IEEE P1363 encoding. Never throws.
 */
export function signatureVerify(algorithm: Algorithm, key: KeyObject, token: string): boolean {
  const dot = token.lastIndexOf('.');
  const given = token.slice(dot + 1);
  const signature = Buffer.from(given, 'base64url');
  if (signature.length === 0 || signature.toString('base64url') !== given) return false;
  try {
    return verify(
      algorithmSpec(algorithm).hash,
      Buffer.from(token.slice(0, dot)),
      { key, ...signatureOptions(algorithm) },
      signature,
    );
  } catch {
    return false;
  }
}
