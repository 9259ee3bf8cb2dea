import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const PUBLIC = [
  'createAuth',
  'requireAuth',
  'getData',
  'getToken',
  'generateTokens',
  'checkRefreshToken',
  'refreshTokens',
  'invalidateRefreshToken',
  'revokeAllSessions',
  'listSessions',
  'strategies',
  'AuthError',
  'authErrors',
  'createVerifier',
];

/** Runs a snippet in a child Node as a user would, resolving the package by its name. */
function node(args: string[]): string {
  return execFileSync(process.execPath, args, {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60_000,
  });
}

/** The names the package exports at run time, loaded by name with `import` or `require`. */
function runtimeExports(build: 'import' | 'require'): string[] {
  const out =
    build === 'import'
      ? node([
          '--input-type=module',
          '-e',
          "import * as m from 'koa-jwt-redis'; console.log(JSON.stringify(Object.keys(m).sort()))",
        ])
      : node(['-e', "console.log(JSON.stringify(Object.keys(require('koa-jwt-redis')).sort()))"]);
  return JSON.parse(out) as string[];
}

describe('the built package (npm test builds it first)', () => {
  it.runIf(existsSync(`${root}/dist/index.js`))(
    'loads by name from ESM and CommonJS with the same public API, and ships types',
    () => {
      const esm = runtimeExports('import');
      expect(esm).toEqual(runtimeExports('require'));
      for (const name of PUBLIC) expect(esm).toContain(name);
      expect(existsSync(`${root}/dist/index.d.ts`)).toBe(true);
      expect(existsSync(`${root}/dist/index.d.cts`)).toBe(true);
      // Internals stay hidden behind the exports map.
      expect(() => node(['-e', "require('koa-jwt-redis/dist/index.cjs')"])).toThrow();
    },
  );

  it.runIf(existsSync(`${root}/dist/index.cjs`))(
    'every name the declarations export as a value is there at run time, in both builds',
    () => {
      // A class exported only as a type must be declared so: else `import { X }` compiles and
      // fails when the app starts.
      const valueExports = (file: string): string[] => {
        const source = ts.createSourceFile(
          file,
          readFileSync(`${root}/dist/${file}`, 'utf8'),
          ts.ScriptTarget.Latest,
        );
        const names: string[] = [];
        for (const statement of source.statements)
          if (
            ts.isExportDeclaration(statement) &&
            !statement.isTypeOnly &&
            statement.exportClause !== undefined &&
            ts.isNamedExports(statement.exportClause)
          )
            for (const element of statement.exportClause.elements)
              if (!element.isTypeOnly) names.push(element.name.text);
        return names.sort();
      };
      const esm = valueExports('index.d.ts');
      const cjs = valueExports('index.d.cts');
      expect(esm.length).toBeGreaterThan(20);
      expect(cjs).toEqual(esm);
      for (const build of ['import', 'require'] as const) {
        const loaded = runtimeExports(build);
        expect(esm.filter((name) => !loaded.includes(name))).toEqual([]);
      }
    },
  );

  it.runIf(existsSync(`${root}/dist/index.cjs`))('works end to end from CommonJS', () => {
    const out = node([
      '-e',
      `
      const { createAuth } = require('koa-jwt-redis');
      const auth = createAuth({ secret: require('crypto').randomBytes(32), refreshGracePeriod: 0 });
      auth.generateTokens({ id: 1 }).then(async (p) => {
        const next = await auth.refreshTokens(p.refresh_token);
        const err = await auth.refreshTokens(p.refresh_token).catch((e) => e);
        console.log(next.token_type, err.code, err instanceof require('koa-jwt-redis').AuthError);
        await auth.close();
      });`,
    ]);
    expect(out.trim()).toBe('bearer refresh_reused true');
  });

  it.runIf(existsSync(`${root}/dist/index.cjs`))(
    'both builds loaded side by side (import and require) share the errors and the default instance',
    () => {
      const out = node([
        '--input-type=module',
        '-e',
        `
        import { createRequire } from 'node:module';
        import * as esm from 'koa-jwt-redis';
        const cjs = createRequire(process.cwd() + '/')('koa-jwt-redis');
        const fromEsm = new esm.AuthError('token_invalid', 'x');
        const fromCjs = new cjs.AuthError('token_expired', 'y');
        const config = new esm.AuthConfigError('secret', 'z');
        const auth = esm.createAuth({ secret: 'a-secret-that-is-long-enough-for-hs256!!' });
        const pair = await cjs.generateTokens({ id: 1 });
        // The ESM build's authErrors() meets the CommonJS build's UnsupportedError: a JSON 501.
        const { default: Koa } = await import('koa');
        const app = new Koa();
        app.use(esm.authErrors()).use(() => {
          throw new cjs.UnsupportedError('jwt', 'listSessions', 'no sessions');
        });
        const server = app.listen(0, '127.0.0.1');
        await new Promise((resolve) => server.once('listening', resolve));
        const res = await fetch('http://127.0.0.1:' + server.address().port + '/');
        server.close();
        console.log(JSON.stringify([
          esm.AuthError === cjs.AuthError,
          fromEsm instanceof cjs.AuthError,
          fromCjs instanceof esm.AuthError,
          config instanceof cjs.AuthConfigError,
          new Error('plain') instanceof esm.AuthError,
          config instanceof esm.AuthError,
          typeof pair.access_token,
          new cjs.UnsupportedError('jwt', 'x', 'y') instanceof esm.UnsupportedError,
          new Error('plain') instanceof esm.UnsupportedError,
          res.status,
          (await res.json()).error,
        ]));
        await auth.close();`,
      ]);
      expect(JSON.parse(out)).toEqual([
        false,
        true,
        true,
        true,
        false,
        false,
        'string',
        true,
        false,
        501,
        'strategy_unsupported',
      ]);
    },
  );

  it.runIf(existsSync(`${root}/dist/index.cjs`))(
    'another version installed side by side keeps its own default instance, and its AuthError renders',
    () => {
      // A copy of the CommonJS build that says it is 0.99, where it resolves this project's
      // dependencies (under node_modules/, as a dependency's own copy would be).
      const dir = `${root}/node_modules/.kjr-other-version-${process.pid}`;
      const built = readFileSync(`${root}/dist/index.cjs`, 'utf8');
      const other = built.replace(/COMPATIBLE_VERSIONS = "[^"]+"/, 'COMPATIBLE_VERSIONS = "0.99"');
      expect(other).not.toBe(built);
      mkdirSync(dir, { recursive: true });
      writeFileSync(`${dir}/index.cjs`, other);
      try {
        const out = node([
          '--input-type=module',
          '-e',
          `
          import { createRequire } from 'node:module';
          import Koa from 'koa';
          import * as ours from 'koa-jwt-redis';
          const theirs = createRequire(process.cwd() + '/')(${JSON.stringify(`${dir}/index.cjs`)});
          const secret = 'a-secret-that-is-long-enough-for-hs256!!';
          const mine = ours.createAuth({ secret });
          let unset;
          try { await theirs.generateTokens({ id: 1 }); } catch (e) { unset = e.message; }
          const other = theirs.createAuth({ secret: secret + '-other' });
          const pair = await ours.generateTokens({ id: 2 });
          // Our middleware meets their AuthError: rendered as its 401, not a 500.
          const app = new Koa();
          app.use(ours.authErrors()).use(() => { throw new theirs.AuthError('token_invalid', 'theirs'); });
          const server = app.listen(0, '127.0.0.1');
          await new Promise((resolve) => server.once('listening', resolve));
          const res = await fetch('http://127.0.0.1:' + server.address().port + '/');
          server.close();
          console.log(JSON.stringify([
            unset,
            (await mine.checkRefreshToken(pair.refresh_token)),
            (await other.checkRefreshToken(pair.refresh_token)),
            res.status,
            (await res.json()).error,
          ]));
          await mine.close();
          await other.close();`,
        ]);
        expect(JSON.parse(out)).toEqual([
          expect.stringContaining('call createAuth'),
          true,
          false,
          401,
          'token_invalid',
        ]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
