import type { koaBody as KoaBody } from 'koa-body';
import { loadModule } from '../load-module.js';

/**
 * koa-body, loaded the first time `auth.routes()` asks for it: it is an optional peer
 * dependency, so an app that never mounts the routes neither installs nor loads it (with its
 * dependencies it is most of this package's install size). Loaded by `require` (koa-body ships
 * CommonJS as well as ESM; see loadModule).
 */
export function loadKoaBody(): typeof KoaBody {
  return loadModule<{ koaBody: typeof KoaBody }>(
    'koa-body',
    'routes',
    'auth.routes() parses request bodies with koa-body, an optional peer dependency that is not installed: run `npm install koa-body`',
  ).koaBody;
}
