import type { Algorithm } from './algorithms.js';
import { importPublicJwk } from './jwk.js';
import { createVerifyRing, jwkThumbprint, type KeyRing, type RingKey } from './key-ring.js';

/** Bigger than any sane JWKS; a larger answer is refused before it is parsed. */
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
  onError(error: Error): void;
}

/** What one successful fetch brought. */
export interface JwksRefresh {
  kids: string[];
  /** Keys in the set that were not taken, and why (private material, bad alg, RSA too small, …). */
  rejected: { kid?: string; reason: string }[];
}

async function readLimited(response: Response, limit: number): Promise<string> {
  const declared = Number(response.headers.get('content-length'));
  if (declared > limit) throw new Error(`the JWKS is larger than ${limit} bytes`);
  if (!response.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > limit) throw new Error(`the JWKS is larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Parses and validates a JWKS body into ring keys; throws when nothing usable is in it. */
export function parseJwks(
  text: string,
  algorithms: ReadonlySet<Algorithm>,
): { keys: RingKey[]; report: JwksRefresh } {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error('the JWKS is not valid JSON');
  }
  const list = (body as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(list)) throw new Error('the JWKS has no "keys" array');
  if (list.length > MAX_JWKS_KEYS) throw new Error(`the JWKS has more than ${MAX_JWKS_KEYS} keys`);
  const keys: RingKey[] = [];
  const report: JwksRefresh = { kids: [], rejected: [] };
  const seen = new Set<string>();
  for (const [index, jwk] of list.entries()) {
    const result = importPublicJwk(jwk, algorithms);
    const named = (jwk as { kid?: unknown } | null)?.kid;
    const label = typeof named === 'string' ? named.slice(0, 256) : undefined;
    if ('skip' in result) continue;
    if ('error' in result) {
      report.rejected.push({ kid: label, reason: `key ${index} ${result.error}` });
      continue;
    }
    const kid = result.kid ?? jwkThumbprint(result.key);
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

/**
 * Public keys fetched from a JWKS URI. Fetches are rate-limited as a whole: at most one per
 * `cooldown`, however many unknown `kid`s arrive, and concurrent callers share one fetch. A failed
 * or invalid fetch keeps the last good keys. There are no timers: refreshes are driven by requests.
 */
export class RemoteKeySet {
  private loadedAt = Number.NEGATIVE_INFINITY;
  private attemptedAt = Number.NEGATIVE_INFINITY;
  private inflight: Promise<boolean> | undefined;
  /** Number of fetches started, for tests and metrics. */
  fetches = 0;

  constructor(private readonly options: RemoteKeySetOptions) {}

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
      const response = await fetch(this.options.uri, {
        headers: { accept: 'application/jwk-set+json, application/json' },
        signal: AbortSignal.timeout(this.options.timeout),
      });
      if (!response.ok) {
        await response.body?.cancel();
        throw new Error(`the JWKS answered HTTP ${response.status}`);
      }
      const { keys, report } = parseJwks(
        await readLimited(response, MAX_JWKS_BYTES),
        this.options.algorithms,
      );
      this.options.onKeys(createVerifyRing(keys), report);
      this.loadedAt = Date.now();
      return true;
    } catch (cause) {
      this.options.onError(
        new Error(
          `koa-jwt-redis: could not load the JWKS from ${this.options.uri.origin}${this.options.uri.pathname}: ${this.describe(cause)}; keeping the last good keys`,
          { cause },
        ),
      );
      return false;
    }
  }

  private describe(cause: unknown): string {
    if (!(cause instanceof Error)) return String(cause);
    if (cause.name === 'TimeoutError') return `no answer within ${this.options.timeout} ms`;
    // fetch() reports network failures as "fetch failed" with the system error as its cause.
    const code = (cause.cause as { code?: unknown } | undefined)?.code;
    return typeof code === 'string' ? `${cause.message} (${code})` : cause.message;
  }
}
