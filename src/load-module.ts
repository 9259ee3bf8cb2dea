import { createRequire } from 'node:module';
import { AuthConfigError } from './errors.js';

const load = createRequire(import.meta.url);

/**
 * A dependency loaded when a factory first needs it rather than on import (koa-body for
 * `auth.routes()`, pg for `postgresStore()`): synchronously, by `require`, so the factory stays
 * synchronous and a missing package is an error at start-up, not on the first request. A package
 * that cannot be found throws an AuthConfigError for `option` whose message is `remedy`.
 */
export function loadModule<T>(name: string, option: string, remedy: string): T {
  try {
    // Loaded once: require keeps the module, and only a factory call asks again.
    return load(name) as T;
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw cause;
    throw new AuthConfigError(option, remedy, { cause });
  }
}
