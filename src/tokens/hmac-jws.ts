import { createHmac, type KeyObject, timingSafeEqual } from 'node:crypto';
import { type Algorithm, algorithmSpec, isSymmetric } from '../keys/algorithms.js';

/**
 * Compact JWS with HMAC (HS256/384/512), the library's default keys, without jsonwebtoken's
 * per-call work: its option schema, lodash checks and key re-validation run on every call, yet
 * every one of them is settled once at start-up here (the key ring pins each key to one algorithm
 * and checks its size). Tokens are byte for byte what `jwt.sign` makes with the same header and
 * payload, and verification is as strict as `jwt.verify` with an algorithm allowlist of one.
 * Asymmetric keys keep going through jsonwebtoken.
 */

export const isHmac = isSymmetric;

const encode = (json: string) => Buffer.from(json, 'utf8').toString('base64url');

/**
 * The encoded header for one key and token type, built once; `extra` parameters (checked by the
 * caller) come first, as jsonwebtoken orders them.
 */
export function encodedHeader(
  algorithm: Algorithm,
  typ: string,
  kid: string,
  extra?: Record<string, unknown>,
): string {
  return encode(JSON.stringify({ ...extra, alg: algorithm, typ, kid }));
}

/** What a JWS signs: the encoded header, a dot, the encoded payload (RFC 7515 §5.1). */
export function signingInput(header: string, payload: Record<string, unknown>): string {
  return `${header}.${encode(JSON.stringify(payload))}`;
}

export function hmacSign(
  algorithm: Algorithm,
  key: KeyObject,
  header: string,
  payload: Record<string, unknown>,
): string {
  const input = signingInput(header, payload);
  return `${input}.${createHmac(algorithmSpec(algorithm).hash!, key).update(input).digest('base64url')}`;
}

/**
 * Whether the last segment of `token` is the HMAC of the rest under `key`. The expected
 * signature is compared in its canonical base64url form, as jwa does, so no second spelling of
 * the same bytes passes; the comparison takes constant time.
 */
export function hmacVerify(algorithm: Algorithm, key: KeyObject, token: string): boolean {
  const dot = token.lastIndexOf('.');
  const expected = createHmac(algorithmSpec(algorithm).hash!, key)
    .update(token.slice(0, dot))
    .digest('base64url');
  const given = token.slice(dot + 1);
  return (
    given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected))
  );
}

/** Why the registered claims fail, as jsonwebtoken checks them; undefined when they pass. */
export function claimsError(
  claims: Record<string, unknown>,
  nowSeconds: number,
  leeway: number,
  issuer: string | undefined,
  audience: readonly string[] | undefined,
): 'expired' | 'not_before' | 'invalid' | undefined {
  const { nbf, exp } = claims;
  if (nbf !== undefined) {
    // A string or -1e400 (-Infinity once parsed) is no NumericDate: refused, not compared.
    if (typeof nbf !== 'number' || !Number.isFinite(nbf)) return 'invalid';
    if (nbf > nowSeconds + leeway) return 'not_before';
  }
  if (exp !== undefined) {
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return 'invalid';
    if (nowSeconds >= exp + leeway) return 'expired';
  }
  if (audience !== undefined) {
    const given = Array.isArray(claims.aud) ? (claims.aud as unknown[]) : [claims.aud];
    if (!given.some((aud) => typeof aud === 'string' && audience.includes(aud))) return 'invalid';
  }
  if (issuer !== undefined && claims.iss !== issuer) return 'invalid';
  return undefined;
}
