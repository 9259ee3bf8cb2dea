import { createPublicKey, createSecretKey, KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { isOneOrMore, onlyKnown } from '../config/validate.js';
import { AuthConfigError, AuthError, storeUnavailable, UnsupportedError } from '../errors.js';
import { keyMismatch } from '../keys/algorithms.js';
import { unreadableHint } from '../keys/key-ring.js';
import {
  type AuthUser,
  nonNumericTime,
  RESERVED_CLAIMS,
  TOKEN_TYP,
  withClaims,
} from '../tokens/claims.js';
import { forbiddenHeader } from '../tokens/jws-header.js';
import { redisStrategy } from './redis.js';
import type { StrategyContext, StrategyFactory, TokenReader, TokenStrategy } from './types.js';

/** The algorithms a koa-jwt app could have signed with; `none` is never among them. */
const LEGACY_ALGORITHMS = [
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
] as const;
export type LegacyAlgorithm = (typeof LEGACY_ALGORITHMS)[number];

/** Options of {@link koaJwtStrategy}. */
export interface KoaJwtStrategyOptions {
  /** The `secret` your koa-jwt middleware verified with (an HMAC secret, or a public key). */
  secret: string | Buffer | KeyObject;
  /**
   * The end of the migration window: from then on koa-jwt tokens are refused (401
   * `token_expired`), whatever their own `exp` — including tokens that have none.
   */
  until: Date;
  /**
   * koa-jwt's `algorithms`, if you set them. @default every algorithm the key verifies, as
   * jsonwebtoken 9 (koa-jwt's) takes them: HS256/384/512 for a secret, RS* and PS* for an RSA
   * key, the curve's ES* for an EC key
   */
  algorithms?: LegacyAlgorithm[] | undefined;
  /** koa-jwt's `issuer`, when it checked one. */
  issuer?: string | string[] | undefined;
  /** koa-jwt's `audience`, when it checked one. */
  audience?: string | RegExp | (string | RegExp)[] | undefined;
  /**
   * The user id of a legacy payload, which becomes `ctx.state.user.sub`.
   * @default payload.sub ?? payload.id ?? payload.userId ?? payload.user_id
   */
  subject?: ((payload: Record<string, unknown>) => string | number | undefined) | undefined;
  /**
   * koa-jwt's `isRevoked(ctx, payload, token)`, minus ctx: true refuses the token (401
   * `token_revoked`); a throw or a rejection answers 503 `store_unavailable`, as a store failure.
   */
  isRevoked?: ((payload: Record<string, unknown>) => boolean | Promise<boolean>) | undefined;
  /**
   * Reads the library's own tokens, tried first; a factory is given the context bound to the
   * `redis` strategy's tokens. @default the `redis` strategy on the instance's keys and store
   */
  primary?: TokenReader | StrategyFactory | undefined;
}

const defaultSubject = (p: Record<string, unknown>): unknown =>
  p.sub ?? p.id ?? p.userId ?? p.user_id;

function headerTyp(token: string): unknown {
  const dot = token.indexOf('.');
  if (dot <= 0 || dot > 2048) return undefined;
  try {
    const header = JSON.parse(Buffer.from(token.slice(0, dot), 'base64url').toString('utf8')) as {
      typ?: unknown;
    };
    return header !== null && typeof header === 'object' ? header.typ : undefined;
  } catch {
    return undefined;
  }
}

/** The time claims of a koa-jwt token: numbers, or the token is refused (SECURITY.md). */
const LEGACY_TIME_CLAIMS = ['iat', 'nbf', 'exp'] as const;

/**
 * The legacy secret as jsonwebtoken reads it, as a KeyObject to check the algorithms against: a
 * string or a Buffer that parses as a PEM key is that key (a private one verifies as its public
 * half), anything else an HMAC secret. `verifyWith` is what to verify with: the secret as given,
 * except a private KeyObject, which jsonwebtoken refuses for every token, as its public half.
 */
function legacyKey(secret: string | Buffer | KeyObject): {
  key: KeyObject;
  verifyWith: string | Buffer | KeyObject;
} {
  if (secret instanceof KeyObject) {
    const key = secret.type === 'private' ? createPublicKey(secret) : secret;
    return { key, verifyWith: key };
  }
  try {
    return { key: createPublicKey(secret), verifyWith: secret };
  } catch (cause) {
    // A PEM that does not parse would verify as an HMAC secret: anyone holding the public key
    // could then sign HS256 tokens this strategy accepts. jsonwebtoken would take it; not here.
    if (Buffer.from(secret).includes('-----BEGIN'))
      throw new AuthConfigError(
        'koaJwtStrategy.secret',
        `looks like a PEM key (-----BEGIN) but could not be read as one${unreadableHint(secret)}; as an HMAC secret, anyone holding the public key could sign tokens`,
        { cause },
      );
    return { key: createSecretKey(Buffer.from(secret)), verifyWith: secret };
  }
}

/**
 * A non-empty string or a non-empty list of them (for `audience`, RegExps too, as koa-jwt took);
 * undefined when left out.
 */
function claimList(name: 'issuer' | 'audience', value: unknown): void {
  if (value === undefined) return;
  const ok = (v: unknown) =>
    (typeof v === 'string' && v.length > 0) || (name === 'audience' && v instanceof RegExp);
  if (!isOneOrMore(value, ok))
    throw new AuthConfigError(
      `koaJwtStrategy.${name}`,
      `must be the ${name} your koa-jwt middleware checked: a non-empty string${name === 'audience' ? ' or RegExp' : ''}, or a non-empty list of them (leave it out if it checked none)`,
    );
}

/**
 * `isRevoked`'s answer. A throw (its denylist's database down) is not a verdict on the token: it
 * answers 503 `store_unavailable`, as a session store that cannot answer does, so clients retry
 * instead of logging the user out (koa-jwt answered 401).
 */
async function revoked(
  isRevoked: (payload: Record<string, unknown>) => boolean | Promise<boolean>,
  payload: Record<string, unknown>,
): Promise<boolean> {
  try {
    return Boolean(await isRevoked(payload));
  } catch (cause) {
    throw storeUnavailable(cause);
  }
}

/** The options of koaJwtStrategy(): any other name is a typo, refused. */
const KOA_JWT_OPTION_NAMES = [
  'secret',
  'until',
  'algorithms',
  'issuer',
  'audience',
  'subject',
  'isRevoked',
  'primary',
] as const satisfies readonly (keyof KoaJwtStrategyOptions)[];

/**
 * A read-only strategy for a migration from koa-jwt: it accepts the tokens your koa-jwt
 * middleware accepted (same secret, same algorithms) until `until`, and the library's own
 * access tokens always; it never issues a token. Register it and name it on the middlewares of
 * your app routes; logins, refreshes and `auth.routes()` keep the default strategy, so every new
 * login gets the new tokens.
 * @example
 * auth.strategies.register('koa-jwt', koaJwtStrategy({ secret: process.env.OLD_JWT_SECRET!, until: new Date('2027-03-01') }));
 * router.get('/me', auth.requireAuth({ strategy: 'koa-jwt' }), (ctx) => { ctx.body = ctx.state.user; });
 */
export function koaJwtStrategy(options: KoaJwtStrategyOptions): StrategyFactory {
  if (options === null || typeof options !== 'object')
    throw new AuthConfigError('koaJwtStrategy', 'needs { secret, until }');
  // strategies.register('koa-jwt', koaJwtStrategy): the factory itself, called with the context.
  if ('tokens' in options && 'store' in options && 'events' in options)
    throw new AuthConfigError(
      'koaJwtStrategy',
      "was registered itself: register what it returns, koaJwtStrategy({ secret, until }), e.g. auth.strategies.register('koa-jwt', koaJwtStrategy({ secret, until }))",
    );
  // A misspelt `isRevoked` would accept every legacy token until the window ends.
  onlyKnown('koaJwtStrategy', options, KOA_JWT_OPTION_NAMES);
  const { secret, until, issuer, audience, isRevoked } = options;
  // Any length: this only verifies, and only until `until`, what koa-jwt verified with the same
  // secret, which it never measured; the library's own secrets are held to 32 bytes.
  if (
    !(typeof secret === 'string' && secret.length > 0) &&
    !(Buffer.isBuffer(secret) && secret.length > 0) &&
    !(secret instanceof KeyObject)
  )
    throw new AuthConfigError(
      'koaJwtStrategy.secret',
      'must be the secret (or public key) your koa-jwt middleware used',
    );
  if (!(until instanceof Date) || Number.isNaN(until.getTime()))
    throw new AuthConfigError(
      'koaJwtStrategy.until',
      'must be a Date: the end of the migration window, after which koa-jwt tokens are refused',
    );
  // An algorithm the key cannot verify would refuse every old token at run time, with a 401. The
  // key ring's rule, without its sizes: koa-jwt verified with secrets and RSA keys of any size.
  const key = legacyKey(secret);
  const verifiable = (algorithm: LegacyAlgorithm) =>
    keyMismatch(algorithm, key.key, { sizes: false });
  // Left out, as koa-jwt left it: every algorithm the key verifies, as jsonwebtoken 9 defaults
  // (HS256/384/512 for a secret, RS* and PS* for RSA, an EC key's curve's ES*).
  const algorithms =
    options.algorithms ?? LEGACY_ALGORITHMS.filter((a) => verifiable(a) === undefined);
  if (
    !Array.isArray(algorithms) ||
    algorithms.length === 0 ||
    !algorithms.every((a) => (LEGACY_ALGORITHMS as readonly string[]).includes(a))
  )
    throw new AuthConfigError(
      'koaJwtStrategy.algorithms',
      options.algorithms === undefined
        ? `the key verifies none of ${LEGACY_ALGORITHMS.join(', ')}, which koa-jwt's jsonwebtoken knows`
        : `must list algorithms from ${LEGACY_ALGORITHMS.join(', ')}`,
    );
  for (const algorithm of algorithms) {
    const problem = verifiable(algorithm);
    if (problem !== undefined)
      throw new AuthConfigError(
        'koaJwtStrategy.algorithms',
        `${problem}: no old token signed with ${algorithm} could be verified`,
      );
  }
  claimList('issuer', issuer);
  claimList('audience', audience);
  const subject = options.subject ?? defaultSubject;
  if (typeof subject !== 'function')
    throw new AuthConfigError('koaJwtStrategy.subject', 'must be a function (payload) => id');
  if (isRevoked !== undefined && typeof isRevoked !== 'function')
    throw new AuthConfigError(
      'koaJwtStrategy.isRevoked',
      'must be a function (payload) => boolean',
    );
  // koa-jwt's own (ctx, decodedToken, token), pasted over: it would be handed the payload as ctx
  // and undefined for the rest, and a check of the token would let every revoked one through.
  if (isRevoked !== undefined && isRevoked.length >= 2)
    throw new AuthConfigError(
      'koaJwtStrategy.isRevoked',
      `takes the token's payload alone, (payload) => boolean, not koa-jwt's (ctx, decodedToken, token): it has ${isRevoked.length} parameters`,
    );
  const { primary: primaryOption = redisStrategy } = options;
  if (
    typeof primaryOption !== 'function' &&
    (primaryOption === null ||
      typeof primaryOption !== 'object' ||
      typeof (primaryOption as Partial<TokenReader>).readToken !== 'function')
  )
    throw new AuthConfigError(
      'koaJwtStrategy.primary',
      'must be a strategy (with readToken) or a strategy factory (context) => strategy',
    );
  const verifyOptions: jwt.VerifyOptions = {
    algorithms: [...algorithms],
    ...(issuer !== undefined ? { issuer: issuer as string | [string, ...string[]] } : {}),
    ...(audience !== undefined ? { audience: audience as jwt.VerifyOptions['audience'] } : {}),
  };
  const untilMs = until.getTime();

  async function readLegacy(token: string): Promise<AuthUser> {
    if (Date.now() >= untilMs)
      throw new AuthError(
        'token_expired',
        'Tokens of the previous login system are no longer accepted; log in again.',
      );
    let payload: Record<string, unknown>;
    try {
      const { header, payload: decoded } = jwt.verify(token, key.verifyWith, {
        ...verifyOptions,
        complete: true,
      });
      if (decoded === null || typeof decoded !== 'object') throw new Error('not a JSON object');
      payload = decoded as Record<string, unknown>;
      // After the signature, as for the library's own tokens; koa-jwt let these through, but no
      // token a koa-jwt app signed with jsonwebtoken's defaults carries them.
      const foreign = forbiddenHeader(header as unknown as Record<string, unknown>);
      if (foreign !== undefined) throw new Error(`the ${foreign} header is not accepted`);
      const time = nonNumericTime(payload, LEGACY_TIME_CLAIMS);
      if (time !== undefined) throw new Error(`${time} is not a number`);
    } catch (cause) {
      if (cause instanceof jwt.TokenExpiredError)
        throw new AuthError('token_expired', 'The token has expired.', { cause });
      throw new AuthError('token_invalid', 'The token signature or claims are invalid.', { cause });
    }
    const id = subject(payload);
    if ((typeof id !== 'string' || id.length === 0) && typeof id !== 'number')
      throw new AuthError('token_invalid', 'The token names no user.');
    if (isRevoked && (await revoked(isRevoked, payload)))
      throw new AuthError('token_revoked', 'The token has been revoked; log in again.');
    // koa-jwt handed the payload over as it was; keep its claims, with the fields requireAuth promises.
    const user: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(payload))
      if (!RESERVED_CLAIMS.has(name) || name === 'iss' || name === 'aud') user[name] = value;
    const iat = typeof payload.iat === 'number' ? payload.iat : Math.floor(Date.now() / 1000);
    const exp = typeof payload.exp === 'number' ? payload.exp : Math.floor(untilMs / 1000);
    return withClaims(user, { sub: String(id), token_use: 'access', iat, exp }) as AuthUser;
  }

  return (context: StrategyContext): TokenStrategy => {
    // Tokens carry the name of the strategy that issued them: read the default `redis` ones.
    const primary: TokenReader =
      typeof primaryOption === 'function'
        ? primaryOption({ ...context, tokens: context.tokens.forStrategy('redis') })
        : primaryOption;
    const refuse = (helper: string) =>
      new UnsupportedError(
        'koa-jwt',
        helper,
        'it only reads the tokens of a koa-jwt app during a migration; new tokens come from the default strategy',
      );
    return {
      readToken(token, read) {
        // The library's own tokens say what they are in the header; koa-jwt's do not.
        const typ = headerTyp(token);
        if (typ === TOKEN_TYP.access || typ === TOKEN_TYP.refresh)
          return primary.readToken(token, read);
        return readLegacy(token);
      },
      writeToken() {
        throw refuse('writeToken');
      },
      async generateTokens() {
        throw refuse('generateTokens');
      },
    };
  };
}
