import { spawn, spawnSync } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runInNewContext } from 'node:vm';
import { importPKCS8, SignJWT } from 'jose';
import Koa from 'koa';
import { afterAll, describe, expect, it } from 'vitest';
import { type Algorithm, createAuth } from '../../src/index.js';
import { decodeSegment } from '../helpers/forge.js';
import { call, serve } from '../helpers/http.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = `${root}/dist/cli.js`;
const built = existsSync(cli);

/** Runs the built CLI as `npx koa-jwt-redis …` would: a child Node process. */
function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return runWithNode([], ...args);
}

/** `run`, with options for Node itself before the script (`--require` a preload). */
function runWithNode(
  nodeArgs: string[],
  ...args: string[]
): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [...nodeArgs, cli, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * Runs the CLI with a stdout whose reader is gone, as after `| true` or `| head -1`: the read end
 * is closed before the child has even started, so its first write meets a closed pipe.
 */
function runIntoClosedPipe(...args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stderr }));
  });
}

/** The `keys: [...]` snippet on the line starting with `prefix`, run as JavaScript. */
function snippet(stdout: string, prefix: string, globals: object): unknown {
  const line = stdout.split('\n').find((l) => l.startsWith(prefix));
  expect(line, stdout).toBeDefined();
  return runInNewContext(`(${line!.slice(prefix.length)})`, globals);
}

const STACK = /at .*\.js:\d+/;

/** The keys printed for `alg`, loaded into createAuth: a login's token verifies and names the printed kid. */
async function usable(
  alg: Algorithm,
  material: { secret?: string; privateKey?: string; kid: string },
) {
  const auth = createAuth({
    keys: [
      material.secret !== undefined
        ? { algorithm: alg, secret: material.secret }
        : { algorithm: alg, privateKey: material.privateKey },
    ],
  });
  try {
    const { access_token } = await auth.generateTokens({ id: 'u1' });
    expect(decodeSegment(access_token, 0)).toMatchObject({ alg, kid: material.kid });
    expect(
      await auth.strategies.get('redis').readToken(access_token, { checkSession: true }),
    ).toMatchObject({ sub: 'u1' });
    return auth;
  } catch (error) {
    await auth.close();
    throw error;
  }
}

describe.runIf(built)('the keygen CLI (npm test builds dist/cli.js first)', () => {
  it('is the package bin, with a shebang, executable', () => {
    const pkg = JSON.parse(readFileSync(`${root}/package.json`, 'utf8')) as {
      bin: Record<string, string>;
    };
    expect(pkg.bin['koa-jwt-redis']).toBe('./dist/cli.js');
    expect(readFileSync(cli, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(() => accessSync(cli, constants.X_OK)).not.toThrow();
  });

  it.each(['ES256', 'ES384', 'RS256', 'PS256', 'PS384', 'PS512', 'ES512', 'EdDSA'] as Algorithm[])(
    '%s: prints PEMs and the public JWK; they work in createAuth and match auth.jwks()',
    async (alg) => {
      const out = run('keygen', '--alg', alg, '--json');
      expect(out.status).toBe(0);
      const printed = JSON.parse(out.stdout) as {
        alg: string;
        kid: string;
        privateKey: string;
        publicKey: string;
        jwk: Record<string, unknown>;
      };
      expect(printed.alg).toBe(alg);
      expect(printed.privateKey).toMatch(
        /^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n$/,
      );
      expect(printed.publicKey).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
      expect(printed.jwk).toMatchObject({ kid: printed.kid, alg, use: 'sig' });
      for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'])
        expect(printed.jwk).not.toHaveProperty(member);

      const auth = await usable(alg, printed);
      // jose, as an independent signer, signs with the printed private key; the ring verifies it.
      const now = Math.floor(Date.now() / 1000);
      const joseToken = await new SignJWT({
        sub: 'j1',
        token_use: 'access',
        stg: 'jwt',
        iat: now,
        exp: now + 60,
      })
        .setProtectedHeader({ alg, typ: 'at+jwt', kid: printed.kid })
        .sign(await importPKCS8(printed.privateKey, alg));
      expect(
        await auth.strategies.get('jwt').readToken(joseToken, { checkSession: false }),
      ).toMatchObject({ sub: 'j1' });
      const app = new Koa();
      app.use(auth.jwks());
      const server = await serve(app);
      try {
        expect((await call(server.url, '/.well-known/jwks.json')).body).toEqual({
          keys: [printed.jwk],
        });
      } finally {
        await server.close();
        await auth.close();
      }
    },
  );

  it('prints text by default: both PEM blocks, the JWK and the kid', async () => {
    const out = run('keygen', '--alg', 'es256');
    expect(out.status).toBe(0);
    const privateKey = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/.exec(
      out.stdout,
    )?.[0];
    expect(out.stdout).toMatch(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/);
    const jwk = JSON.parse(out.stdout.split('\n').find((line) => line.startsWith('{'))!) as {
      kid: string;
    };
    expect(out.stdout).toContain(`kid ${jwk.kid}`);
    await (await usable('ES256', { privateKey: `${privateKey}\n`, kid: jwk.kid })).close();
  });

  it('HS256/HS512 print a random base64url secret of the right size; RSA takes --bits; --kid is kept', async () => {
    for (const [alg, bytes] of [
      ['HS256', 32],
      ['HS512', 64],
    ] as const) {
      const printed = JSON.parse(run('keygen', '--alg', alg, '--json').stdout) as {
        secret: string;
        kid: string;
      };
      expect(Buffer.from(printed.secret, 'base64url')).toHaveLength(bytes);
      expect(printed).not.toHaveProperty('jwk');
      await (await usable(alg, printed)).close();
    }
    const rsa = JSON.parse(
      run('keygen', '--alg', 'RS384', '--bits', '3072', '--kid', '2026-11', '--json').stdout,
    ) as { jwk: { n: string; kid: string } };
    expect(Buffer.from(rsa.jwk.n, 'base64url')).toHaveLength(384);
    expect(rsa.jwk.kid).toBe('2026-11');
  });

  it('--help exits 0; bad arguments get a clear message and exit code 2', () => {
    const help = run('--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/Usage: koa-jwt-redis keygen --alg/);
    expect(help.stdout).toMatch(/ES256, ES384, ES512 +an EC key pair \(P-256, P-384, P-521\)/);
    expect(help.stdout).toMatch(/EdDSA +an Ed25519 key pair/);
    expect(help.stdout).toMatch(/PS256, PS384, PS512/);
    // Any spelling of an algorithm name.
    expect(JSON.parse(run('keygen', '--alg', 'eddsa', '--json').stdout)).toMatchObject({
      alg: 'EdDSA',
      jwk: { kty: 'OKP', crv: 'Ed25519' },
    });
    const bad: [string[], RegExp][] = [
      [[], /command is needed/],
      [['generate'], /unknown command/],
      [['keygen'], /--alg is required/],
      [['keygen', '--alg'], /--alg needs a value/],
      [['keygen', '--alg', 'none'], /--alg must be one of/],
      [['keygen', '--alg', 'RS256', '--bits', '1024'], /--bits must be/],
      [['keygen', '--alg', 'RS256', '--bits', 'lots'], /--bits must be/],
      [['keygen', '--alg', 'ES256', '--bits', '4096'], /RSA keys .* only/],
      [['keygen', '--alg', 'ES256', '--force'], /--force only applies with --out/],
      [['keygen', '--alg', 'ES256', '--out'], /--out needs a value/],
      [['keygen', '--alg', 'ES256', '--overwrite'], /unknown option/],
    ];
    for (const [args, message] of bad) {
      const out = run(...args);
      expect(out.status, args.join(' ')).toBe(2);
      expect(out.stderr).toMatch(message);
      expect(out.stderr).not.toMatch(/at .*\.js:\d+/); // no stack trace
      expect(out.stdout).toBe('');
    }
  });

  it('--version prints the package version; --help lists every option', () => {
    const { version } = JSON.parse(readFileSync(`${root}/package.json`, 'utf8')) as {
      version: string;
    };
    for (const flag of ['--version', '-v']) {
      const out = run(flag);
      expect(out.status).toBe(0);
      expect(out.stdout).toBe(`${version}\n`);
    }
    const help = run('keygen', '--help').stdout;
    for (const option of ['--alg', '--bits', '--kid', '--json', '--out', '--force', '--version'])
      expect(help).toContain(option);
  });

  describe('--out <dir>', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kjr-cli-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const mode = (path: string) => statSync(path).mode & 0o777;

    it('writes the key pair into files, private ones mode 600, and says what it wrote where', async () => {
      const out = join(dir, 'es', 'new');
      const result = run('keygen', '--alg', 'ES256', '--out', out);
      expect(result.status, result.stderr).toBe(0);
      const files = ['private.pem', 'public.pem', 'jwk.json'].map((name) => join(out, name));
      const jwk = JSON.parse(readFileSync(files[2]!, 'utf8')) as { kid: string };
      expect(result.stdout).toContain(`Wrote the ES256 key pair (kid ${jwk.kid}) to ${out}:`);
      for (const file of files) expect(result.stdout).toContain(file);
      // The key itself never goes to the terminal when it goes to a file.
      expect(result.stdout).not.toContain('BEGIN PRIVATE KEY');
      expect(mode(files[0]!)).toBe(0o600);
      expect(mode(files[1]!)).toBe(0o644);
      const privateKey = readFileSync(files[0]!, 'utf8');
      expect(jwk).toMatchObject({ alg: 'ES256', use: 'sig' });
      await (await usable('ES256', { privateKey, kid: jwk.kid })).close();
    });

    it('writes an HS secret to a mode-600 file; --json reports the paths', async () => {
      const out = join(dir, 'hs');
      const result = run('keygen', '--alg', 'HS384', '--out', out, '--json');
      expect(result.status, result.stderr).toBe(0);
      const report = JSON.parse(result.stdout) as { kid: string; files: { secret: string } };
      expect(report.files.secret).toBe(join(out, 'secret'));
      expect(mode(report.files.secret)).toBe(0o600);
      const secret = readFileSync(report.files.secret, 'utf8').trim();
      expect(Buffer.from(secret, 'base64url')).toHaveLength(48);
      await (await usable('HS384', { secret, kid: report.kid })).close();
    });

    it('refuses to overwrite an existing key file without --force (exit 1, nothing written)', () => {
      const out = join(dir, 'again');
      expect(run('keygen', '--alg', 'ES256', '--out', out).status).toBe(0);
      const before = readFileSync(join(out, 'private.pem'), 'utf8');
      const refused = run('keygen', '--alg', 'ES384', '--out', out);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toContain(join(out, 'private.pem'));
      expect(refused.stderr).toMatch(/--force/);
      expect(refused.stderr).not.toMatch(/at .*\.js:\d+/);
      expect(refused.stdout).toBe('');
      expect(readFileSync(join(out, 'private.pem'), 'utf8')).toBe(before);
      const forced = run('keygen', '--alg', 'ES384', '--out', out, '--force');
      expect(forced.status, forced.stderr).toBe(0);
      expect(readFileSync(join(out, 'private.pem'), 'utf8')).not.toBe(before);
      expect(mode(join(out, 'private.pem'))).toBe(0o600);
      expect(JSON.parse(readFileSync(join(out, 'jwk.json'), 'utf8'))).toMatchObject({
        alg: 'ES384',
      });
    });

    it('an --out that is a file, or has a file part-way along it: "not a directory", exit 2', () => {
      expect(run('keygen', '--alg', 'HS256', '--out', join(dir, 'hs2')).status).toBe(0);
      const file = join(dir, 'hs2', 'secret');
      const before = readFileSync(file, 'utf8');
      const dangling = join(dir, 'hs2', 'to-nothing');
      symlinkSync(join(dir, 'hs2', 'nothing'), dangling);
      for (const [out, message] of [
        [file, /is not a directory/],
        [join(file, 'x'), /cannot be a directory: part of its path is a file/],
        [dangling, /is a symlink to nothing/],
      ] as const) {
        const result = run('keygen', '--alg', 'HS256', '--out', out);
        expect(result.status, out).toBe(2);
        expect(result.stderr).toMatch(/^koa-jwt-redis: --out /);
        expect(result.stderr).toContain(JSON.stringify(out));
        expect(result.stderr).toMatch(message);
        expect(result.stderr).not.toMatch(/EEXIST|ENOTDIR/);
        expect(result.stderr).not.toMatch(STACK);
        expect(result.stdout).toBe('');
      }
      expect(readFileSync(file, 'utf8')).toBe(before);
    });

    it('--out "" (or --out=) is a bad argument: exit 2, one line, nothing made', () => {
      for (const args of [['--out', ''], ['--out=']]) {
        const result = run('keygen', '--alg', 'ES256', ...args);
        expect(result.status, args.join(' ')).toBe(2);
        expect(result.stderr).toMatch(/^koa-jwt-redis: --out must not be empty/);
        expect(result.stderr).not.toMatch(/ENOENT|mkdir/);
        expect(result.stdout).toBe('');
      }
      // A path with a control character would be echoed raw to the terminal: refused too.
      const escape = join(dir, 'keys\u001b[2J');
      const result = run('keygen', '--alg', 'ES256', '--out', escape);
      expect(result.status).toBe(2);
      expect(result.stderr).toMatch(/^koa-jwt-redis: --out must not contain control characters/);
      expect(existsSync(escape)).toBe(false);
    });

    it('a dangling symlink at one of the names is refused before anything is written (exit 1)', () => {
      const out = join(dir, 'dangling');
      mkdirSync(out);
      const nowhere = join(dir, 'nowhere.pem');
      symlinkSync(nowhere, join(out, 'public.pem'));
      const result = run('keygen', '--alg', 'ES256', '--out', out);
      expect(result.status).toBe(1);
      // Only the symlink: no private key left behind, and nothing written through the link.
      expect(readdirSync(out)).toEqual(['public.pem']);
      expect(existsSync(nowhere)).toBe(false);
      expect(result.stderr).toContain(`${join(out, 'public.pem')} already exists`);
      expect(result.stderr).toMatch(/nothing was written/);
      expect(result.stderr).not.toMatch(STACK);
      expect(result.stdout).toBe('');
    });

    it('a write that fails after the check (a file appeared meanwhile) removes what this run wrote', () => {
      // A preload stands in for a racing process: right after keygen creates the directory (its
      // existence check has passed by then), a jwk.json appears in it.
      const racer = join(dir, 'racer.cjs');
      writeFileSync(
        racer,
        `const fs = require('node:fs');
const { join } = require('node:path');
const mkdirSync = fs.mkdirSync;
fs.mkdirSync = (path, ...rest) => {
  const made = mkdirSync(path, ...rest);
  fs.writeFileSync(join(String(path), 'jwk.json'), "the racer's\\n");
  return made;
};
require('node:module').syncBuiltinESMExports();
`,
      );
      for (const out of [join(dir, 'raced'), join(dir, 'raced-new', 'deeper')]) {
        if (out.endsWith('raced')) mkdirSync(out);
        const result = runWithNode(['--require', racer], 'keygen', '--alg', 'ES256', '--out', out);
        expect(result.status, result.stderr).toBe(1);
        // private.pem and public.pem were written, then removed; the racer's file is untouched.
        expect(readdirSync(out)).toEqual(['jwk.json']);
        expect(readFileSync(join(out, 'jwk.json'), 'utf8')).toBe("the racer's\n");
        expect(result.stderr).toMatch(
          /^koa-jwt-redis: EEXIST.*jwk\.json.*; nothing was written\.\n$/,
        );
        expect(result.stdout).toBe('');
      }
    });

    it('--force replaces a symlink instead of writing the key through it', () => {
      const out = join(dir, 'linked');
      mkdirSync(out);
      const elsewhere = join(dir, 'elsewhere.pem');
      symlinkSync(elsewhere, join(out, 'private.pem'));
      const result = run('keygen', '--alg', 'ES256', '--out', out, '--force');
      expect(result.status, result.stderr).toBe(0);
      expect(existsSync(elsewhere)).toBe(false);
      expect(lstatSync(join(out, 'private.pem')).isFile()).toBe(true);
      expect(mode(join(out, 'private.pem'))).toBe(0o600);
      expect(readFileSync(join(out, 'private.pem'), 'utf8')).toMatch(/BEGIN PRIVATE KEY/);
      // No temporary file is left beside the keys.
      expect(readdirSync(out).sort()).toEqual(['jwk.json', 'private.pem', 'public.pem']);
    });

    it('--force with a directory in the way refuses before replacing anything (exit 1)', () => {
      const out = join(dir, 'blocked');
      expect(run('keygen', '--alg', 'ES256', '--out', out).status).toBe(0);
      const before = readFileSync(join(out, 'private.pem'), 'utf8');
      rmSync(join(out, 'jwk.json'));
      mkdirSync(join(out, 'jwk.json'));
      const result = run('keygen', '--alg', 'ES384', '--out', out, '--force');
      expect(result.status).toBe(1);
      expect(result.stderr).toBe(
        `koa-jwt-redis: ${join(out, 'jwk.json')} is not a file; nothing was written.\n`,
      );
      expect(readFileSync(join(out, 'private.pem'), 'utf8')).toBe(before);
      expect(readdirSync(out).sort()).toEqual(['jwk.json', 'private.pem', 'public.pem']);
    });

    it('the paths and kid in the printed `Use it:` line are JavaScript string literals', () => {
      const out = join(dir, "it's \\ here");
      const kid = "o'clock \\ 2026";
      const result = run('keygen', '--alg', 'HS256', '--kid', kid, '--out', out);
      expect(result.status, result.stderr).toBe(0);
      const keys = snippet(result.stdout, 'Use it: keys: ', {
        readFileSync: (path: string) => ({ trim: () => path }),
      }) as { kid: string; secret: string }[];
      expect(keys[0]).toMatchObject({ algorithm: 'HS256', kid, secret: join(out, 'secret') });
      expect(readdirSync(out)).toEqual(['secret']);
    });
  });

  it('a closed stdout (`| true`, `| head`): no stack trace, exit code 141 as after SIGPIPE', async () => {
    for (const args of [
      ['keygen', '--alg', 'RS256'],
      ['keygen', '--alg', 'HS256', '--json'],
      ['--help'],
      ['--version'],
    ]) {
      const result = await runIntoClosedPipe(...args);
      expect(result.stderr, args.join(' ')).toBe('');
      expect(result.status, args.join(' ')).toBe(141);
    }
  });

  it('an option given twice is refused (exit 2), not silently the last one', () => {
    for (const [args, name] of [
      [['--alg', 'ES256', '--alg', 'RS256'], '--alg'],
      [['--alg=ES256', '--alg=RS256'], '--alg'],
      [['--alg', 'RS256', '--bits', '2048', '--bits=4096'], '--bits'],
      [['--alg', 'ES256', '--kid', 'a', '--kid', 'b'], '--kid'],
      [['--alg', 'ES256', '--json', '--json'], '--json'],
      [
        ['--alg', 'ES256', '--out', join(tmpdir(), 'kjr-a'), '--out', join(tmpdir(), 'kjr-b')],
        '--out',
      ],
      [['--alg', 'ES256', '--out', join(tmpdir(), 'kjr-a'), '--force', '--force'], '--force'],
    ] as const) {
      const result = run('keygen', ...args);
      expect(result.status, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(new RegExp(`^koa-jwt-redis: ${name} given twice\n`));
      expect(result.stdout).toBe('');
    }
    expect(existsSync(join(tmpdir(), 'kjr-a'))).toBe(false);
    expect(existsSync(join(tmpdir(), 'kjr-b'))).toBe(false);
  });

  it('the printed snippet is valid JavaScript for any --kid: quotes and backslashes are escaped', () => {
    for (const kid of ["it's", 'back\\slash', "'; process.exit(1); '", 'ключ-\u2028-🔑', '${x}`']) {
      for (const alg of ['ES256', 'HS256']) {
        const result = run('keygen', '--alg', alg, '--kid', kid);
        expect(result.status, result.stderr).toBe(0);
        const keys = snippet(result.stdout, '# keys: ', { process: { env: {} } }) as {
          kid: string;
        }[];
        expect(keys, `${alg} ${kid}`).toMatchObject([{ algorithm: alg, kid }]);
      }
    }
  });

  it('--kid with a control character (newline, ESC, DEL, C1) is refused: exit 2, not echoed', () => {
    for (const kid of [
      'a\nb',
      'tab\there',
      'cr\r',
      '\u001b[31mred',
      'del\u007f',
      'nel\u0085',
      'csi\u009b2J',
    ]) {
      const result = run('keygen', '--alg', 'ES256', '--kid', kid);
      expect(result.status, JSON.stringify(kid)).toBe(2);
      expect(result.stderr).toMatch(/^koa-jwt-redis: --kid must not contain control characters/);
      expect(result.stderr).not.toContain(kid);
      expect(result.stdout).toBe('');
    }
  });
});
