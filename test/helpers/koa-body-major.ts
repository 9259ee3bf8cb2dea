import Module from 'node:module';
import { inject } from 'vitest';

/*
 * A setup file of the vitest projects that run the auth routes on an older koa-body major
 * (vitest.config.ts). The library loads koa-body with require() when auth.routes() first needs
 * it (src/middleware/json-body.ts), which no vite alias reaches; this points Node's own resolution
 * of `koa-body` at the dev dependency alias of that major (`koa-body6`, `koa-body7`), for every
 * require in this test worker. Under koa-body 6, `co-body` (which only koa-body requires) maps to
 * 6.1.0 (`co-body6-1`), the oldest its range admits and what an older lockfile holds: it lets a
 * "__proto__" key through, which 6.2.0 refuses. majors.test.ts proves what the routes load.
 */
const { koaBody } = inject('majors');
const MAPPED = Symbol.for('koa-jwt-redis.test.koa-body-major');
const state = globalThis as { [MAPPED]?: number };
if (state[MAPPED] !== undefined && state[MAPPED] !== koaBody)
  throw new Error(`this worker already maps koa-body to ${state[MAPPED]}, not ${koaBody}`);
// Once per worker process: a worker that runs several files runs this file before each.
if (koaBody !== 8 && state[MAPPED] === undefined) {
  state[MAPPED] = koaBody;
  const aliases: Record<string, string> = { 'koa-body': `koa-body${koaBody}` };
  if (koaBody === 6) aliases['co-body'] = 'co-body6-1';
  const internals = Module as unknown as {
    _resolveFilename: (request: string, ...rest: unknown[]) => string;
  };
  const resolve = internals._resolveFilename;
  internals._resolveFilename = function (this: unknown, request, ...rest) {
    const [name] = /^[^/]+/.exec(request) ?? [request];
    const alias = aliases[name];
    return resolve.call(
      this,
      alias === undefined ? request : alias + request.slice(name.length),
      ...rest,
    );
  };
}
