/**
 * What the benchmark measures, one server process each, and what the load generator sends to it.
 * `group` pairs each target with the rows it is compared to in the report.
 */
export const TARGETS = {
  bare: { label: 'bare Koa', kind: 'me' },
  // Not a library target: shows what answering one turn of the event loop later does to a server
  // that does nothing (responses written together cost less per response), for reading /me rows.
  'bare-deferred': { label: 'bare Koa answering a turn later (setImmediate)', kind: 'me' },
  'koa-jwt': { label: 'koa-jwt (string secret, as its README)', kind: 'me' },
  'hand-me': { label: 'hand-written /me (stateless jsonwebtoken.verify)', kind: 'me' },
  'requireAuth-stateless': { label: 'requireAuth({ checkSession: false })', kind: 'me' },
  'requireAuth-redis': { label: 'requireAuth() (session check on Redis)', kind: 'me' },
  'requireAuth-cached': {
    label: 'requireAuth() with sessionCache: true, verifyCacheSize: 50000',
    kind: 'me',
  },
  // Not a library target: what a hand-written in-process cache does per request (one Map lookup
  // by the raw header, a copy for ctx.state; no expiry or liveness check), on the library's own
  // tokens. The reference for the requireAuth-cached row: the library's memo looks up a short
  // integer key instead of the whole header, and has come out within a few percent of it either
  // way (README).
  'floor-cached': {
    label: 'floor: one Map lookup by the Authorization header (no checks at all)',
    kind: 'me',
  },
  'requireAuth-session': {
    label: "requireAuth() with strategy: 'session' (opaque token, on Redis)",
    kind: 'me',
  },
  'requireAuth-shared': {
    label: 'requireAuth() (session check on Redis, keyBuckets: 4096)',
    kind: 'me',
  },
  'requireAuth-memory': { label: 'requireAuth() (session check on the memory store)', kind: 'me' },
  'requireAuth-pg': { label: 'requireAuth() (session check on PostgreSQL)', kind: 'me' },
  'requireAuth-session-pg': {
    label: "requireAuth() with strategy: 'session' on PostgreSQL",
    kind: 'me',
  },
  'hand-login': { label: 'hand-written login (sign 2 tokens, SADD)', kind: 'login' },
  login: { label: 'login (generateTokens)', kind: 'login' },
  'hand-refresh': { label: 'hand-written refresh (verify, SREM, sign 2, SADD)', kind: 'refresh' },
  refresh: { label: 'refresh (refreshTokens)', kind: 'refresh' },
  'login-text': { label: "login (generateTokens), recordFormat: 'text'", kind: 'login' },
  'refresh-text': { label: "refresh (refreshTokens), recordFormat: 'text'", kind: 'refresh' },
  'login-shared': { label: 'login (generateTokens), keyBuckets: 4096', kind: 'login' },
  'refresh-shared': { label: 'refresh (refreshTokens), keyBuckets: 4096', kind: 'refresh' },
  'login-pg': { label: 'login (generateTokens) on PostgreSQL', kind: 'login' },
  'refresh-pg': { label: 'refresh (refreshTokens) on PostgreSQL', kind: 'refresh' },
  'login-memory': { label: 'login (generateTokens) on the memory store', kind: 'login' },
  'refresh-memory': { label: 'refresh (refreshTokens) on the memory store', kind: 'refresh' },
  'login-session': {
    label: "login with strategy: 'session' (opaque token, on Redis)",
    kind: 'login',
  },
  'refresh-session': {
    label: "refresh with strategy: 'session' (opaque token, on Redis)",
    kind: 'refresh',
  },
  'login-jwt': { label: "login with strategy: 'jwt' (stateless, no store)", kind: 'login' },
  'refresh-jwt': { label: "refresh with strategy: 'jwt' (stateless, no store)", kind: 'refresh' },
} as const;

export type Target = keyof typeof TARGETS;

/** Targets on PostgreSQL (PG_URL, else 127.0.0.1:5432 database `test`): skipped when none answers. */
export const onPostgres = (target: Target): boolean => target.endsWith('-pg');
export const TARGET_NAMES = Object.keys(TARGETS) as Target[];

/** The strategy a library target uses: its name says so, else the default (`redis`). */
export const strategyOf = (target: Target): 'redis' | 'session' | 'jwt' =>
  /(^requireAuth|^login|^refresh)-session/.test(target)
    ? 'session'
    : target.endsWith('-jwt')
      ? 'jwt'
      : 'redis';

/**
 * Targets on Redis in the shared layout: 4,096 hashes, about 5 users each for the /me targets
 * (20,000 users), filling up to 10 to 20 sessions each over a login or refresh run.
 */
export const sharedKeys = (target: Target): number => (target.endsWith('-shared') ? 4096 : 0);

/** Targets on Redis with the text record (the binary one is the default). */
export const textRecords = (target: Target): boolean => target.endsWith('-text');

/** Targets on the in-process memory store. */
export const onMemory = (target: Target): boolean => target.endsWith('-memory');
