import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import Koa from 'koa';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createAuth, memoryStore } from '../../src/index.js';
import { SECRET } from '../helpers/forge.js';
import { harnessRedisUrl, uniquePrefix } from '../helpers/auth.js';
import { serverMajor } from '../helpers/redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The ioredis, Koa and koa-body majors this vitest project runs on (vitest.config.ts). */
    majors: { ioredis: number; koa: number; koaBody: number };
  }
}

/** The version in the package.json of the package in `dir` (a path ending in `/`). */
const packageVersion = (dir: string): string =>
  (JSON.parse(readFileSync(`${dir}package.json`, 'utf8')) as { version: string }).version;
const version = (name: string): string =>
  packageVersion(fileURLToPath(new URL(`../../node_modules/${name}/`, import.meta.url)));
const major = (v: string): number => Number(v.split('.')[0]);

/*
 * The `ioredis5-koa2` project maps `ioredis` and `koa` to dev dependency aliases. This proves the
 * mapping reaches the code under test, not only this file: the client src/auth.ts creates from a
 * URL is the ioredis this project names (ioredis 6 speaks RESP3, 5 speaks RESP2, as Redis itself
 * reports), and the Koa the tests' servers run on is the aliased one.
 */
describe('the ioredis and Koa majors this project runs on', () => {
  const majors = inject('majors');
  const admin = new Redis(harnessRedisUrl(), { lazyConnect: true }).on('error', () => {});
  afterAll(() => admin.disconnect());

  it(`Koa ${majors.koa} serves the tests' apps`, async () => {
    // @ts-expect-error the koa2 alias has no types of its own (@types/koa describes `koa`)
    const koa2: unknown = (await import('koa2')).default;
    const loaded = (Koa as unknown) === koa2 ? version('koa2') : version('koa');
    expect(major(loaded)).toBe(majors.koa);
  });

  it(`ioredis ${majors.ioredis} is the client src creates and the tests inject`, async () => {
    const ioredis5: unknown = (await import('ioredis5')).Redis;
    const loaded = (Redis as unknown) === ioredis5 ? version('ioredis5') : version('ioredis');
    expect(major(loaded)).toBe(majors.ioredis);

    const name = `majors-${uniquePrefix().slice(0, -1)}`;
    const auth = createAuth({
      secret: SECRET,
      redis: `${harnessRedisUrl()}?connectionName=${name}`,
      keyPrefix: uniquePrefix(),
    });
    try {
      const pair = await auth.generateTokens({ id: 'u1' });
      expect(await auth.checkRefreshToken(pair.refresh_token)).toBe(true);
      const clients = (await admin.client('LIST')) as string;
      const line = clients.split('\n').find((l) => l.includes(` name=${name} `));
      expect(line, clients).toBeDefined();
      // Redis names a client's protocol in CLIENT LIST from 6.2 (`npm run test:redis6` runs 6.0).
      const resp = / resp=(\d)/.exec(line!)?.[1];
      if (resp !== undefined || (await serverMajor(admin)) >= 7)
        expect(resp).toBe(majors.ioredis >= 6 ? '3' : '2');
    } finally {
      await auth.close();
    }
  });
});

/*
 * The `koa-body6` and `koa-body7` projects map Node's resolution of `koa-body` to dev dependency
 * aliases (test/helpers/koa-body-major.ts): the library require()s it, which vite's aliases do
 * not reach. This proves the routes load the major the project names.
 */
describe('the koa-body major this project runs on', () => {
  const majors = inject('majors');

  it(`koa-body ${majors.koaBody} is the body parser auth.routes() loads`, async () => {
    const auth = createAuth({ secret: SECRET, store: memoryStore() });
    try {
      auth.routes({ login: () => null });
      const from = createRequire(new URL('../../src/middleware/json-body.ts', import.meta.url));
      const resolved = from.resolve('koa-body');
      expect(from.cache[resolved], resolved).toBeDefined();
      const name = /\/node_modules\/([^/]+)\//.exec(resolved)![1]!;
      expect(major(version(name))).toBe(majors.koaBody);
      // Under koa-body 6, the oldest co-body its range admits (test/helpers/koa-body-major.ts).
      const coBody = createRequire(resolved).resolve('co-body');
      expect(createRequire(resolved).cache[coBody], coBody).toBeDefined();
      const coBodyDir = /^.*\/node_modules\/[^/]+\//.exec(coBody)![0];
      expect(packageVersion(coBodyDir)).toBe(majors.koaBody === 6 ? '6.1.0' : '6.2.0');
    } finally {
      await auth.close();
    }
  });
});
