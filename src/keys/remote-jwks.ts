import type { createRemoteJWKSet, FetchImplementation } from 'jose';
import type { Algorithm } from './algorithms.js';
import { importPublicJwk, loadJose } from './jwk.js';
import { createVerifyRing, type KeyRing, type RingKey } from './key-ring.js';

/** Bigger than any sane JWKS; a larger answer is refused while it is read, before it is parsed. */
export const MAX_JWKS_BYTES = 256 * 1024;
/** Keys read from one JWKS at most; a key ring holds a handful. */
export const MAX_JWKS_KEYS = 100;

export interface RemoteKeySetOptions {
  uri: URL;
  /** Longest wait for one fetch, body included, in ms. */
  timeout: number;
  /** Least time between two fetches, in ms, whatever triggers them. */
  cooldown: number;
  /** Age after which the next request refreshes the keys in the background, in ms. */
  maxAge: number;
  algorithms: ReadonlySet<Algorithm>;
  /** Called with each new ring; returns what the verifier will use until the next one. */
  onKeys(ring: KeyRing, report: JwksRefresh): void;
  /**
   * Called with each failed load; `unreachable` when the host did not answer it (see
   * {@link unreachable}): an outage that may pass, not a JWKS that is wrong.
   */
  onError(error: Error, unreachable: boolean): void;
}

/** A JWKS answer other than 200, with its status (how a failed load is classed). */
class JwksStatusError extends Error {
  constructor(readonly status: number) {
    super(`the JWKS answered HTTP ${status}`);
  }
}

/** What one successful fetch brought. */
export interface JwksRefresh {
  kids: string[];
  /** Keys in the set that were not taken, and why (private material, bad alg, RSA too small, …). */
  rejected: { kid?: string | undefined; reason: string }[];
}

async function readLimited(response: Response, limit: number): Promise<Uint8Array> {
  const tooLarge = () => new Error(`the JWKS is larger than ${limit} bytes`);
  const declared = Number(response.headers.get('content-length'));
  if (declared > limit) {
    await response.body?.cancel();
    throw tooLarge();
  }
  if (!response.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  // Leaving the loop early (too large, or the timeout's abort) cancels the body.
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * The fetch jose's remote key set runs (its `customFetch` hook): jose sets the URL, headers,
 * `redirect: 'manual'` and the timeout signal, which covers the body too; this adds the size
 * limit, counted while the body streams in (a missing or false Content-Length changes nothing),
 * and names the HTTP status of a refusal.
 */
export function limitedFetch(limit: number): FetchImplementation {
  return async (url, options) => {
    const response = await fetch(url, options);
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new JwksStatusError(response.status);
    }
    const body = await readLimited(response, limit);
    return new Response(body, { status: 200, headers: { 'content-type': 'application/json' } });
  };
}

/**
 * Validates a JWK Set (as jose parsed it) into ring keys, one key at a time: each refused key is
 * reported with its reason rather than sinking the set. Throws when nothing usable is in it.
 */
export async function importJwks(
  body: unknown,
  algorithms: ReadonlySet<Algorithm>,
): Promise<{ keys: RingKey[]; report: JwksRefresh }> {
  const list = (body as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(list)) throw new Error('the JWKS has no "keys" array');
  if (list.length > MAX_JWKS_KEYS) throw new Error(`the JWKS has more than ${MAX_JWKS_KEYS} keys`);
  const keys: RingKey[] = [];
  const report: JwksRefresh = { kids: [], rejected: [] };
  const seen = new Set<string>();
  for (const [index, jwk] of list.entries()) {
    const result = await importPublicJwk(jwk, algorithms);
    const named = (jwk as { kid?: unknown } | null)?.kid;
    const label = typeof named === 'string' ? named.slice(0, 256) : undefined;
    if ('skip' in result) continue;
    if ('error' in result) {
      report.rejected.push({ kid: label, reason: `key ${index} ${result.error}` });
      continue;
    }
    const kid = result.kid ?? (await (await loadJose()).calculateJwkThumbprint(result.jwk));
    if (seen.has(kid)) {
      report.rejected.push({ kid, reason: `key ${index} repeats the kid of an earlier key` });
      continue;
    }
    seen.add(kid);
    keys.push({
      kid,
      algorithm: result.algorithm,
      signingKey: undefined,
      verifyKey: result.key,
      verifyOnly: true,
    });
    report.kids.push(kid);
  }
  if (keys.length === 0)
    throw new Error(
      `the JWKS has no usable signing key${report.rejected.length ? ` (${report.rejected.map((r) => r.reason).join('; ')})` : ''}`,
    );
  return { keys, report };
}

type JoseRemoteSet = ReturnType<typeof createRemoteJWKSet>;

/**
 * Public keys fetched from a JWKS URI. jose's remote key set does the fetching: the timeout, the
 * sharing of one fetch by concurrent callers, the 200-only and no-redirect rules, JSON parsing
 * and the JWK Set shape; our fetch hook adds the size limit.
 *
 * The schedule stays here, because jose's counts from its last successful load: its cooldown
 * would let a flood of unknown `kid`s refetch back to back while the JWKS host is down, and its
 * cache age would call a set fresh although every key in it was refused. Here fetches are
 * rate-limited as a whole — at most one per `cooldown` from the last *attempt*, however many
 * unknown `kid`s arrive — and a failed or unusable fetch keeps the last good keys. The keys
 * themselves become a ring of Node KeyObjects, checked one by one with a report of the refused
 * ones, because the verification hot path is jsonwebtoken / node:crypto, not jose's async
 * jwtVerify. There are no timers: refreshes are driven by requests.
 */
export class RemoteKeySet {
  private loadedAt = Number.NEGATIVE_INFINITY;
  private attemptedAt = Number.NEGATIVE_INFINITY;
  private inflight: Promise<boolean> | undefined;
  private set: JoseRemoteSet | undefined;
  /** Number of fetches started, for tests and metrics. */
  fetches = 0;

  constructor(private readonly options: RemoteKeySetOptions) {}

  /** jose's remote set, made on the first fetch (jose is loaded lazily, see loadJose). */
  private async joseSet(): Promise<JoseRemoteSet> {
    if (this.set) return this.set;
    const { createRemoteJWKSet, customFetch } = await loadJose();
    this.set = createRemoteJWKSet(this.options.uri, {
      timeoutDuration: this.options.timeout,
      headers: { accept: 'application/jwk-set+json, application/json' },
      [customFetch]: limitedFetch(MAX_JWKS_BYTES),
    });
    return this.set;
  }

  /** True when the keys are older than `maxAge` (or were never loaded). */
  get stale(): boolean {
    return Date.now() - this.loadedAt > this.options.maxAge;
  }

  /**
   * Fetches the set unless a fetch is running (then waits for it) or one started less than
   * `cooldown` ago (then answers false at once). Never rejects; true when new keys were loaded.
   */
  refresh(): Promise<boolean> {
    if (this.inflight) return this.inflight;
    const now = Date.now();
    if (now - this.attemptedAt < this.options.cooldown) return Promise.resolve(false);
    this.attemptedAt = now;
    this.fetches++;
    this.inflight = this.load().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async load(): Promise<boolean> {
    try {
      const set = await this.joseSet();
      await set.reload();
      const { keys, report } = await importJwks(set.jwks(), this.options.algorithms);
      this.options.onKeys(createVerifyRing(keys), report);
      this.loadedAt = Date.now();
      return true;
    } catch (cause) {
      this.options.onError(
        new Error(
          `koa-jwt-redis: could not load the JWKS from ${this.options.uri.origin}${this.options.uri.pathname}: ${this.describe(cause)}; keeping the last good keys`,
          { cause },
        ),
        unreachable(cause),
      );
      return false;
    }
  }

  private describe(cause: unknown): string {
    if (!(cause instanceof Error)) return String(cause);
    if (timedOut(cause)) return `no answer within ${this.options.timeout} ms`;
    // jose's errors by their stable codes.
    const code = joseCode(cause);
    if (code === 'ERR_JWKS_INVALID')
      return 'the JWKS is not a JWK Set (an object with a "keys" array of JSON objects)';
    if (code === 'ERR_JOSE_GENERIC' && cause.cause instanceof SyntaxError)
      return 'the JWKS is not valid JSON';
    // fetch() reports network failures as "fetch failed" with the system error as its cause.
    const system = (cause.cause as { code?: unknown } | undefined)?.code;
    return typeof system === 'string' ? `${cause.message} (${system})` : cause.message;
  }
}

/** A jose error's stable code (its classes live in the lazily loaded module). */
const joseCode = (cause: Error): unknown => (cause as { code?: unknown }).code;

/** Whether a load failed for want of an answer within the timeout (jose's, or the signal's). */
const timedOut = (cause: Error): boolean =>
  joseCode(cause) === 'ERR_JWKS_TIMEOUT' || cause.name === 'TimeoutError';

/**
 * System and undici error codes of a connection that failed on the way (refused, reset, timed
 * out, no route, a DNS server that did not answer): an outage that may pass. Not among them: a
 * name that does not exist (ENOTFOUND, most often a typo) and TLS certificate errors, which a
 * retry does not mend.
 */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
]);

/**
 * Whether a failed load means the host did not answer (an outage that may pass) rather than a
 * JWKS that is wrong: no answer in time, a connection that failed on the way (fetch's "fetch
 * failed" with the system or undici error as its cause, see TRANSIENT_CODES), or a status that
 * says "later" (5xx, 408, 429). A 404, a body that is no JWK Set, one without a usable key, a
 * host name that does not resolve and a certificate that does not verify are not.
 */
function unreachable(cause: unknown): boolean {
  if (!(cause instanceof Error)) return false;
  if (timedOut(cause)) return true;
  if (cause instanceof JwksStatusError)
    return cause.status >= 500 || cause.status === 408 || cause.status === 429;
  const code = (cause.cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && (TRANSIENT_CODES.has(code) || code.startsWith('UND_ERR_'));
}
