/**
 * A session store the library did not build, its answers checked against the SessionStore
 * contract before anything relies on one. Harmless variants are taken as what they mean (a
 * driver's 0/1 for a boolean, a count of ended sessions, null for "none", a Date for a time);
 * anything else fails the call (a 503 `store_unavailable`, its event naming the method, the field
 * and what came back) instead of a 500 from deeper down, or, worse, an `isLive` of `"false"` read
 * as live.
 */
import { isWholeNumber, warnOnce } from '../config/validate.js';
import { AuthConfigError } from '../errors.js';
import type { Holding, RotationResult, SessionRecord, SessionStore } from './session-store.js';

/** The library's own stores (see {@link trustStore}): their answers are not checked. */
const trusted = new WeakSet<object>();

/** Marks a store of the library's own (its constructor calls this): createAuth takes it as is. */
export function trustStore(store: object): void {
  trusted.add(store);
}

/** What a store answered where the SessionStore contract wants something else, in a sentence. */
function breach(where: string, wanted: string, got: unknown): string {
  return `the session store's ${where} is ${describe(got)}; the SessionStore contract wants ${wanted}`;
}

/** An answer of a custom store that the SessionStore contract does not allow. */
export class StoreContractError extends Error {
  /** The method whose answer broke the contract (`get`, `isLive`, …). */
  readonly method: string;
  constructor(method: string, where: string, wanted: string, got: unknown) {
    super(`koa-jwt-redis: ${breach(where, wanted, got)}`);
    this.name = new.target.name;
    this.method = method;
  }
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string')
    return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object') return `an object (${value.constructor?.name ?? 'no prototype'})`;
  return `the ${typeof value} ${String(value)}`;
}

const RESULTS: ReadonlySet<unknown> = new Set<RotationResult>([
  'rotated',
  'missing',
  'superseded',
  'reused',
]);
/** Read by the library: a string each. */
const IDS = ['sessionId', 'jti'] as const;
/** Shown by listSessions (and kept for a grace window): a string, null and undefined read as ''. */
const TEXTS = ['previousJti', 'ip', 'userAgent'] as const;
/** Epoch ms: a number, or a Date (a database driver's timestamp). */
const TIMES = ['rotatedAt', 'createdAt', 'lastUsedAt', 'expiresAt'] as const;

/** A rejection of `method`'s answer: a StoreContractError naming where it broke. */
class Refused {
  constructor(
    readonly where: string,
    readonly wanted: string,
    readonly got: unknown,
  ) {}
}

/** `value` as a SessionRecord (a copy, with the variants above taken as meant), or why not. */
function recordOf(value: unknown, where: string): SessionRecord | Refused {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    return new Refused(where, 'a SessionRecord object', value);
  const given = value as Record<string, unknown>;
  const record = { ...given } as Record<string, unknown>;
  for (const field of IDS)
    if (typeof given[field] !== 'string')
      return new Refused(`${where}.${field}`, 'a string', given[field]);
  for (const field of TEXTS) {
    const text = given[field];
    if (text === null || text === undefined) record[field] = '';
    else if (typeof text !== 'string') return new Refused(`${where}.${field}`, 'a string', text);
  }
  for (const field of TIMES) {
    const time = given[field] instanceof Date ? (given[field] as Date).getTime() : given[field];
    if (!Number.isFinite(time))
      return new Refused(`${where}.${field}`, 'epoch ms (a number or a Date)', given[field]);
    record[field] = time;
  }
  return record as unknown as SessionRecord;
}

/** A boolean, or a driver's 0 or 1 for one. */
function flag(value: unknown, where: string): boolean | Refused {
  if (typeof value === 'boolean') return value;
  if (value === 0 || value === 1) return value === 1;
  return new Refused(where, 'true or false', value);
}

function count(value: unknown, where: string): number | Refused {
  return isWholeNumber(value, 0, Number.MAX_SAFE_INTEGER)
    ? value
    : new Refused(where, 'a count (a whole number, 0 or more)', value);
}

/**
 * `store` as createAuth uses it: as given when it is one of the library's own, else behind a
 * Proxy that checks the contract's answers and passes everything else through to the store
 * (its own further methods and properties, `instanceof`), so a strategy factory that is handed
 * it (`context.store`) still finds what the app put there.
 */
export function checkedStore(store: SessionStore): SessionStore {
  if (trusted.has(store)) return store;
  // Read once, here: what the session strategy slides expiries by.
  const resolution: unknown = store.timeResolution;
  if (resolution !== undefined && !isWholeNumber(resolution, 1, Number.MAX_SAFE_INTEGER))
    throw new AuthConfigError(
      'store',
      `has a timeResolution of ${describe(resolution)}: give a whole number of ms above 0 (1000 for a store that keeps seconds), or none`,
    );
  // Each answer checked, or the call rejects with where it broke. A method that throws instead
  // of rejecting still throws, as the store's own call would.
  const checked =
    <T>(method: string, check: (value: unknown, where: string) => T | Refused) =>
    (answer: unknown): Promise<T> =>
      Promise.resolve(answer).then((value) => {
        const result = check(value, `${method}()`);
        if (result instanceof Refused)
          throw new StoreContractError(method, result.where, result.wanted, result.got);
        return result;
      });
  const rotation = checked('rotate', (v, where) =>
    RESULTS.has(v)
      ? (v as RotationResult)
      : new Refused(where, `one of ${[...RESULTS].join(', ')}`, v),
  );
  // null, which a database lookup often gives, is none.
  const record = checked('get', (v, where) =>
    v === null || v === undefined ? undefined : recordOf(v, where),
  );
  const live = checked('isLive', flag);
  // A count of the sessions it ended (a DELETE's row count) says whether one was live.
  const ended = checked('revoke', (v, where) => {
    const n = typeof v === 'number' ? count(v, where) : flag(v, where);
    return typeof n === 'number' ? n > 0 : n;
  });
  const revokedAll = checked('revokeAll', count);
  const records = checked('list', (v, where) => {
    if (!Array.isArray(v)) return new Refused(where, 'an array of SessionRecords', v);
    const list: SessionRecord[] = [];
    for (const [i, item] of v.entries()) {
      const one = recordOf(item, `${where}[${i}]`);
      if (one instanceof Refused) return one;
      list.push(one);
    }
    return list;
  });
  const pruned = checked('prune', count);
  const overrides: Partial<Record<keyof SessionStore, unknown>> = {
    create: (...a: Parameters<SessionStore['create']>) =>
      Promise.resolve(store.create(...a)).then(() => undefined),
    rotate: (...a: Parameters<SessionStore['rotate']>) => rotation(store.rotate(...a)),
    get: (...a: Parameters<SessionStore['get']>) => record(store.get(...a)),
    isLive: (...a: Parameters<SessionStore['isLive']>) => live(store.isLive(...a)),
    revoke: (...a: Parameters<SessionStore['revoke']>) => ended(store.revoke(...a)),
    revokeAll: (...a: Parameters<SessionStore['revokeAll']>) => revokedAll(store.revokeAll(...a)),
    list: (...a: Parameters<SessionStore['list']>) => records(store.list(...a)),
    timeResolution: resolution,
  };
  if (typeof store.prune === 'function')
    overrides.prune = (now: number) => pruned(store.prune!(now));
  // Called on the request's own turn, where a throw is no 503: an answer of another shape is
  // warned once and taken as "no answer here" (the check goes to isLive).
  const unsure = (method: string, wanted: string, answer: unknown): undefined => {
    warnOnce('KOA_JWT_REDIS_STORE_CONTRACT', breach(`${method}()`, wanted, answer));
    return undefined;
  };
  if (typeof store.cachedLiveness === 'function')
    overrides.cachedLiveness = (...a: Parameters<NonNullable<SessionStore['cachedLiveness']>>) => {
      const answer: unknown = store.cachedLiveness!(...a);
      return answer === undefined || typeof answer === 'boolean'
        ? answer
        : unsure('cachedLiveness', 'true, false or undefined', answer);
    };
  if (typeof store.livenessCheck === 'function')
    overrides.livenessCheck = (...a: Parameters<NonNullable<SessionStore['livenessCheck']>>) => {
      const answer: unknown = store.livenessCheck!(...a);
      return answer === undefined ||
        typeof (answer as Partial<Holding> | null)?.holds === 'function'
        ? (answer as Holding | undefined)
        : unsure('livenessCheck', 'a { holds(now) } or undefined', answer);
    };
  return new Proxy(store, {
    get(target, property) {
      if (Object.hasOwn(overrides, property)) return overrides[property as keyof SessionStore];
      const value: unknown = Reflect.get(target, property, target);
      // The store's own methods run on the store itself (its #private fields included).
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
