/**
 * Signing and verifying one access token per asymmetric algorithm: the library's TokenService
 * (jsonwebtoken, or node:crypto directly for tokens/crypto-jws.ts DIRECT_ALGORITHMS), jsonwebtoken
 * called the way TokenService calls it, and jose's async jwtVerify. What decides which algorithms
 * are signed without jsonwebtoken. Usage: npx tsx bench/algorithms.ts [ms per measurement]
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { jwtVerify } from 'jose';
import jsonwebtoken from 'jsonwebtoken';
import { ALGORITHMS, type Algorithm, algorithmSpec } from '../src/keys/algorithms.js';
import { createKeyRing } from '../src/keys/key-ring.js';
import { DIRECT_ALGORITHMS } from '../src/tokens/crypto-jws.js';
import { TokenService } from '../src/tokens/token-service.js';

const ms = Number(process.argv[2] ?? 1000);

function keyPair(algorithm: Algorithm): KeyObject {
  const { family, curve } = algorithmSpec(algorithm);
  if (family === 'EdDSA') return generateKeyPairSync('ed25519').privateKey;
  if (curve) return generateKeyPairSync('ec', { namedCurve: curve.node }).privateKey;
  return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
}

/** µs per call of `op`, run for `ms` after a warm-up. */
async function time(op: () => unknown): Promise<number> {
  for (let i = 0; i < 20; i++) await op();
  let ops = 0;
  const started = process.hrtime.bigint();
  const deadline = started + BigInt(ms) * 1_000_000n;
  let now = started;
  while (now < deadline) {
    for (let i = 0; i < 10; i++) await op();
    ops += 10;
    now = process.hrtime.bigint();
  }
  return Number(now - started) / ops / 1000;
}

const rows: string[] = [];
for (const algorithm of ALGORITHMS.filter((alg) => !alg.startsWith('HS'))) {
  const privateKey = keyPair(algorithm);
  const publicKey = createPublicKey(privateKey);
  const tokens = new TokenService({
    ring: createKeyRing({ keys: [{ algorithm, privateKey, kid: 'k' }] }),
    accessTokenTtl: 900,
    refreshTokenTtl: 3600,
    issuer: undefined,
    audience: undefined,
    leeway: 5,
    verifyCacheSize: 0,
  });
  const claims = { sub: '1', sid: 'session', role: 'admin' };
  const { token } = tokens.sign('access', claims);
  const librarySign = await time(() => tokens.sign('access', claims));
  const libraryVerify = await time(() => tokens.verify(token, 'access'));
  let jwtSign = 'refuses it';
  let jwtVerifyTime = 'refuses it';
  if (algorithm !== 'EdDSA') {
    const alg = algorithm as jsonwebtoken.Algorithm;
    const payload = { ...claims, token_use: 'access', iat: 1, exp: 4_000_000_000 };
    const header = { alg, typ: 'at+jwt', kid: 'k' };
    jwtSign = (
      await time(() => jsonwebtoken.sign(payload, privateKey, { algorithm: alg, header }))
    ).toFixed(1);
    const options = { algorithms: [alg], complete: true as const, ignoreExpiration: true };
    jwtVerifyTime = (await time(() => jsonwebtoken.verify(token, publicKey, options))).toFixed(1);
  }
  const joseVerify = await time(() => jwtVerify(token, publicKey, { algorithms: [algorithm] }));
  rows.push(
    `| ${algorithm} | ${DIRECT_ALGORITHMS.has(algorithm) ? 'node:crypto' : 'jsonwebtoken'} | ${librarySign.toFixed(1)} | ${jwtSign} | ${libraryVerify.toFixed(1)} | ${jwtVerifyTime} | ${joseVerify.toFixed(1)} |`,
  );
}
console.log(
  [
    `Node ${process.version}, ${ms} ms per measurement, µs per token`,
    '',
    '| alg | library signs with | library sign | jsonwebtoken sign | library verify | jsonwebtoken verify | jose jwtVerify |',
    '|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n'),
);
