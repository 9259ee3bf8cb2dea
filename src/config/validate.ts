import { AuthConfigError } from '../errors.js';

/*
 * The one validator kit for options. Every factory (createAuth, createVerifier, auth.routes,
 * auth.jwks, the middlewares) checks its options with these, once, at start-up: a wrong value
 * throws an AuthConfigError that names the option and says what to change.
 */

/**
 * A given value as an error message shows it: numbers as written (`Infinity`, `NaN`, which JSON
 * would print as null), a bigint with its `n`, strings quoted, anything else by its JSON or kind.
 */
export function shown(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (value === undefined) return 'undefined';
  if (typeof value === 'symbol') return 'a symbol';
  if (typeof value === 'function') return 'a function';
  try {
    return JSON.stringify(value);
  } catch {
    return Array.isArray(value) ? 'an array' : 'an object';
  }
}

/** Whether `value` is a whole number within [min, max]. */
export function isWholeNumber(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

/** A whole number within [min, max]. */
export function wholeNumber(name: string, value: unknown, min: number, max: number): number {
  if (!isWholeNumber(value, min, max)) {
    throw new AuthConfigError(
      name,
      `must be a whole number from ${min} to ${max} (got ${shown(value)})`,
    );
  }
  return value;
}

/** A non-empty string, or undefined when left out. */
export function optionalString(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0)
    throw new AuthConfigError(name, 'must be a non-empty string');
  return value;
}

const nonEmptyString = (v: unknown): boolean => typeof v === 'string' && v.length > 0;

/**
 * Whether `value` is one item or a non-empty array of items, each accepted by `item` (by
 * default: a non-empty string). The shape of `audience`, `issuer` and `authorize`'s lists.
 */
export function isOneOrMore(
  value: unknown,
  item: (v: unknown) => boolean = nonEmptyString,
): boolean {
  const values = Array.isArray(value) ? (value as unknown[]) : [value];
  return values.length > 0 && values.every(item);
}

/** true or false; `fallback` when left out. */
export function bool(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new AuthConfigError(name, 'must be true or false');
  return value;
}

/** An options object (not null, not an array); `{}` when left out. */
export function plainObject(name: string, value: unknown): Record<string, unknown> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new AuthConfigError(name, 'must be an object');
  return value as Record<string, unknown>;
}

/** Lone UTF-16 surrogates: such a string has no UTF-8 form, so it cannot name a user or a Redis key. */
export function isWellFormed(value: string): boolean {
  return !/[\uD800-\uDFFF]/u.test(value);
}

/**
 * A Redis key prefix: a string without braces (they would break Cluster hash tags) or spaces, and
 * well-formed: two prefixes that differ only in a lone surrogate would be one in UTF-8, and so
 * share their keys.
 */
export function keyPrefixOption(value: unknown): string {
  if (typeof value !== 'string' || /[{}\s]/.test(value) || !isWellFormed(value))
    throw new AuthConfigError(
      'keyPrefix',
      'must be a well-formed string without braces or spaces (braces would break Cluster hash tags)',
    );
  return value;
}

/** The first key of `value` that is not in `known`, or undefined when there is none. */
export function strayKey(value: object, known: readonly string[]): string | undefined {
  for (const key of Object.keys(value)) if (!known.includes(key)) return key;
  return undefined;
}

/** Refuses keys of `value` that are not in `known` (a typo is an error, not a silent default). */
export function onlyKnown(
  name: string,
  value: object,
  known: Iterable<string>,
  what = 'an option',
): void {
  const list = [...known];
  const key = strayKey(value, list);
  if (key !== undefined) {
    throw new AuthConfigError(
      name === '' ? key : `${name}.${key}`,
      `is not ${what}; known: ${list.join(', ')}`,
    );
  }
}

/** A name as `misspelt` compares it: letter case, `_` and `-` ignored. */
const folded = (name: string): string => name.toLowerCase().replace(/[_-]/g, '');

/** Edit distance (a swap of two neighbours counts one), or `limit + 1` once it passes `limit`. */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let before: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, before[j - 2]! + 1);
      row.push(best);
    }
    if (Math.min(...row) > limit) return limit + 1;
    [before, previous] = [previous, row];
  }
  return previous[b.length]!;
}

/**
 * The known name that `key` most likely misspells: the same but for letter case, `_` or `-`
 * (`queryTimeout` for `query_timeout`), or one edit away (two for names of 7 letters or more);
 * undefined when `key` is known or no name is that close.
 */
export function misspelt(key: string, known: readonly string[]): string | undefined {
  if (known.includes(key)) return undefined;
  const given = folded(key);
  const limit = given.length >= 7 ? 2 : 1;
  let meant: string | undefined;
  let nearest = limit + 1;
  for (const name of known) {
    const distance = editDistance(given, folded(name), limit);
    if (distance < nearest) [meant, nearest] = [name, distance];
  }
  return meant;
}

/**
 * Refuses the keys of `value` that misspell a name of `known`, or are another library's name for
 * one (`aliases`: `url` for pg's `connectionString`): for options handed on to a library (pg,
 * ioredis) that ignores a name it does not know, so that `pasword` or `sll` is not a connection
 * without its password or its TLS. A name far from every known one passes: it may be one of that
 * library's newer options.
 */
export function noMisspelt(
  name: string,
  value: object,
  known: readonly string[],
  what: string,
  aliases: Readonly<Record<string, string>> = {},
): void {
  for (const key of Object.keys(value)) {
    const meant = known.includes(key)
      ? undefined
      : Object.hasOwn(aliases, key)
        ? aliases[key]
        : misspelt(key, known);
    if (meant !== undefined)
      throw new AuthConfigError(
        `${name}.${key}`,
        `is not ${what}, which would ignore it: did you mean ${meant}?`,
      );
  }
}

/**
 * A helper's per-call options: undefined, or an object with only `known` keys. A misspelt one
 * (`lifetme`) is a TypeError naming it, not a silently ignored setting: an app bug, not a request
 * error, and not an AuthConfigError, which is thrown at start-up only.
 */
export function helperOptions(helper: string, options: unknown, known: readonly string[]): void {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw new TypeError(`koa-jwt-redis: the options of ${helper}() must be an object`);
  const key = strayKey(options, known);
  if (key !== undefined) {
    throw new TypeError(
      `koa-jwt-redis: ${JSON.stringify(key)} is not an option of ${helper}(); known: ${known.join(', ')}`,
    );
  }
}

/** The keys of `value` whose value is not undefined: an option given as undefined is left out. */
export function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Emits a process warning: every warning of the library goes through here, so each starts with
 * the package's name and carries a stable `code` (`KOA_JWT_REDIS_…`) to filter on.
 */
export function warn(code: `KOA_JWT_REDIS_${string}`, message: string): void {
  process.emitWarning(`koa-jwt-redis: ${message}`, { code });
}

const warned = new Set<string>();

/**
 * `warn`, once per process and `code`: loud about an insecure or fragile setup (plain-http JWKS,
 * insecure cookies, the memory store in production), without flooding the log when many
 * instances are created.
 */
export function warnOnce(code: `KOA_JWT_REDIS_${string}`, message: string): void {
  if (warned.has(code)) return;
  warned.add(code);
  warn(code, message);
}
