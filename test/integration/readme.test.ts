import { type ChildProcess, spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from '../helpers/http.js';
import {
  CONTEXT,
  importedPackages,
  installLines,
  readme,
  type ReadmeBlock,
  readmeBlocks,
} from '../helpers/readme.js';
import { freePort, RedisServer } from '../helpers/redis-server.js';

/*
 * The README as a new user meets it: `npm pack` of this project, installed into a fresh directory
 * with the README's own install lines (from the npm registry), with the latest ioredis 6, then
 * ioredis 5, then the oldest majors of every peer range (ioredis 5, Koa 2, koa-body 6). Every
 * ```ts block of the README and every file of examples/ must compile under `strict` against what
 * got installed, and the "Use it in your app" block runs against the test Redis, driven over real
 * HTTP. Conventions for blocks: test/helpers/readme.ts.
 */

const root = fileURLToPath(new URL('../..', import.meta.url));
const markdown = readme(root);
const blocks = readmeBlocks(markdown);
const compiled = blocks.filter((b) => b.directive?.kind !== 'skip');
const runnable = blocks.filter((b) => b.directive?.kind === 'run');
const fileOf = (b: ReadmeBlock) => `readme/block-line-${b.line}.ts`;

/** A clean environment: none of the `npm test` run's own npm_* settings leak into the user's npm. */
const env = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')),
);

function exec(
  command: string,
  args: string[],
  cwd: string,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

async function npm(cwd: string, ...args: string[]): Promise<void> {
  const { code, output } = await exec('npm', [...args, '--no-audit', '--no-fund'], cwd);
  expect(code, `npm ${args.join(' ')}\n${output}`).toBe(0);
}

/** A package that ships no types of its own needs @types/<name>, as a TypeScript user would add. */
function needsTypes(dir: string, name: string): boolean {
  const pkgDir = join(dir, 'node_modules', name);
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  return !(
    pkg.types ||
    pkg.typings ||
    JSON.stringify(pkg.exports ?? '').includes('"types"') ||
    existsSync(join(pkgDir, 'index.d.ts'))
  );
}

const typesName = (name: string) => `@types/${name.replace(/^@/, '').replace('/', '__')}`;

describe('the README, installed as a consumer installs it', () => {
  let dir: string;
  let app: string;
  let tarball: string;

  beforeAll(async () => {
    expect(existsSync(join(root, 'dist/index.js')), 'npm test builds dist/ first').toBe(true);
    dir = mkdtempSync(join(tmpdir(), 'kjr-readme-'));
    // --ignore-scripts: dist/ is already built, and rebuilding it would pull it from under the
    // other test files that load it.
    const packed = await exec(
      'npm',
      ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir],
      root,
    );
    expect(packed.code, packed.output).toBe(0);
    tarball = join(dir, packed.output.trim().split('\n').pop()!);
    app = join(dir, 'app');
    mkdirSync(join(app, 'readme'), { recursive: true });
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({ name: 'readme-consumer', private: true, type: 'module' }),
    );
    writeFileSync(join(app, 'readme-context.d.ts'), CONTEXT);
    for (const block of compiled)
      writeFileSync(join(app, fileOf(block)), `${block.code}\nexport {};\n`);
    cpSync(join(root, 'examples'), join(app, 'examples'), {
      recursive: true,
      filter: (src) => !src.endsWith('.html') && !src.endsWith('.png'),
    });
    const compilerOptions = {
      target: 'es2022',
      module: 'nodenext',
      moduleResolution: 'nodenext',
      strict: true,
      // The checks `tsc --init` (TypeScript 5.9) turns on besides strict: a user who starts there
      // compiles the README's blocks under them.
      noUncheckedIndexedAccess: true,
      exactOptionalPropertyTypes: true,
      verbatimModuleSyntax: true,
      isolatedModules: true,
      noUncheckedSideEffectImports: true,
      moduleDetection: 'force',
      lib: ['es2023', 'dom'],
      // `tsc --init` sets `types: []`: a Node app names @types/node there.
      types: ['node'],
      // As `tsc --init` sets it: third-party declarations (e.g. koa-body's and @types/express's
      // views of IncomingMessage#body) do not agree with each other under a full check.
      skipLibCheck: true,
      outDir: 'out',
      rootDir: '.',
    };
    // A block that augments a module (declare module 'koa-jwt-redis') changes the types of every
    // file in its program, so each such block is a program of its own. So does importing
    // koa-body, whose types give every Koa request a `body`: a block that does not import it must
    // compile without it, as it does pasted into an app that only mounts auth.routes(). Those
    // blocks and examples are a program of their own.
    const augmenting = compiled.filter((b) => /^declare module /m.test(b.code));
    const koaBody = (code: string) => /from 'koa-body'/.test(code);
    const withKoaBody = compiled.filter((b) => !augmenting.includes(b) && koaBody(b.code));
    const rest = compiled.filter((b) => !augmenting.includes(b) && !withKoaBody.includes(b));
    const examples = (readdirSync(join(app, 'examples'), { recursive: true }) as string[])
      .filter((file) => file.endsWith('.ts'))
      .map((file) => join('examples', file));
    // By folder: an example's other files import the one that imports koa-body.
    const koaBodyFolders = new Set(
      examples
        .filter((file) => koaBody(readFileSync(join(app, file), 'utf8')))
        .map((file) => dirname(file)),
    );
    const examplesWithKoaBody = examples.filter((file) => koaBodyFolders.has(dirname(file)));
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions,
        files: [
          'readme-context.d.ts',
          ...rest.map(fileOf),
          ...examples.filter((file) => !examplesWithKoaBody.includes(file)),
        ],
      }),
    );
    writeFileSync(
      join(app, 'tsconfig.koa-body.json'),
      JSON.stringify({
        compilerOptions,
        files: ['readme-context.d.ts', ...withKoaBody.map(fileOf), ...examplesWithKoaBody],
      }),
    );
    augmenting.forEach((block, i) =>
      writeFileSync(
        join(app, `tsconfig.augment-${i}.json`),
        JSON.stringify({
          compilerOptions: { ...compilerOptions, noEmit: true },
          files: ['readme-context.d.ts', fileOf(block)],
        }),
      ),
    );
  }, 120_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('has blocks to check, and one "Use it in your app" block to run', () => {
    expect(compiled.length).toBeGreaterThan(5);
    expect(runnable).toHaveLength(1);
    const heading = markdown.lastIndexOf(
      '\n## ',
      markdown.split('\n', runnable[0]!.line).join('\n').length,
    );
    expect(markdown.slice(heading + 4, markdown.indexOf('\n', heading + 1))).toBe(
      'Use it in your app',
    );
  });

  async function compile(): Promise<void> {
    const configs = ['tsconfig.json', 'tsconfig.koa-body.json'];
    for (let i = 0; existsSync(join(app, `tsconfig.augment-${i}.json`)); i++)
      configs.push(`tsconfig.augment-${i}.json`);
    for (const config of configs) {
      const { code, output } = await exec(join(app, 'node_modules/.bin/tsc'), ['-p', config], app);
      // Errors name the block's file, readme/block-line-<N>.ts: N is the line of its fence in README.md.
      expect(output, `tsc -p ${config}`).toBe('');
      expect(code).toBe(0);
    }
  }

  async function runUseItInYourApp(): Promise<void> {
    const port = await freePort();
    writeFileSync(
      join(app, 'find-user.mjs'),
      // The app's own password check, which the snippet leaves to you.
      `globalThis.findUser = async (body) =>
        body?.username === 'alice' && body?.password === 'wonderland' ? { id: 'readme-alice', role: 'admin' } : null;\n`,
    );
    const out = join('out', fileOf(runnable[0]!).replace(/\.ts$/, '.js'));
    // A Redis of its own, stopped at the end to see how the program's client reports it.
    const redis = await RedisServer.start();
    let log = '';
    const child: ChildProcess = spawn(process.execPath, ['--import', './find-user.mjs', out], {
      cwd: app,
      env: {
        ...env,
        JWT_SECRET: 'readme-test-secret-of-more-than-32-bytes',
        REDIS_URL: redis.url,
        PORT: String(port),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      const url = `http://127.0.0.1:${port}`;
      for (let i = 0; ; i++) {
        const up = await call(url, '/me').then(
          (r) => r.status === 401,
          () => false,
        );
        if (up) break;
        expect(i < 100 && child.exitCode === null, `the snippet did not start:\n${log}`).toBe(true);
        await sleep(100);
      }
      const credentials = { username: 'alice', password: 'wonderland' };
      const wrong = await call(url, '/login', { body: { ...credentials, password: 'x' } });
      expect([wrong.status, wrong.body.error]).toEqual([401, 'invalid_credentials']);
      // Bad bodies get the same JSON errors, and the app logs no crash for them.
      const malformed = await call(url, '/login', { body: '{"username":' });
      expect([malformed.status, malformed.body?.error], malformed.text).toEqual([
        400,
        'invalid_request',
      ]);
      // A body that does not decode (it says gzip and is not) is the client's fault too: 400, and
      // no stack in the log (koa-body's zlib error has no status).
      const corrupt = await call(url, '/login', {
        body: 'not gzip at all',
        headers: { 'content-encoding': 'gzip' },
      });
      expect([corrupt.status, corrupt.body?.error], corrupt.text).toEqual([400, 'invalid_request']);
      for (const body of [{}, { refresh_token: '' }]) {
        const missing = await call(url, '/refresh', { body });
        expect([missing.status, missing.body.error]).toEqual([400, 'invalid_request']);
      }
      // koa-body's own refusals keep their status: a body over its 1 MB JSON limit is 413.
      const large = await call(url, '/login', { body: { username: 'x'.repeat(2 ** 21) } });
      expect(large.status).toBe(413);
      const login = await call(url, '/login', { body: credentials });
      expect(login.status, login.text).toBe(200);
      expect(login.headers.get('cache-control')).toBe('no-store');
      expect(login.body).toMatchObject({ token_type: 'bearer', expires_in: 900 });
      const me = await call(url, '/me', { token: login.body.access_token });
      expect(me.status, me.text).toBe(200);
      expect(me.body).toMatchObject({ sub: 'readme-alice', role: 'admin' });
      const refreshed = await call(url, '/refresh', {
        body: { refresh_token: login.body.refresh_token },
      });
      expect(refreshed.status, refreshed.text).toBe(200);
      const logout = await call(url, '/logout', {
        body: { refresh_token: refreshed.body.refresh_token },
      });
      expect(logout.status).toBe(204);
      const after = await call(url, '/refresh', {
        body: { refresh_token: refreshed.body.refresh_token },
      });
      expect(after.status).toBe(401);
      expect(after.body).toMatchObject({ error: 'token_revoked' });
      // Nothing above was a crash: Koa logs those (to stderr), and this app logs nothing else.
      expect(log).toBe('');
      // Redis gone: the program's error listener prints one line a reconnection, not ioredis's
      // 'Unhandled error event' with a stack.
      await redis.stop();
      for (let i = 0; i < 50 && !/^redis: /m.test(log); i++) await sleep(100);
      expect(log).toMatch(/^redis: /m);
      expect(log).not.toContain('Unhandled error event');
    } finally {
      child.kill('SIGTERM');
      await exited;
      await redis.stop();
    }
  }

  /** The major of the package the app has installed under `name`. */
  const installedMajor = (name: string): string =>
    (
      JSON.parse(readFileSync(join(app, `node_modules/${name}/package.json`), 'utf8')) as {
        version: string;
      }
    ).version.split('.')[0]!;

  let installing: Promise<void> | undefined;
  /**
   * The README's install lines (ioredis 6) and the packages other blocks import, as their readers
   * would add them: once, for whichever step runs first, so each step also runs on its own.
   */
  const installFromReadme = (): Promise<void> =>
    (installing ??= (async () => {
      const { packages, typescript } = installLines(markdown);
      expect(packages).toContain('koa-jwt-redis');
      expect(packages).toContain('ioredis');
      await npm(
        app,
        'install',
        ...packages.map((p) =>
          p === 'koa-jwt-redis' ? tarball : p === 'ioredis' ? 'ioredis@^6' : p,
        ),
      );
      await npm(app, 'install', '-D', ...typescript);
      // The shipped declarations import only packages whose types installing the package brings:
      // a consumer without skipLibCheck would get TS7016 for any other (skipLibCheck hides it).
      // Checked before the packages other blocks import are added (pg among them, whose types
      // would otherwise be there whatever the package depends on).
      const declared = ['index.d.ts', 'index.d.cts'].flatMap((file) =>
        [...readFileSync(join(root, 'dist', file), 'utf8').matchAll(/ from '([^'.][^']*)'/g)].map(
          ([, name]) =>
            name!
              .split('/')
              .slice(0, name!.startsWith('@') ? 2 : 1)
              .join('/'),
        ),
      );
      for (const name of new Set(declared.filter((name) => !name.startsWith('node:'))))
        expect(
          !needsTypes(app, name) || existsSync(join(app, 'node_modules', typesName(name))),
          `dist/index.d.ts imports ${name}, whose types the package does not bring`,
        ).toBe(true);
      const installed = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')) as {
        dependencies: Record<string, string>;
      };
      const extra = [...new Set(compiled.flatMap((b) => importedPackages(b.code)))].filter(
        (name) => !(name in installed.dependencies),
      );
      if (extra.length > 0) await npm(app, 'install', ...extra);
      const types = extra.filter((name) => needsTypes(app, name)).map(typesName);
      if (types.length > 0) await npm(app, 'install', '-D', ...types);
    })());

  it('ioredis 6: the README install lines, every block and examples/ compile under strict, and the app runs', async () => {
    await installFromReadme();
    expect(installedMajor('ioredis')).toBe('6');
    await compile();
    await runUseItInYourApp();
  }, 300_000);

  it('ioredis 5: the same, after `npm install ioredis@5`', async () => {
    await installFromReadme();
    await npm(app, 'install', 'ioredis@^5');
    expect(installedMajor('ioredis')).toBe('5');
    await compile();
    await runUseItInYourApp();
  }, 300_000);

  it('the oldest majors of every peer range (ioredis 5, Koa 2, koa-body 6): installs without a peer conflict, compiles and runs', async () => {
    // npm refuses (ERESOLVE) a peer outside the range instead of installing it. koa-body 6 types
    // ctx.request.body for @types/koa 2, which an app on Koa 2 has. ioredis 5 is named here too,
    // so the step does not rely on the one before it having run.
    await installFromReadme();
    await npm(app, 'install', 'ioredis@^5', 'koa@^2', 'koa-body@^6');
    await npm(app, 'install', '-D', '@types/koa@^2');
    expect(['ioredis', 'koa', 'koa-body', '@types/koa'].map(installedMajor)).toEqual([
      '5',
      '2',
      '6',
      '2',
    ]);
    await compile();
    await runUseItInYourApp();
  }, 300_000);
});
