import { AuthConfigError } from './errors.js';
import { strayKey, stripUndefined } from './config/validate.js';
import { openApiComponents } from './openapi/components.js';
import { openApiPaths } from './openapi/paths.js';
import type { JsonValue, OpenApiDocument, OpenApiSource } from './openapi/types.js';
// The prefix auth.routes() accepts: the document describes those routes.
import { PREFIX } from './router/mount-path.js';

/** Options of {@link Auth.openapi}; `prefix` must be the one given to `auth.routes()`. */
export interface OpenApiOptions {
  /** The `prefix` of `auth.routes()`, plus any parent router's prefix in front. @default '/auth' */
  prefix?: string | undefined;
  /** The document's `info`. @default { title: 'Authentication', version: '1.0.0' } */
  info?: { title: string; version: string; description?: string | undefined } | undefined;
  /** The document's `servers`, e.g. `[{ url: 'https://api.example.com' }]`. */
  servers?: { url: string; description?: string | undefined }[] | undefined;
  /**
   * JSON Schema of the login body your `login(ctx)` reads.
   * @default { type: 'object', properties: { username, password }, required: both }
   */
  loginSchema?: { [key: string]: JsonValue } | undefined;
  /**
   * The `strategy` of `auth.routes()`: the session routes of one that keeps no sessions (the
   * stateless `jwt` strategy) are documented as the 501 they answer. @default the default strategy
   */
  strategy?: string | undefined;
}

const DEFAULT_LOGIN_SCHEMA: { [key: string]: JsonValue } = {
  type: 'object',
  properties: { username: { type: 'string' }, password: { type: 'string', format: 'password' } },
  required: ['username', 'password'],
};

const OPENAPI_OPTION_NAMES: readonly string[] = [
  'prefix',
  'info',
  'servers',
  'loginSchema',
  'strategy',
] satisfies (keyof OpenApiOptions)[];

/** A wrong option of `auth.openapi()`, called as an app starts: named `openapi.<option>`. */
function configError(option: string, message: string): AuthConfigError {
  return new AuthConfigError(option === 'options' ? 'openapi' : `openapi.${option}`, message);
}

/**
 * A deep copy of `value` if it is JSON (plain objects, arrays, strings, finite numbers, booleans,
 * null), else undefined: a function or a cycle in a schema would make the document no JSON, and a
 * copy keeps a later change to the caller's object out of it.
 */
function jsonCopy(value: unknown, depth = 0): JsonValue | undefined {
  if (depth > 64) return undefined;
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (Array.isArray(value)) {
    const items: JsonValue[] = [];
    for (const item of value as unknown[]) {
      const copy = jsonCopy(item, depth + 1);
      if (copy === undefined) return undefined;
      items.push(copy);
    }
    return items;
  }
  const prototype: unknown = typeof value === 'object' ? Object.getPrototypeOf(value) : undefined;
  if (prototype !== Object.prototype && prototype !== null) return undefined;
  const entries: [string, JsonValue][] = [];
  for (const [key, item] of Object.entries(value as object)) {
    const inner = jsonCopy(item, depth + 1);
    if (inner === undefined) return undefined;
    entries.push([key, inner]);
  }
  // fromEntries defines each key, `__proto__` (a JSON.parse result may hold one) included.
  return Object.fromEntries(entries);
}

/**
 * Describes the routes of `auth.routes()` as an OpenAPI 3.1 document, for the instance's token
 * delivery (bearer JSON, cookies with their names and the CSRF header, or both).
 */
export function createOpenApiDocument(
  source: OpenApiSource,
  options: OpenApiOptions = {},
): OpenApiDocument {
  if (options === null || typeof options !== 'object')
    throw configError('options', 'must be an object');
  const stray = strayKey(options, OPENAPI_OPTION_NAMES);
  if (stray !== undefined)
    throw configError(stray, `is not an option; known: ${OPENAPI_OPTION_NAMES.join(', ')}`);
  const prefix = options.prefix ?? '/auth';
  if (typeof prefix !== 'string' || !PREFIX.test(prefix))
    throw configError('prefix', 'must be a path like "/auth" (or ""), without a trailing slash');
  const info = options.info ?? { title: 'Authentication', version: '1.0.0' };
  if (typeof info?.title !== 'string' || typeof info.version !== 'string')
    throw configError('info', 'must be { title, version } (strings)');
  if (
    options.servers !== undefined &&
    (!Array.isArray(options.servers) || !options.servers.every((s) => typeof s?.url === 'string'))
  )
    throw configError('servers', 'must be an array of { url }');
  const strategy = options.strategy ?? source.defaultStrategy;
  if (typeof strategy !== 'string' || !source.strategies.includes(strategy))
    throw configError(
      'strategy',
      `must name a registered strategy, as auth.routes() does: ${source.strategies.join(', ')}`,
    );
  const loginSchema = jsonCopy(options.loginSchema ?? DEFAULT_LOGIN_SCHEMA);
  if (loginSchema === null || typeof loginSchema !== 'object' || Array.isArray(loginSchema))
    throw configError(
      'loginSchema',
      'must be a JSON Schema object: plain JSON all the way down (no functions, no cycles)',
    );

  return {
    openapi: '3.1.0',
    // Copies without the members given as undefined: the document is plain JSON.
    info: stripUndefined(info) as OpenApiDocument['info'],
    ...(options.servers
      ? {
          servers: options.servers.map(
            (s) => stripUndefined(s) as NonNullable<OpenApiDocument['servers']>[number],
          ),
        }
      : {}),
    paths: openApiPaths(source, prefix, strategy),
    components: openApiComponents(source.web, loginSchema, source.accessTokenTtl),
  };
}
