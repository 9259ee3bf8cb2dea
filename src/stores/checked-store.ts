/**
 * A session store the library did not build, its answers checked against the SessionStore
 * contract before anything relies on one: an answer of another shape fails the call (a 503
 * `store_unavailable`, its event naming the method and what came back) instead of a 500 from
 * deeper down, or, worse, an `isLive` of `"false"` read as live.
 */
import { warnOnce } from '../config/validate.js';
import type { RotationResult, SessionRecord, SessionStore } from './session-store.js';

/** The library's own stores (see {@link trustStore}): their answers are not checked. */
const trusted = new WeakSet<object>();

/** Marks a store of the library's own (its constructor calls this): createAuth takes it as is. */
export function trustStore(store: object): void {
  trusted.add(store);
}

/** What a store answered where the SessionStore contract wants something else, in a sentence. */
function breach(method: string, wanted: string, got: unknown): string {
  return `the session store's ${method}() answered ${describe(got)}; the SessionStore contract wants ${wanted}`;
}

/** An answer of a custom store that the SessionStore contract does not allow. */
export class StoreContractError extends Error {
  constructor(method: string, wanted: string, got: unknown) {
    super(`koa-jwt-redis: ${breach(method, wanted, got)}`);
    this.name = 'StoreContractError';
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 40))}`;
  if (typeof value === 'object') return 'an object of another shape';
  return `${typeof value === 'undefined' ? '' : `the ${typeof value} `}${String(value)}`;
}

const RESULTS: ReadonlySet<unknown> = new Set<RotationResult>([
  'rotated',
  'missing',
  'superseded',
  'reused',
]);
const TEXT_FIELDS = ['sessionId', 'jti', 'previousJti', 'ip', 'userAgent'] as const;
const TIME_FIELDS = ['rotatedAt', 'createdAt', 'lastUsedAt', 'expiresAt'] as const;
const RECORD = `a SessionRecord (${TEXT_FIELDS.join(', ')} strings; ${TIME_FIELDS.join(', ')} epoch ms)`;

function isRecord(value: unknown): value is SessionRecord {
  if (value === null || typeof value !== 'object') return false;
  const record = value as Record<string, unknown>;
  return (
    TEXT_FIELDS.every((field) => typeof record[field] === 'string') &&
    TIME_FIELDS.every((field) => Number.isFinite(record[field]))
  );
}

const isCount = (value: unknown): value is number =>
  Number.isSafeInteger(value) && (value as number) >= 0;

/** `store` as createAuth uses it: as given when it is one of the library's own, else checked. */
export function checkedStore(store: SessionStore): SessionStore {
  if (trusted.has(store)) return store;
  // Each answer checked, or the call fails with what the contract wanted. A method that throws
  // instead of rejecting still throws, as the store's own call would.
  const checked =
    <T>(method: string, wanted: string, valid: (value: unknown) => value is T) =>
    (answer: Promise<unknown>): Promise<T> =>
      Promise.resolve(answer).then((value) => {
        if (!valid(value)) throw new StoreContractError(method, wanted, value);
        return value;
      });
  const rotation = checked(
    'rotate',
    `one of ${[...RESULTS].join(', ')}`,
    (v): v is RotationResult => RESULTS.has(v),
  );
  const record = checked(
    'get',
    `${RECORD}, or undefined`,
    (v): v is SessionRecord | undefined => v === undefined || isRecord(v),
  );
  const live = checked('isLive', 'true or false', (v): v is boolean => typeof v === 'boolean');
  const ended = checked('revoke', 'true or false', (v): v is boolean => typeof v === 'boolean');
  const count = checked('revokeAll', 'a count (a whole number, 0 or more)', isCount);
  const records = checked(
    'list',
    `an array of ${RECORD}`,
    (v): v is SessionRecord[] => Array.isArray(v) && v.every(isRecord),
  );
  const pruned = checked('prune', 'a count (a whole number, 0 or more)', isCount);
  const wrapped: SessionStore = {
    create: (userId, session, maxSessions) =>
      Promise.resolve(store.create(userId, session, maxSessions)).then(() => undefined),
    rotate: (userId, r) => rotation(store.rotate(userId, r)),
    // null, which a database lookup often gives, is taken as undefined (none).
    get: (userId, sessionId, now) =>
      record(Promise.resolve(store.get(userId, sessionId, now)).then((v) => v ?? undefined)),
    isLive: (userId, sessionId, now) => live(store.isLive(userId, sessionId, now)),
    revoke: (userId, sessionId) => ended(store.revoke(userId, sessionId)),
    revokeAll: (userId, now) => count(store.revokeAll(userId, now)),
    list: (userId, now) => records(store.list(userId, now)),
    close: () => store.close(),
    timeResolution: store.timeResolution,
  };
  if (store.prune) wrapped.prune = (now) => pruned(store.prune!(now));
  if (store.ping) wrapped.ping = () => store.ping!();
  if (store.livenessCheck)
    wrapped.livenessCheck = (userId, sessionId, now) =>
      store.livenessCheck!(userId, sessionId, now);
  if (store.cachedLiveness)
    wrapped.cachedLiveness = (userId, sessionId, now) => {
      const answer: unknown = store.cachedLiveness!(userId, sessionId, now);
      if (answer === undefined || typeof answer === 'boolean') return answer;
      // Called on the request's own turn, where a throw is no 503: asked of isLive instead.
      warnOnce(
        'KOA_JWT_REDIS_STORE_CONTRACT',
        breach('cachedLiveness', 'true, false or undefined', answer),
      );
      return undefined;
    };
  return wrapped;
}
