import { usesCookies, type WebOptions } from '../config/web.js';
import type { AuthErrorCode } from '../errors.js';
import type { JsonValue, OpenApiDocument } from './types.js';

const STATUS_TEXT: Record<number, string> = {
  400: 'Malformed JSON, or a body of the wrong shape',
  401: 'No valid credentials',
  403: 'Refused',
  404: 'Not found',
  413: 'The body is over 16 KiB',
  415: 'The body is not application/json',
  429: 'Too many login attempts',
  501: 'The strategy of these routes keeps no sessions',
  503: 'The session store did not answer in time',
};

/** A `$ref` to one of the document's components. */
export const ref = (kind: 'schemas' | 'parameters' | 'responses', name: string): JsonValue => ({
  $ref: `#/components/${kind}/${name}`,
});

/** An error response whose `error` is one of `codes`. */
export function errorResponse(status: number, codes: AuthErrorCode[], extra = ''): JsonValue {
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

/**
 * The document's `components`, which the paths refer to: the security schemes (bearer, and the
 * access cookie in cookie delivery), the request and response schemas, the shared responses, and the
 * CSRF header and refresh cookie parameters of cookie delivery.
 */
export function openApiComponents(
  web: WebOptions,
  loginSchema: { [key: string]: JsonValue },
  accessTokenTtl: number,
): OpenApiDocument['components'] {
  const cookieMode = usesCookies(web);
  const { names } = web.cookies;

  const codes: AuthErrorCode[] = [
    'token_missing',
    'token_invalid',
    'token_expired',
    'token_revoked',
    'refresh_reused',
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
            examples: [accessTokenTtl],
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
            examples: [accessTokenTtl],
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

  return components;
}
