/**
 * Token verification alone, in one process: what the verified-token cache buys, and what
 * jsonwebtoken costs with a string secret (as koa-jwt uses it) versus a prebuilt KeyObject.
 */
import { createSecretKey } from 'node:crypto';
import jsonwebtoken from 'jsonwebtoken';
import { createKeyRing } from '../src/keys/key-ring.js';
import { TokenService } from '../src/tokens/token-service.js';
import { SECRET } from './secret.js';

export interface VerifyResult {
  label: string;
  nsPerOp: number;
}

function time(label: string, ms: number, op: (i: number) => unknown): VerifyResult {
  for (let i = 0; i < 2000; i++) op(i); // warm up the JIT
  let ops = 0;
  const started = process.hrtime.bigint();
  const deadline = started + BigInt(ms) * 1_000_000n;
  let now = started;
  while (now < deadline) {
    for (let i = 0; i < 200; i++) op(ops++);
    now = process.hrtime.bigint();
  }
  return { label, nsPerOp: Number(now - started) / ops };
}

export function verifyBench(ms = 1000): VerifyResult[] {
  const service = (verifyCacheSize: number) =>
    new TokenService({
      ring: createKeyRing({ secret: SECRET }),
      accessTokenTtl: 900,
      refreshTokenTtl: 3600,
      issuer: undefined,
      audience: undefined,
      leeway: 5,
      verifyCacheSize,
    });
  const cached = service(10_000);
  const uncached = service(0);
  // 100 distinct tokens in turn, as the HTTP runs send; fresh strings each time, as from a request.
  const tokens = Array.from(
    { length: 100 },
    (_, i) => cached.sign('access', { sub: `user-${i}`, sid: `s${i}` }).token,
  );
  const fresh = (i: number) => (tokens[i % 100]! + ' ').slice(0, -1);
  const plain = Array.from({ length: 100 }, (_, i) =>
    jsonwebtoken.sign({ sub: `user-${i}` }, SECRET, { expiresIn: 900 }),
  );
  const key = createSecretKey(Buffer.from(SECRET));
  return [
    time('jsonwebtoken.verify, string secret (koa-jwt)', ms, (i) =>
      jsonwebtoken.verify(plain[i % 100]!, SECRET),
    ),
    time('jsonwebtoken.verify, KeyObject', ms, (i) =>
      jsonwebtoken.verify(plain[i % 100]!, key, { algorithms: ['HS256'] }),
    ),
    time('TokenService.verify, verifyCacheSize: 0', ms, (i) => uncached.verify(fresh(i), 'access')),
    time('TokenService.verify, cached', ms, (i) => cached.verify(fresh(i), 'access')),
  ];
}

if (process.argv[1]?.endsWith('verify.ts')) {
  for (const r of verifyBench())
    process.stdout.write(`${r.nsPerOp.toFixed(0).padStart(8)} ns/op  ${r.label}\n`);
}
