#!/usr/bin/env node
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { lstatSync, readFileSync, statSync } from 'node:fs';
import { jsString } from './cli/js-string.js';
import { type Generated, RefusedError, written } from './cli/write-files.js';
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
const OKP = ALGORITHMS.filter((alg) => algorithmSpec(alg).family === 'EdDSA');
const WIDTH = Math.max(...[HMAC, RSA, EC, OKP].map((algs) => algs.join(', ').length)) + 1;
const column = (algs: Algorithm[]) => algs.join(', ').padEnd(WIDTH);

const HELP = `Usage: koa-jwt-redis keygen --alg <algorithm> [--bits <n>] [--kid <kid>] [--json]
                             [--out <dir> [--force]]

Prints (or, with --out, writes) a new signing key for the \`keys\` option of createAuth:
  ${column(HMAC)} a random secret (base64url; ${HMAC.map(minSecretBytes).join(', ')} bytes) — never publish it
  ${column(RSA)} an RSA key pair (${RSA_MIN_BITS} bits, or --bits 3072/4096) as PEM, plus the public JWK
  ${column(EC)} an EC key pair (${EC.map((alg) => algorithmSpec(alg).curve?.jwk).join(', ')}) as PEM, plus the public JWK
  ${column(OKP)} an Ed25519 key pair as PEM, plus the public JWK

Options:
  --alg <algorithm>     required
  --bits <n>            RSA modulus size, ${RSA_MIN_BITS} or more (${RSA.join(', ')} only)
  --kid <kid>           key id to print and put in the JWK (default: the kid createAuth derives:
                        the RFC 7638 thumbprint, or for HS* a keyed hash of the secret)
  --json                one JSON object instead of text: { alg, kid, secret | privateKey, publicKey, jwk }
  --out <dir>           write files into <dir> (created if missing) instead of printing the key:
                        secret (HS*), or private.pem, public.pem and jwk.json; secrets and private
                        keys get mode 600. Prints what it wrote where.
  --force               with --out, replace existing files (otherwise it refuses, exit code 1)
  -h, --help            this help
  -v, --version         the version of koa-jwt-redis

Examples:
  npx koa-jwt-redis keygen --alg ES256
  npx koa-jwt-redis keygen --alg ES256 --kid 2026-12 --out keys/2026-12
`;

/** package.json sits next to dist/ (and src/) in the installed package. */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

class UsageError extends Error {}

interface Args {
  alg: Algorithm;
  bits: number | undefined;
  kid: string | undefined;
  json: boolean;
  out: string | undefined;
  force: boolean;
}

/** The options of keygen: those that take a value, and flags. */
const OPTIONS = new Map<string, 'value' | 'flag'>([
  ['--alg', 'value'],
  ['--bits', 'value'],
  ['--kid', 'value'],
  ['--json', 'flag'],
  ['--out', 'value'],
  ['--force', 'flag'],
]);

/** C0 and C1 control characters and DEL: a terminal may act on them, and a config file breaks. */
const CONTROL = /\p{Cc}/u;

function parse(argv: string[]): Args | 'help' | 'version' {
  if (argv.length === 0) throw new UsageError('a command is needed: keygen --alg <algorithm>');
  if (argv.includes('-h') || argv.includes('--help') || argv[0] === 'help') return 'help';
  if (argv.includes('-v') || argv.includes('--version')) return 'version';
  const [command, ...rest] = argv;
  if (command !== 'keygen')
    throw new UsageError(
      `unknown command ${JSON.stringify(command)}; the only command is "keygen"`,
    );
  const given = new Map<string, string>();
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
    const kind = OPTIONS.get(name);
    if (kind === undefined || (kind === 'flag' && inline !== undefined))
      throw new UsageError(`unknown option ${JSON.stringify(arg)}`);
    // Which one was meant is a guess: refuse rather than take the last.
    if (given.has(name)) throw new UsageError(`${name} given twice`);
    given.set(name, kind === 'value' ? value() : '');
  }
  const [alg, bits, kid, out] = ['--alg', '--bits', '--kid', '--out'].map((name) =>
    given.get(name),
  );
  const json = given.has('--json');
  const force = given.has('--force');
  if (alg === undefined) throw new UsageError('--alg is required, e.g. --alg ES256');
  // Any spelling: es256, eddsa.
  const upper = ALGORITHMS.find((name) => name.toUpperCase() === alg!.toUpperCase()) ?? alg;
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
  // Stricter than createAuth, which takes any kid: this one is printed and pasted into configs.
  if (kid !== undefined && CONTROL.test(kid))
    throw new UsageError(
      '--kid must not contain control characters (U+0000-U+001F, U+007F-U+009F)',
    );
  if (force && out === undefined)
    throw new UsageError('--force only applies with --out (nothing is written without it)');
  if (out !== undefined) checkOut(out);
  return { alg: upper, bits: size, kid, json, out, force };
}

/** --out names a directory, or a path where one can be made. */
function checkOut(out: string): void {
  if (out.length === 0) throw new UsageError('--out must not be empty: give a directory');
  if (CONTROL.test(out)) throw new UsageError('--out must not contain control characters');
  let stat;
  try {
    stat = statSync(out, { throwIfNoEntry: false });
  } catch (error) {
    // Anything but a file part-way along the path (EACCES, ELOOP) is told when writing.
    if ((error as NodeJS.ErrnoException).code !== 'ENOTDIR') return;
    throw new UsageError(
      `--out ${JSON.stringify(out)} cannot be a directory: part of its path is a file`,
    );
  }
  if (stat !== undefined && !stat.isDirectory())
    throw new UsageError(`--out ${JSON.stringify(out)} is not a directory`);
  if (stat === undefined && lstatSync(out, { throwIfNoEntry: false }) !== undefined)
    throw new UsageError(`--out ${JSON.stringify(out)} is a symlink to nothing`);
}

function generate({ alg, bits, kid }: Args): Generated {
  if (isSymmetric(alg)) {
    const secret = randomBytes(minSecretBytes(alg)).toString('base64url');
    // Check it the way createAuth will read it: as the string's UTF-8 bytes.
    const ring = createKeyRing({
      keys: [{ algorithm: alg, secret, ...(kid === undefined ? {} : { kid }) }],
    });
    return { alg, kid: ring.signer.kid, secret };
  }
  const { family, curve } = algorithmSpec(alg);
  const pair =
    family === 'EdDSA'
      ? generateKeyPairSync('ed25519')
      : curve
        ? generateKeyPairSync('ec', { namedCurve: curve.node })
        : generateKeyPairSync('rsa', { modulusLength: bits ?? RSA_MIN_BITS });
  const privateKey = pair.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const publicKey = pair.publicKey.export({ format: 'pem', type: 'spki' }).toString();
  const keyId = kid ?? jwkThumbprint(pair.publicKey);
  // Same checks as createAuth (size, curve, pairing), so what is printed is known to load.
  createKeyRing({ keys: [{ algorithm: alg, kid: keyId, privateKey, publicKey }] });
  const jwk = toPublicJwk(keyId, alg, pair.publicKey);
  return { alg, kid: keyId, privateKey, publicKey, jwk };
}

function printed(key: Generated, json: boolean): string {
  if (json) return `${JSON.stringify(key)}\n`;
  if ('secret' in key) {
    return [
      `# ${key.alg} secret (kid ${key.kid}). Keep it secret: anyone holding it can sign tokens.`,
      `# keys: [{ algorithm: '${key.alg}', kid: ${jsString(key.kid)}, secret: process.env.JWT_SECRET }]`,
      key.secret,
      '',
    ].join('\n');
  }
  return [
    `# ${key.alg} key pair, kid ${key.kid}`,
    `# keys: [{ algorithm: '${key.alg}', kid: ${jsString(key.kid)}, privateKey: process.env.JWT_PRIVATE_KEY }]`,
    '# Private key (keep it secret):',
    key.privateKey.trimEnd(),
    '# Public key:',
    key.publicKey.trimEnd(),
    '# Public JWK (what auth.jwks() publishes for it):',
    JSON.stringify(key.jwk),
    '',
  ].join('\n');
}

function main(argv: string[]): number {
  let args: Args | 'help' | 'version';
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
  if (args === 'version') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const key = generate(args);
  if (args.out === undefined) {
    process.stdout.write(printed(key, args.json));
    return 0;
  }
  let report: string;
  try {
    report = written(key, args.out, args.force, args.json);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!(error instanceof RefusedError) && code === undefined) throw error;
    // A refusal, or the file system saying no (EACCES, ENOTDIR, EEXIST from a race): one line, no stack.
    process.stderr.write(
      `koa-jwt-redis: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return 1;
  }
  process.stdout.write(report);
  return 0;
}

// A reader that stopped reading (`| head`, `| true`) closes the pipe: end as a program killed by
// SIGPIPE does, status 141 (128 + 13) and no stack trace, so `set -o pipefail` sees the output was
// not all taken. Any other failure to write the output (a full disk) is one line and status 1.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE')
    process.stderr.write(`koa-jwt-redis: cannot write the output: ${error.message}\n`);
  process.exit(error.code === 'EPIPE' ? 141 : 1);
});
// Nowhere is left to report a closed stderr: keep the exit code main chose.
process.stderr.on('error', () => {});
process.exitCode = main(process.argv.slice(2));
