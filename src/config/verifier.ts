import { AuthConfigError } from '../errors.js';
import { ALGORITHMS, type Algorithm, isAlgorithm, isSymmetric } from '../keys/algorithms.js';
import { type ResolvedOptions, resolveOptions } from './options.js';
import { onlyKnown, warnOnce, wholeNumber } from './validate.js';

/** Options of {@link createVerifier}. Everything is validated once, when the verifier is created. */
export interface VerifierOptions {
  /** Where the auth service publishes its keys, e.g. `https://auth.example.com/.well-known/jwks.json`. */
  jwksUri: string | URL;
  /** `iss` every token must carry (the auth service's `issuer`). */
  issuer?: string | undefined;
  /** `aud` a token must name (one of the auth service's `audience`). */
  audience?: string | string[] | undefined;
  /** Clock skew tolerated for `exp`, `nbf` and `iat`, in seconds. @default 5 */
  leeway?: number | undefined;
  /** Algorithms accepted from the JWKS; keys with any other `alg` are ignored. @default every asymmetric one */
  algorithms?: Algorithm[] | undefined;
  /** Seconds after which known keys are refreshed in the background (retired keys disappear). @default 600 */
  cacheMaxAge?: number | undefined;
  /**
   * Least seconds between two JWKS fetches, whatever triggers them (an unknown `kid`, stale keys).
   * This is what keeps a flood of made-up `kid`s from hammering the auth service. @default 30
   */
  cooldown?: number | undefined;
  /** Longest wait for one JWKS fetch, in ms; on timeout the last good keys stay. @default 2000 */
  timeout?: number | undefined;
  /** `realm` parameter of `WWW-Authenticate`. */
  realm?: string | undefined;
  /**
   * The strategies (`stg` claim) whose access tokens to accept, e.g. `['redis']`. Left out, any
   * strategy's: a token a custom strategy of the auth service signed with the same keys passes,
   * though the service's own `requireAuth()` (bound to its default strategy) refuses it.
   */
  strategies?: string[] | undefined;
}

export const VERIFIER_DEFAULTS = {
  leeway: 5,
  cacheMaxAge: 600,
  cooldown: 30,
  timeout: 2000,
} as const;

/** The verifier options as validated once by createVerifier; durations in ms. */
export interface ResolvedVerifierOptions {
  uri: URL;
  algorithms: ReadonlySet<Algorithm>;
  cacheMaxAgeMs: number;
  cooldownMs: number;
  timeoutMs: number;
  /** The `stg` values accepted; undefined for any. */
  strategies: ReadonlySet<string> | undefined;
  /** issuer, audience, leeway and realm, checked exactly as createAuth checks them. */
  shared: ResolvedOptions;
}

/** Every option of createVerifier; `satisfies` keeps this list complete. */
const KNOWN = {
  jwksUri: true,
  issuer: true,
  audience: true,
  leeway: true,
  algorithms: true,
  cacheMaxAge: true,
  cooldown: true,
  timeout: true,
  realm: true,
  strategies: true,
} as const satisfies Record<keyof VerifierOptions, true>;

/**
 * A host that never leaves the machine, as the URL parser normalises it: localhost, all of
 * 127.0.0.0/8 (`127.1`, `0x7f000001` read as 127.0.0.1), ::1 and IPv4-mapped 127.x
 * (`[::ffff:127.0.0.2]` reads as `[::ffff:7f00:2]`).
 */
function isLoopback(hostname: string): boolean {
  return (
    hostname === 'localhost' ||
    hostname === 'localhost.' ||
    hostname === '[::1]' ||
    /^127(\.\d{1,3}){3}$/.test(hostname) ||
    /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(hostname)
  );
}

function jwksUrl(value: unknown): URL {
  let url: URL;
  try {
    url = new URL(value as string);
  } catch {
    throw new AuthConfigError(
      'jwksUri',
      'must be an absolute http(s) URL, e.g. https://auth.example.com/.well-known/jwks.json',
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new AuthConfigError('jwksUri', 'must be an http: or https: URL');
  if (url.username || url.password)
    throw new AuthConfigError('jwksUri', 'must not carry credentials');
  if (url.protocol === 'http:' && !isLoopback(url.hostname)) {
    warnOnce(
      'KOA_JWT_REDIS_INSECURE_JWKS',
      '`jwksUri` is plain http: anyone on the network path can substitute keys and forge tokens. Use https.',
    );
  }
  return url;
}

/** Validates every option of createVerifier; called once, by the constructor. */
export function resolveVerifierOptions(options: VerifierOptions): ResolvedVerifierOptions {
  if (options === null || typeof options !== 'object') {
    throw new AuthConfigError(
      'options',
      'createVerifier needs an options object, e.g. createVerifier({ jwksUri, issuer })',
    );
  }
  onlyKnown('', options, Object.keys(KNOWN), 'a verifier option');
  if (options.jwksUri === undefined)
    throw new AuthConfigError('jwksUri', 'is required: the URL of the auth service’s JWKS');
  const uri = jwksUrl(options.jwksUri);
  // The shared options (issuer, audience, leeway, realm) get the very checks createAuth gives them.
  const shared = resolveOptions({
    issuer: options.issuer,
    audience: options.audience,
    leeway: options.leeway,
    realm: options.realm,
    checkSession: false,
  });
  const asymmetric = ALGORITHMS.filter((alg) => !isSymmetric(alg));
  const algorithms = options.algorithms ?? asymmetric;
  if (
    !Array.isArray(algorithms) ||
    algorithms.length === 0 ||
    !algorithms.every((alg) => isAlgorithm(alg) && !isSymmetric(alg))
  ) {
    throw new AuthConfigError(
      'algorithms',
      `must be a non-empty array of ${asymmetric.join(', ')} (HS keys are never published)`,
    );
  }
  const { strategies } = options;
  if (
    strategies !== undefined &&
    (!Array.isArray(strategies) ||
      strategies.length === 0 ||
      !strategies.every((name) => typeof name === 'string' && name.length > 0))
  )
    throw new AuthConfigError(
      'strategies',
      "must be a non-empty array of strategy names (the tokens' `stg`), e.g. ['redis']",
    );
  const seconds = (name: 'cacheMaxAge' | 'cooldown', max: number) =>
    wholeNumber(name, options[name] ?? VERIFIER_DEFAULTS[name], 1, max) * 1000;
  return {
    uri,
    algorithms: new Set(algorithms),
    cacheMaxAgeMs: seconds('cacheMaxAge', 86_400),
    cooldownMs: seconds('cooldown', 3600),
    timeoutMs: wholeNumber('timeout', options.timeout ?? VERIFIER_DEFAULTS.timeout, 10, 60_000),
    strategies: strategies && new Set(strategies),
    shared,
  };
}
