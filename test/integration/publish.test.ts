import { type ExecFileSyncOptions, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { publint } from 'publint';
import { formatMessage } from 'publint/utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/*
 * What npm would publish, checked offline by the two linters package consumers trust: publint
 * (package.json fields against the files) and Are the Types Wrong (types under every module
 * resolution: node10, node16 from CJS and from ESM, bundler).
 */

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = (name: string) => join(root, 'node_modules/.bin', name);
/** A child process that cannot block the test worker for ever: a hung one fails the test. */
const TIMEOUT = { timeout: 60_000 };
const run = (command: string, args: string[], options: ExecFileSyncOptions = {}): string =>
  execFileSync(command, args, { encoding: 'utf8', ...TIMEOUT, ...options }) as string;

describe('the packed package', () => {
  let dir: string;
  let tarball: string;

  beforeAll(() => {
    expect(existsSync(join(root, 'dist/index.js')), 'npm test builds dist/ first').toBe(true);
    dir = mkdtempSync(join(tmpdir(), 'kjr-publish-'));
    // --ignore-scripts: dist/ is built already; rebuilding would race the tests that load it.
    const name = run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], {
      cwd: root,
      encoding: 'utf8',
    })
      .trim()
      .split('\n')
      .pop()!;
    tarball = join(dir, name);
    run('tar', ['xzf', tarball, '-C', dir]);
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('publint reports nothing, suggestions included', async () => {
    const { messages, pkg } = await publint({
      pkgDir: join(dir, 'package'),
      pack: false,
      level: 'suggestion',
    });
    expect(messages.map((m) => `${m.type}: ${formatMessage(m, pkg) ?? m.code}`)).toEqual([]);
  });

  it('attw finds no problem under any module resolution', () => {
    const result = spawnSync(bin('attw'), [tarball, '--format', 'json'], {
      encoding: 'utf8',
      ...TIMEOUT,
    });
    const report = JSON.parse(result.stdout) as {
      analysis: { problems: unknown[]; entrypoints: Record<string, unknown> };
    };
    expect(report.analysis.problems).toEqual([]);
    expect(Object.keys(report.analysis.entrypoints)).toContain('.');
    expect(result.status).toBe(0);
  });

  it('has the metadata a registry page shows, and no file it should not ship', () => {
    const pkg = JSON.parse(readFileSync(join(dir, 'package/package.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(pkg).toMatchObject({
      repository: { type: 'git', url: expect.stringMatching(/^git\+https:\/\//) },
      homepage: expect.stringMatching(/^https:\/\//),
      bugs: { url: expect.stringMatching(/^https:\/\//) },
      sideEffects: false,
    });
    const files = run('tar', ['tzf', tarball]).split('\n');
    expect(
      files.filter((f) => /^package\/(src|test|bench|examples|node_modules)\//.test(f)),
    ).toEqual([]);
  });

  it('sideEffects: false holds — importing the package changes no global state', () => {
    // Dependencies load too; whatever they do counts, since a bundler would drop them with us.
    const out = run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `
        const snapshot = () => JSON.stringify({
          globals: Object.getOwnPropertyNames(globalThis).sort(),
          listeners: process.eventNames().map((n) => [String(n), process.listenerCount(n)]),
          env: Object.keys(process.env).sort(),
          exitCode: process.exitCode ?? null,
        });
        const before = snapshot();
        const m = await import('koa-jwt-redis');
        console.log(JSON.stringify({ same: before === snapshot(), before, after: snapshot(), exports: Object.keys(m).length }));`,
      ],
      { cwd: root, encoding: 'utf8' },
    );
    const result = JSON.parse(out) as {
      same: boolean;
      before: string;
      after: string;
      exports: number;
    };
    expect(result.exports).toBeGreaterThan(10);
    expect(result.after).toBe(result.before);
  });

  /** Runs an ES module snippet in a child Node that resolves `koa-jwt-redis` to the built package. */
  const esm = (code: string, preload: string[] = []): string =>
    run(process.execPath, [...preload, '--input-type=module', '-e', code], {
      cwd: root,
      encoding: 'utf8',
    });

  /** A preload (its path, for `--require`) that makes `name` unresolvable in the child Node. */
  const hiding = (name: string): string => {
    const file = join(dir, `hide-${name}.cjs`);
    writeFileSync(
      file,
      `const Module = require('node:module');
      const resolve = Module._resolveFilename;
      Module._resolveFilename = function (request, ...rest) {
        if (request === ${JSON.stringify(name)} || request.startsWith(${JSON.stringify(`${name}/`)})) {
          const error = new Error(${JSON.stringify(`Cannot find module '${name}'`)});
          error.code = 'MODULE_NOT_FOUND';
          throw error;
        }
        return resolve.call(this, request, ...rest);
      };`,
    );
    return file;
  };

  it('koa-body (an optional peer) loads on the first auth.routes(), not on import', () => {
    const out = esm(`
      import { createRequire } from 'node:module';
      const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((f) => f.includes('/node_modules/koa-body/'));
      const { createAuth } = await import('koa-jwt-redis');
      const auth = createAuth({ secret: 'publish-test-secret-0123456789abcdef' });
      const before = loaded();
      auth.requireAuth(); auth.getData();
      const afterMiddlewares = loaded();
      auth.routes({ login: () => null });
      console.log(JSON.stringify([before, afterMiddlewares, loaded()]));
      await auth.close();`);
    expect(JSON.parse(out)).toEqual([false, false, true]);
  });

  it('node-postgres loads when postgresStore() first opens a pool, not on import nor for a pool of the app, from either build', () => {
    const probe = (load: string) => `
      const loaded = () => Object.keys(require.cache).some((f) => f.includes('/node_modules/pg/'));
      ${load}
      const before = loaded();
      const auth = m.createAuth({ secret: 'publish-test-secret-0123456789abcdef' });
      await auth.generateTokens({ id: 'u1' });
      const afterRedisless = loaded();
      // A pool of the app's own (told by its shape: query and connect).
      const own = m.postgresStore({ query: async () => ({ rows: [] }), connect: async () => ({}) });
      const afterOwnPool = loaded();
      const store = m.postgresStore('postgres://127.0.0.1:1/unused');
      console.log(JSON.stringify([before, afterRedisless, afterOwnPool, loaded(), typeof store.migrate]));
      await own.close();
      await store.close();
      await auth.close();`;
    const esmOut = esm(
      probe(`const require = (await import('node:module')).createRequire(import.meta.url);
      const m = await import('koa-jwt-redis');`),
    );
    const cjsOut = esm(
      probe(`const require = (await import('node:module')).createRequire(import.meta.url);
      const m = require('koa-jwt-redis');`),
    );
    expect([JSON.parse(esmOut), JSON.parse(cjsOut)]).toEqual([
      [false, false, false, true, 'function'],
      [false, false, false, true, 'function'],
    ]);
  });

  it('without pg loadable (a bundle that left it out): a pool of the app works, a URL says what to do', () => {
    const hide = hiding('pg');
    const out = esm(
      `
      const { postgresStore, AuthConfigError } = await import('koa-jwt-redis');
      const own = postgresStore({ query: async () => ({ rows: [] }), connect: async () => ({}) });
      let error;
      try { postgresStore('postgres://127.0.0.1:1/unused'); } catch (e) { error = e; }
      console.log(JSON.stringify({
        own: typeof own.migrate,
        configError: error instanceof AuthConfigError,
        option: error?.option,
        message: error?.message,
      }));
      await own.close();`,
      ['--require', hide],
    );
    expect(JSON.parse(out)).toEqual({
      own: 'function',
      configError: true,
      option: 'postgresStore.connection',
      message: expect.stringContaining('npm install pg'),
    });
  });

  it('the CommonJS build reads a remote JWKS with jose (an ES module) where require() cannot load ES modules', () => {
    // Node before 20.19 (and 22.12) cannot require() an ES module: jose must come in by import().
    const code = `
      const { generateKeyPairSync } = require('node:crypto');
      const Koa = require('koa');
      const { createAuth, createVerifier } = require(${JSON.stringify(join(root, 'dist/index.cjs'))});
      const auth = createAuth({ keys: [{ algorithm: 'EdDSA', privateKey: generateKeyPairSync('ed25519').privateKey }] });
      const app = new Koa();
      app.use(auth.jwks());
      const server = app.listen(0, '127.0.0.1', async () => {
        try {
          const jwksUri = 'http://127.0.0.1:' + server.address().port + '/.well-known/jwks.json';
          const verifier = createVerifier({ jwksUri });
          await verifier.ready();
          const { access_token } = await auth.generateTokens({ id: 'u1' }, { strategy: 'jwt' });
          console.log(JSON.stringify({ sub: (await verifier.verify(access_token)).sub }));
        } finally { server.close(); await auth.close(); }
      });`;
    const out = run(process.execPath, ['--no-experimental-require-module', '-e', code], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(JSON.parse(out)).toEqual({ sub: 'u1' });
  });

  it('without koa-body installed: the package works, and auth.routes() says what to install', () => {
    // As in an app that never installed koa-body.
    const hide = hiding('koa-body');
    const out = esm(
      `
      const { createAuth, AuthConfigError } = await import('koa-jwt-redis');
      const auth = createAuth({ secret: 'publish-test-secret-0123456789abcdef' });
      const pair = await auth.generateTokens({ id: 'u1' });
      const refreshed = await auth.refreshTokens(pair.refresh_token);
      let error;
      try { auth.routes({ login: () => null }); } catch (e) { error = e; }
      console.log(JSON.stringify({
        refreshed: refreshed.token_type,
        configError: error instanceof AuthConfigError,
        option: error?.option,
        message: error?.message,
      }));
      await auth.close();`,
      ['--require', hide],
    );
    expect(JSON.parse(out)).toEqual({
      refreshed: 'bearer',
      configError: true,
      option: 'routes',
      message: expect.stringContaining('npm install koa-body'),
    });
  });
});
