import { spawnSync } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
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
  const result = spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

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

    it('a directory it cannot write into: one line and exit 1, no stack trace', () => {
      expect(run('keygen', '--alg', 'HS256', '--out', join(dir, 'hs2')).status).toBe(0);
      const result = run('keygen', '--alg', 'HS256', '--out', join(dir, 'hs2', 'secret', 'x'));
      expect(result.status).toBe(1);
      // …/hs2/secret is a file, so it cannot be a directory.
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toMatch(/^koa-jwt-redis: /);
    });
  });
});
