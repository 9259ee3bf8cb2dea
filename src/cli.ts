#!/usr/bin/env node
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import {
  type Algorithm,
  ALGORITHMS,
  algorithmSpec,
  isAlgorithm,
  isRsa,
  isSymmetric,
  minSecretBytes,
  RSA_MIN_BITS,
} from './keys/algorithms.js';
import { toPublicJwk } from './keys/jwk.js';
import { createKeyRing, jwkThumbprint } from './keys/key-ring.js';

const HMAC = ALGORITHMS.filter(isSymmetric);
const RSA = ALGORITHMS.filter(isRsa);
const EC = ALGORITHMS.filter((alg) => algorithmSpec(alg).family === 'EC');
const WIDTH = Math.max(...[HMAC, RSA, EC].map((algs) => algs.join(', ').length)) + 1;
const column = (algs: Algorithm[]) => algs.join(', ').padEnd(WIDTH);

const HELP = `Usage: koa-jwt-redis keygen --alg <algorithm> [--bits <n>] [--kid <kid>] [--json]

Prints a new signing key for the \`keys\` option of createAuth:
  ${column(HMAC)} a random secret (base64url; ${HMAC.map(minSecretBytes).join(', ')} bytes) — never publish it
  ${column(RSA)} an RSA key pair (${RSA_MIN_BITS} bits, or --bits 3072/4096) as PEM, plus the public JWK
  ${column(EC)} an EC key pair (${EC.map((alg) => algorithmSpec(alg).curve?.jwk).join(', ')}) as PEM, plus the public JWK

Options:
  --alg <algorithm>     required
  --bits <n>            RSA modulus size, ${RSA_MIN_BITS} or more (${RSA.join(', ')} only)
  --kid <kid>           key id to print and put in the JWK (default: the RFC 7638 thumbprint)
  --json                one JSON object instead of text: { alg, kid, secret | privateKey, publicKey, jwk }
  -h, --help            this help

Example:
  npx koa-jwt-redis keygen --alg ES256
`;

class UsageError extends Error {}

interface Args {
  alg: Algorithm;
  bits: number | undefined;
  kid: string | undefined;
  json: boolean;
}

function parse(argv: string[]): Args | 'help' {
  if (argv.length === 0) throw new UsageError('a command is needed: keygen --alg <algorithm>');
  if (argv.includes('-h') || argv.includes('--help') || argv[0] === 'help') return 'help';
  const [command, ...rest] = argv;
  if (command !== 'keygen')
    throw new UsageError(
      `unknown command ${JSON.stringify(command)}; the only command is "keygen"`,
    );
  let alg: string | undefined;
  let bits: string | undefined;
  let kid: string | undefined;
  let json = false;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    const [name, inline] =
      arg.startsWith('--') && arg.includes('=')
        ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
        : [arg, undefined];
    const value = (): string => {
      const next = inline ?? rest[++i];
      if (next === undefined || (inline === undefined && next.startsWith('--')))
        throw new UsageError(`${name} needs a value`);
      return next;
    };
    if (name === '--alg') alg = value();
    else if (name === '--bits') bits = value();
    else if (name === '--kid') kid = value();
    else if (name === '--json' && inline === undefined) json = true;
    else throw new UsageError(`unknown option ${JSON.stringify(arg)}`);
  }
  if (alg === undefined) throw new UsageError('--alg is required, e.g. --alg ES256');
  const upper = alg.toUpperCase();
  if (!isAlgorithm(upper))
    throw new UsageError(
      `--alg must be one of ${ALGORITHMS.join(', ')} (got ${JSON.stringify(alg)})`,
    );
  let size: number | undefined;
  if (bits !== undefined) {
    if (!isRsa(upper)) throw new UsageError(`--bits applies to RSA keys (${RSA.join(', ')}) only`);
    size = Number(bits);
    if (!/^\d+$/.test(bits) || size < RSA_MIN_BITS || size > 16_384 || size % 8 !== 0) {
      throw new UsageError(
        `--bits must be a multiple of 8 from ${RSA_MIN_BITS} to 16384 (got ${JSON.stringify(bits)})`,
      );
    }
  }
  if (kid !== undefined && (kid.length === 0 || kid.length > 256))
    throw new UsageError('--kid must be 1 to 256 characters');
  return { alg: upper, bits: size, kid, json };
}

function keygen({ alg, bits, kid, json }: Args): string {
  if (isSymmetric(alg)) {
    const secret = randomBytes(minSecretBytes(alg)).toString('base64url');
    // Check it the way createAuth will read it: as the string's UTF-8 bytes.
    const ring = createKeyRing({
      keys: [{ algorithm: alg, secret, ...(kid === undefined ? {} : { kid }) }],
    });
    if (json) return `${JSON.stringify({ alg, kid: ring.signer.kid, secret })}\n`;
    return [
      `# ${alg} secret (kid ${ring.signer.kid}). Keep it secret: anyone holding it can sign tokens.`,
      `# keys: [{ algorithm: '${alg}', kid: '${ring.signer.kid}', secret: process.env.JWT_SECRET }]`,
      secret,
      '',
    ].join('\n');
  }
  const { curve } = algorithmSpec(alg);
  const pair = curve
    ? generateKeyPairSync('ec', { namedCurve: curve.node })
    : generateKeyPairSync('rsa', { modulusLength: bits ?? RSA_MIN_BITS });
  const privateKey = pair.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const publicKey = pair.publicKey.export({ format: 'pem', type: 'spki' }).toString();
  const keyId = kid ?? jwkThumbprint(pair.publicKey);
  // Same checks as createAuth (size, curve, pairing), so what is printed is known to load.
  createKeyRing({ keys: [{ algorithm: alg, kid: keyId, privateKey, publicKey }] });
  const jwk = toPublicJwk(keyId, alg, pair.publicKey);
  if (json) return `${JSON.stringify({ alg, kid: keyId, privateKey, publicKey, jwk })}\n`;
  return [
    `# ${alg} key pair, kid ${keyId}`,
    `# keys: [{ algorithm: '${alg}', kid: '${keyId}', privateKey: process.env.JWT_PRIVATE_KEY }]`,
    '# Private key (keep it secret):',
    privateKey.trimEnd(),
    '# Public key:',
    publicKey.trimEnd(),
    '# Public JWK (what auth.jwks() publishes for it):',
    JSON.stringify(jwk),
    '',
  ].join('\n');
}

function main(argv: string[]): number {
  let args: Args | 'help';
  try {
    args = parse(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(
      `koa-jwt-redis: ${error.message}\nRun \`koa-jwt-redis --help\` for usage.\n`,
    );
    return 2;
  }
  if (args === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  process.stdout.write(keygen(args));
  return 0;
}

process.exitCode = main(process.argv.slice(2));
