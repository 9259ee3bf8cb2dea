import { createRequire } from 'node:module';
import type { koaBody as KoaBody } from 'koa-body';
import { AuthConfigError } from '../errors.js';

let loaded: typeof KoaBody | undefined;

/**
 * koa-body, loaded the first time `auth.routes()` asks for it: it is an optional peer
 * dependency, so an app that never mounts the routes neither installs nor loads it (with its
 * dependencies it is most of this package's install size). Loaded synchronously, by `require`
 * (koa-body ships CommonJS as well as ESM), so `auth.routes()` stays synchronous and a missing
 * package is an error at start-up, not on the first request.
 */
export function loadKoaBody(): typeof KoaBody {
  if (loaded) return loaded;
  try {
    const required = createRequire(import.meta.url)('koa-body') as { koaBody: typeof KoaBody };
    loaded = required.koaBody;
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw cause;
    throw new AuthConfigError(
      'routes',
      'auth.routes() parses request bodies with koa-body, an optional peer dependency that is not installed: run `npm install koa-body`',
      { cause },
    );
  }
  return loaded;
}
