/** What the benchmark measures, one server process each, and what the load generator sends to it. */
export const TARGETS = {
  bare: { label: 'bare Koa', kind: 'me' },
  'koa-jwt': { label: 'koa-jwt (string secret, as its README)', kind: 'me' },
  'requireAuth-stateless': { label: 'requireAuth({ checkSession: false })', kind: 'me' },
  'requireAuth-redis': { label: 'requireAuth() (session check on Redis)', kind: 'me' },
  'requireAuth-stateless-nocache': {
    label: 'requireAuth({ checkSession: false }), verifyCacheSize: 0',
    kind: 'me',
  },
  'requireAuth-redis-nocache': { label: 'requireAuth(), verifyCacheSize: 0', kind: 'me' },
  login: { label: 'login (generateTokens)', kind: 'login' },
  refresh: { label: 'refresh (refreshTokens)', kind: 'refresh' },
} as const;

export type Target = keyof typeof TARGETS;
export const TARGET_NAMES = Object.keys(TARGETS) as Target[];
