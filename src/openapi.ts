import type { AuthErrorCode } from './errors.js';
import { strayKey } from './config/validate.js';
import type { WebOptions } from './config/web.js';

/** A JSON value, as an OpenAPI document is made of. */
export type JsonValue =
  string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** An OpenAPI 3.1 document: plain JSON, ready for `JSON.stringify` or a YAML dumper. */
export interface OpenApiDocument {
  openapi: '3.1.0';
  info: { title: string; version: string; description?: string };
  servers?: { url: string; description?: string }[];
  paths: { [path: string]: { [method: string]: JsonValue } };
  components: { [section: string]: { [name: string]: JsonValue } };
  [extension: `x-${string}`]: JsonValue;
}

/** Options of {@link Auth.openapi}; `prefix` must be the one given to `auth.routes()`. */
export interface OpenApiOptions {
  /** The `prefix` of `auth.routes()`, plus any parent router's prefix in front. @default '/auth' */
  prefix?: string;
  /** The document's `info`. @default { title: 'Authentication', version: '1.0.0' } */
  info?: { title: string; version: string; description?: string };
  /** The document's `servers`, e.g. `[{ url: 'https://api.example.com' }]`. */
  servers?: { url: string; description?: string }[];
  /**
   * JSON Schema of the login body your `login(ctx)` reads.
   * @default { type: 'object', properties: { username, password }, required: both }
   */
  loginSchema?: { [key: string]: JsonValue };
  /**
   * The `strategy` of `auth.routes()`: the session routes of one that keeps no sessions (the
   * stateless `jwt` strategy) are documented as the 501 they answer. @default the default strategy
   */
  strategy?: string;
}

/** The helpers behind the session routes, which a strategy may lack (the routes answer 501). */
export type SessionHelper = 'listSessions' | 'revokeAllSessions' | 'revokeSession';

/** What the document needs from the instance. */
export interface OpenApiSource {
  web: WebOptions;
  accessTokenTtl: number;
  /** The registered strategies' names, and the default one's. */
  strategies: readonly string[];
  defaultStrategy: string;
  /** Whether the strategy named `strategy` has `helper`. */
  supports(strategy: string, helper: SessionHelper): boolean;
}

const PREFIX = /^(\/[A-Za-z0-9._~-]+)*$/;

const DEFAULT_LOGIN_SCHEMA: { [key: string]: JsonValue } = {
  type: 'object',
  properties: { username: { type: 'string' }, password: { type: 'string', format: 'password' } },
  required: ['username', 'password'],
};

const STATUS_TEXT: Record<number, string> = {
  400: 'Malformed JSON, or a body of the wrong shape',
  401: 'No valid credentials',
  403: 'Refused',
  404: 'Not found',
  409: 'A concurrent refresh already rotated this token',
  413: 'The body is over 16 KiB',
  415: 'The body is not application/json',
  429: 'Too many login attempts',
  501: 'The strategy of these routes keeps no sessions',
  503: 'The session store did not answer in time',
};

const OPENAPI_OPTION_NAMES: readonly string[] = [
  'prefix',
  'info',
  'servers',
  'loginSchema',
  'strategy',
] satisfies (keyof OpenApiOptions)[];

function configError(option: string, message: string): TypeError {
  return new TypeError(`koa-jwt-redis: auth.openapi \`${option}\` ${message}`);
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

  const { web } = source;
  const cookieMode = web.tokenDelivery !== 'json';
  const { names } = web.cookies;
  const ref = (kind: 'schemas' | 'parameters' | 'responses', name: string): JsonValue => ({
    $ref: `#/components/${kind}/${name}`,
  });

  /** An error response whose `error` is one of `codes`. */
  function errorResponse(status: number, codes: AuthErrorCode[], extra = ''): JsonValue {
    return {
      description: `${STATUS_TEXT[status] ?? 'Error'}: ${codes.map((c) => `\`${c}\``).join(', ')}${extra}`,
      content: {
        'application/json': {
          schema: {
            allOf: [
              ref('schemas', 'Error'),
              { type: 'object', properties: { error: { enum: codes } } },
            ],
          },
        },
      },
    };
  }

  const csrfCodes: AuthErrorCode[] = ['csrf_failed', 'origin_forbidden'];
  const bodyErrors = {
    '400': errorResponse(400, ['invalid_request']),
    '413': errorResponse(413, ['body_too_large']),
    '415': errorResponse(415, ['unsupported_media_type']),
  };
  const unavailable = { '503': ref('responses', 'StoreUnavailable') };
  const forbidden: { [status: string]: JsonValue } = cookieMode
    ? { '403': errorResponse(403, csrfCodes) }
    : {};
  const unsafeParameters: JsonValue[] = cookieMode ? [ref('parameters', 'CsrfHeader')] : [];
  const authenticated: JsonValue = cookieMode
    ? [{ bearerAuth: [] }, { accessCookie: [] }]
    : [{ bearerAuth: [] }];
  const setCookie: { headers?: { [name: string]: JsonValue } } = cookieMode
    ? {
        headers: {
          'Set-Cookie': {
            description: `\`${names.access}\`, \`${names.refresh}\` (scoped to the refresh route) and \`${names.csrf}\`; cleared with Max-Age=0 on logout`,
            schema: { type: 'string' },
          },
        },
      }
    : {};
  const tokenBody: JsonValue =
    web.tokenDelivery === 'cookie' ? ref('schemas', 'CookieTokens') : ref('schemas', 'TokenPair');
  const tokens = (description: string): JsonValue => ({
    description,
    headers: {
      ...(cookieMode ? setCookie.headers : {}),
      'Cache-Control': { schema: { type: 'string', const: 'no-store' } },
    },
    content: { 'application/json': { schema: tokenBody } },
  });
  const refreshBody = (required: boolean, what: string): JsonValue => ({
    required,
    description: cookieMode
      ? `${what}: the refresh token in the body, or the \`${names.refresh}\` cookie when the body has none`
      : `${what}: the refresh token`,
    content: { 'application/json': { schema: ref('schemas', 'RefreshRequest') } },
  });
  const refreshCookie: JsonValue[] = cookieMode ? [ref('parameters', 'RefreshCookie')] : [];
  /**
   * A session route's responses: its success where the strategy has the helpers of one of `ways`
   * (each a set of helpers the route may call), and the 501 it answers where it lacks one (the
   * stateless strategy keeps no sessions).
   */
  const sessions = (
    ways: SessionHelper[][],
    success: { [status: string]: JsonValue },
  ): { [status: string]: JsonValue } => {
    const served = ways.map((helpers) => helpers.every((h) => source.supports(strategy, h)));
    return {
      ...(served.some(Boolean) ? success : {}),
      ...(served.every(Boolean) ? {} : { '501': errorResponse(501, ['strategy_unsupported']) }),
    };
  };

  const paths: OpenApiDocument['paths'] = {
    [`${prefix}/login`]: {
      post: {
        operationId: 'login',
        summary: 'Log in: start a session and receive tokens',
        tags: ['auth'],
        parameters: unsafeParameters,
        requestBody: {
          required: true,
          content: { 'application/json': { schema: ref('schemas', 'LoginRequest') } },
        },
        responses: {
          '200': tokens('Logged in'),
          ...bodyErrors,
          '401': errorResponse(401, ['invalid_credentials']),
          ...forbidden,
          '429': {
            ...(errorResponse(429, ['rate_limited']) as { [key: string]: JsonValue }),
            headers: { 'Retry-After': { schema: { type: 'integer', minimum: 1 } } },
          },
          ...unavailable,
        },
      },
    },
    [`${prefix}/refresh`]: {
      post: {
        operationId: 'refresh',
        summary: 'Rotate the refresh token and receive a new pair',
        tags: ['auth'],
        description:
          'The refresh token may also come as `Authorization: Bearer <refresh_token>` (after the body and the cookie).',
        parameters: [...unsafeParameters, ...refreshCookie],
        requestBody: refreshBody(false, 'Refresh'),
        responses: {
          '200': tokens('Rotated: the old refresh token no longer works'),
          ...bodyErrors,
          '401': errorResponse(401, [
            'token_missing',
            'token_invalid',
            'token_expired',
            'token_revoked',
            'refresh_reused',
          ]),
          ...forbidden,
          '409': errorResponse(409, ['refresh_conflict'], ' (only with `refreshGracePeriod`)'),
          ...unavailable,
        },
      },
    },
    [`${prefix}/logout`]: {
      post: {
        operationId: 'logout',
        summary: "End a session: the refresh token's, else the access token's",
        tags: ['auth'],
        parameters: [...unsafeParameters, ...refreshCookie],
        requestBody: refreshBody(false, 'Logout'),
        security: [...(authenticated as JsonValue[]), {}],
        responses: {
          '204': {
            description: 'Logged out (also when the session had already ended)',
            ...setCookie,
          },
          ...bodyErrors,
          '401': errorResponse(401, ['token_missing', 'token_invalid', 'token_expired']),
          ...forbidden,
          ...unavailable,
        },
      },
    },
    [`${prefix}/logout-all`]: {
      post: {
        operationId: 'logoutAll',
        summary: "End all the caller's sessions, or all but the current one",
        tags: ['auth'],
        parameters: unsafeParameters,
        security: authenticated,
        requestBody: {
          required: false,
          content: { 'application/json': { schema: ref('schemas', 'LogoutAllRequest') } },
        },
        responses: {
          ...sessions([['revokeAllSessions'], ['listSessions', 'revokeSession']], {
            '200': {
              description: 'How many sessions ended',
              ...setCookie,
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: { revoked: { type: 'integer', minimum: 0 } },
                    required: ['revoked'],
                  },
                },
              },
            },
            ...unavailable,
          }),
          ...bodyErrors,
          '401': ref('responses', 'Unauthenticated'),
          ...forbidden,
        },
      },
    },
    [`${prefix}/sessions`]: {
      get: {
        operationId: 'listSessions',
        summary: "The caller's live sessions, oldest first",
        tags: ['sessions'],
        security: authenticated,
        responses: {
          ...sessions([['listSessions']], {
            '200': {
              description: 'The sessions; the caller’s own has `current: true`',
              content: {
                'application/json': {
                  schema: { type: 'array', items: ref('schemas', 'Session') },
                },
              },
            },
            ...unavailable,
          }),
          '401': ref('responses', 'Unauthenticated'),
        },
      },
    },
    [`${prefix}/sessions/{id}`]: {
      delete: {
        operationId: 'revokeSession',
        summary: "End one of the caller's sessions",
        tags: ['sessions'],
        security: authenticated,
        parameters: [
          ...unsafeParameters,
          { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
        ],
        responses: {
          ...sessions([['revokeSession']], {
            '204': { description: 'Ended', ...setCookie },
            '404': errorResponse(404, ['session_not_found']),
            ...unavailable,
          }),
          '401': ref('responses', 'Unauthenticated'),
          ...forbidden,
        },
      },
    },
  };

  const codes: AuthErrorCode[] = [
    'token_missing',
    'token_invalid',
    'token_expired',
    'token_revoked',
    'refresh_reused',
    'refresh_conflict',
    'store_unavailable',
    'invalid_request',
    'unsupported_media_type',
    'body_too_large',
    'invalid_credentials',
    'csrf_failed',
    'origin_forbidden',
    'session_not_found',
    'rate_limited',
    // A route the routes' strategy cannot serve (sessions of the stateless `jwt` strategy): 501.
    'strategy_unsupported',
  ];

  const components: OpenApiDocument['components'] = {
    securitySchemes: {
      bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
      ...(cookieMode
        ? {
            accessCookie: {
              type: 'apiKey',
              in: 'cookie',
              name: names.access,
              description: `Unsafe methods also need the \`${web.csrf.header}\` header equal to the \`${names.csrf}\` cookie`,
            },
          }
        : {}),
    },
    schemas: {
      Error: {
        type: 'object',
        properties: {
          error: { type: 'string', enum: codes, description: 'A stable code to switch on' },
          message: { type: 'string', description: 'For humans; may change' },
        },
        required: ['error', 'message'],
      },
      LoginRequest: loginSchema,
      RefreshRequest: {
        type: 'object',
        properties: { refresh_token: { type: 'string', minLength: 1 } },
        ...(cookieMode ? {} : { required: ['refresh_token'] }),
      },
      LogoutAllRequest: {
        type: 'object',
        properties: {
          keep_current: { type: 'boolean', description: 'Keep the session making the request' },
        },
      },
      TokenPair: {
        type: 'object',
        properties: {
          access_token: { type: 'string' },
          refresh_token: { type: 'string' },
          token_type: { type: 'string', const: 'bearer' },
          expires_in: {
            type: 'integer',
            description: 'Seconds',
            examples: [source.accessTokenTtl],
          },
        },
        required: ['access_token', 'refresh_token', 'token_type', 'expires_in'],
      },
      CookieTokens: {
        type: 'object',
        properties: {
          token_type: { type: 'string', const: 'cookie' },
          expires_in: {
            type: 'integer',
            description: 'Seconds',
            examples: [source.accessTokenTtl],
          },
        },
        required: ['token_type', 'expires_in'],
      },
      Session: {
        type: 'object',
        properties: {
          sessionId: { type: 'string' },
          createdAt: { type: 'string', format: 'date-time' },
          lastUsedAt: { type: 'string', format: 'date-time' },
          expiresAt: { type: 'string', format: 'date-time' },
          userAgent: { type: 'string', description: 'The device label, e.g. "Firefox on Linux"' },
          device: {
            type: 'object',
            properties: {
              label: { type: 'string' },
              browser: { type: 'string' },
              os: { type: 'string' },
              type: { enum: ['desktop', 'mobile', 'tablet', 'tv', 'bot', 'unknown'] },
            },
            required: ['label', 'type'],
          },
          ip: { type: 'string' },
          current: { type: 'boolean' },
        },
        required: ['sessionId', 'createdAt', 'lastUsedAt', 'expiresAt', 'current'],
      },
    },
    responses: {
      Unauthenticated: errorResponse(401, [
        'token_missing',
        'token_invalid',
        'token_expired',
        'token_revoked',
      ]),
      StoreUnavailable: {
        ...(errorResponse(503, ['store_unavailable']) as { [key: string]: JsonValue }),
        headers: { 'Retry-After': { schema: { type: 'integer', minimum: 1 } } },
      },
    },
    parameters: cookieMode
      ? {
          CsrfHeader: {
            name: web.csrf.header,
            in: 'header',
            required: false,
            description: `The double-submit CSRF token: the \`${names.csrf}\` cookie's value (any value before login). Needed on unsafe requests a cookie authenticates.`,
            schema: { type: 'string' },
          },
          RefreshCookie: {
            name: names.refresh,
            in: 'cookie',
            required: false,
            description: 'The refresh token, when the body has none',
            schema: { type: 'string' },
          },
        }
      : {},
  };

  return {
    openapi: '3.1.0',
    info: { ...info },
    ...(options.servers ? { servers: options.servers.map((s) => ({ ...s })) } : {}),
    paths,
    components,
  };
}
