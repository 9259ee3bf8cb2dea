import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
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

describe('the built package (npm test builds it first)', () => {
  it.runIf(existsSync(`${root}/dist/index.js`))(
    'loads by name from ESM and CommonJS with the same public API, and ships types',
    () => {
      const esm = node([
        '--input-type=module',
        '-e',
        "import * as m from 'koa-jwt-redis'; console.log(JSON.stringify(Object.keys(m).sort()))",
      ]);
      const cjs = node([
        '-e',
        "console.log(JSON.stringify(Object.keys(require('koa-jwt-redis')).sort()))",
      ]);
      expect(JSON.parse(esm)).toEqual(JSON.parse(cjs));
      for (const name of PUBLIC) expect(JSON.parse(esm)).toContain(name);
      expect(existsSync(`${root}/dist/index.d.ts`)).toBe(true);
      expect(existsSync(`${root}/dist/index.d.cts`)).toBe(true);
      // Internals stay hidden behind the exports map.
      expect(() => node(['-e', "require('koa-jwt-redis/dist/index.cjs')"])).toThrow();
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
        console.log(JSON.stringify([
          esm.AuthError === cjs.AuthError,
          fromEsm instanceof cjs.AuthError,
          fromCjs instanceof esm.AuthError,
          config instanceof cjs.AuthConfigError,
          new Error('plain') instanceof esm.AuthError,
          config instanceof esm.AuthError,
          typeof pair.access_token,
        ]));
        await auth.close();`,
      ]);
      expect(JSON.parse(out)).toEqual([false, true, true, true, false, false, 'string']);
    },
  );
});
