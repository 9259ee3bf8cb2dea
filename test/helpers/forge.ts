import { createHmac, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import {
  type Algorithm,
  algorithmSpec,
  isSymmetric,
  signatureOptions,
} from '../../src/keys/algorithms.js';

const b64 = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** A JWS with any header and payload, HMAC-signed with `secret` (attackers' tokens). */
export function forgeHmac(
  header: object,
  payload: unknown,
  secret: string | Buffer,
  hash = 'sha256',
): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`;
}

/** A JWS signed with an asymmetric key using Node's crypto directly. */
export function forgeAsymmetric(
  header: object,
  payload: unknown,
  key: KeyObject,
  hash: string,
  pss = false,
): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const signature = sign(hash, Buffer.from(input), pss ? { key, padding: 6, saltLength: 32 } : key);
  return `${input}.${signature.toString('base64url')}`;
}

/**
 * A JWS with any header and payload (a string is taken as the payload's raw text), signed as
 * `algorithm` defines it (HMAC; PKCS#1 v1.5; PSS with a salt as long as the hash; ECDSA as r || s;
 * Ed25519) with the real `key`: the signature is right, so only the checks after it can refuse it.
 */
export function forgeSigned(
  algorithm: Algorithm,
  key: KeyObject | string | Buffer,
  header: object,
  payload: unknown,
): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const { hash } = algorithmSpec(algorithm);
  const signature = isSymmetric(algorithm)
    ? createHmac(hash!, key).update(input).digest()
    : sign(hash, Buffer.from(input), { key: key as KeyObject, ...signatureOptions(algorithm) });
  return `${input}.${signature.toString('base64url')}`;
}

/** Replaces one segment of a token, keeping the others. */
export function withSegment(token: string, index: number, value: string): string {
  const parts = token.split('.');
  parts[index] = value;
  return parts.join('.');
}

export const decodeSegment = (token: string, index: number): Record<string, unknown> =>
  JSON.parse(Buffer.from(token.split('.')[index]!, 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;

export const rsaKeys = (bits = 2048) => generateKeyPairSync('rsa', { modulusLength: bits });
export const ecKeys = (curve: string) => generateKeyPairSync('ec', { namedCurve: curve });

export const SECRET = 'test-secret-that-is-32-bytes-long!!';
/** An RSA-PSS-typed key pair restricted to PS256's parameters (@types/node mistypes saltLength as a string). */
export const pssKeys = () =>
  generateKeyPairSync('rsa-pss', {
    modulusLength: 2048,
    hashAlgorithm: 'sha256',
    mgf1HashAlgorithm: 'sha256',
    saltLength: 32 as unknown as string,
  });
