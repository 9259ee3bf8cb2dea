import Module from 'node:module';
import { inject } from 'vitest';

/*
 * A setup file of the vitest projects that run the auth routes on an older koa-body major
 * (vitest.config.ts). The library loads koa-body with require() when auth.routes() first needs
 * it (src/middleware/json-body.ts), which no vite alias reaches; this points Node's own resolution
 * of `koa-body` at the dev dependency alias of that major (`koa-body6`, `koa-body7`), for every
 * require in this test worker. majors.test.ts proves the routes load it.
 */
const { koaBody } = inject('majors');
const MAPPED = Symbol.for('koa-jwt-redis.test.koa-body-major');
const state = globalThis as { [MAPPED]?: boolean };
// Once per worker process: a worker that runs several files runs this file before each.
if (koaBody !== 8 && !state[MAPPED]) {
  state[MAPPED] = true;
  const alias = `koa-body${koaBody}`;
  const internals = Module as unknown as {
    _resolveFilename: (request: string, ...rest: unknown[]) => string;
  };
  const resolve = internals._resolveFilename;
  internals._resolveFilename = function (this: unknown, request, ...rest) {
    const mapped =
      request === 'koa-body' || request.startsWith('koa-body/')
        ? alias + request.slice('koa-body'.length)
        : request;
    return resolve.call(this, mapped, ...rest);
  };
}
