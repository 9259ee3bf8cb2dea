import { usesCookies } from '../config/web.js';
import type { AuthErrorCode } from '../errors.js';
import { errorResponse, ref } from './components.js';
import type { JsonValue, OpenApiDocument, OpenApiSource, SessionHelper } from './types.js';

/**
 * The document's `paths`: one operation per route of `auth.routes()` under `prefix`, with what the
 * routes of `strategy` answer in the instance's token delivery.
 */
export function openApiPaths(
  source: OpenApiSource,
  prefix: string,
  strategy: string,
): OpenApiDocument['paths'] {
  const { web } = source;
  const cookieMode = usesCookies(web);
  const { names } = web.cookies;

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
  const setCookie: { headers?: { [name: string]: JsonValue } | undefined } = cookieMode
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

  return paths;
}
