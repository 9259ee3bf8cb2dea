import jwt from 'jsonwebtoken';
import { AuthError, UnknownKeyError } from '../errors.js';
import type { KeyRing, RingKey } from '../keys/key-ring.js';
import {
  isUserIdString,
  isWellFormed,
  type AccessTokenPayload,
  type RefreshTokenPayload,
  TOKEN_TYP,
  type TokenKind,
  nonNumericTime,
  withClaims,
} from './claims.js';
import { directSign, isDirect, signatureVerify } from './crypto-jws.js';
import { claimsError, encodedHeader, hmacSign, hmacVerify, isHmac } from './hmac-jws.js';
import { VerifyCache } from './verify-cache.js';
import { forbiddenHeader, knownHeader, parseHeader, rememberHeader } from './jws-header.js';
import { MAX_LIFETIME, type SignOverrides } from './sign-overrides.js';
import { isWholeNumber } from '../config/validate.js';

/** Longer than any token this library issues; anything bigger is rejected before parsing. */
export const MAX_TOKEN_LENGTH = 8192;

/**
 * A token just signed, as `sign` returns it, if verification would accept its length; else a
 * TypeError: large claims or headers are an app's mistake to be told of, before a session is
 * recorded for a token that nobody could use, refresh or log out with.
 */
function verifiable(token: string, exp: number): { token: string; exp: number } {
  if (token.length > MAX_TOKEN_LENGTH)
    throw new TypeError(
      `koa-jwt-redis: the signed token is ${token.length} characters, more than the ${MAX_TOKEN_LENGTH} that verification accepts: give it fewer or smaller claims or headers (userFields, claims, loadUser, headers)`,
    );
  return { token, exp };
}

const JWS_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export interface TokenServiceOptions {
  ring: KeyRing;
  accessTokenTtl: number;
  refreshTokenTtl: number;
  issuer: string | undefined;
  audience: string | string[] | undefined;
  leeway: number;
  /** Verified access tokens kept to skip re-verifying them; 0 disables the cache. */
  verifyCacheSize: number;
}

export const otherStrategy = () =>
  new AuthError('token_invalid', 'This token was issued for another strategy.');
/** The algorithms jsonwebtoken signs and verifies here: every one but DIRECT_ALGORITHMS. */
type JsonwebtokenAlgorithm = Exclude<jwt.Algorithm, 'none'>;
const byJsonwebtoken = (key: RingKey): key is RingKey & { algorithm: JsonwebtokenAlgorithm } =>
  !isDirect(key.algorithm);

type Payload<K extends TokenKind> = K extends 'access' ? AccessTokenPayload : RefreshTokenPayload;

const invalid = (message: string, cause?: unknown) =>
  new AuthError('token_invalid', message, { cause });

/** What jsonwebtoken's verify is given (see TokenService.verifyOptions). */
interface JsonwebtokenVerify {
  readonly algorithms: string[];
  readonly complete: true;
  readonly ignoreExpiration: true;
  readonly ignoreNotBefore: true;
}

/**
 * Signs and verifies access and refresh tokens. Keys are KeyObjects built once by the key ring,
 * so jsonwebtoken never re-parses a secret per call; every verification pins the algorithm to
 * the key the header names.
 */
export class TokenService {
  /**
   * The strategy this view of the service is bound to: every token it signs carries
   * `stg: strategy`, and it verifies only tokens that carry the same. Undefined for the
   * instance-wide service (and verifier-only services), which neither stamps nor checks it.
   */
  readonly strategy: string | undefined;
  readonly accessTokenTtl: number;
  readonly refreshTokenTtl: number;
  private readonly ring: KeyRing;
  private readonly issuer: string | undefined;
  private readonly audience: string | string[] | undefined;
  private readonly leeway: number;
  /**
   * @internal shared by the strategy-bound views. jsonwebtoken's options per kid, typed here
   * without jsonwebtoken's types: the published declarations must not need `@types/jsonwebtoken`.
   */
  readonly verifyOptions: Map<string, JsonwebtokenVerify>;
  /** @internal shared by the strategy-bound views */
  readonly accessCache: VerifyCache<AccessTokenPayload> | undefined;
  private readonly findKey: KeyRing['find'];
  /**
   * The signer's encoded headers per kind, when it signs without jsonwebtoken: an HMAC key, or
   * one of the algorithms node:crypto signs directly (crypto-jws.ts).
   */
  private readonly directHeaders: Record<TokenKind, string> | undefined;
  private readonly audiences: readonly string[] | undefined;

  constructor(
    private readonly options: TokenServiceOptions,
    strategy?: string,
    shared?: Pick<TokenService, 'accessCache' | 'verifyOptions'>,
  ) {
    this.strategy = strategy;
    this.ring = options.ring;
    this.accessTokenTtl = options.accessTokenTtl;
    this.refreshTokenTtl = options.refreshTokenTtl;
    this.issuer = options.issuer;
    this.audience = options.audience;
    this.leeway = options.leeway;
    this.findKey = (kid, alg) => this.ring.find(kid, alg);
    this.audiences =
      options.audience === undefined
        ? undefined
        : Array.isArray(options.audience)
          ? options.audience
          : [options.audience];
    // A verify-only ring (a verifier's, loaded from a JWKS) has no signer to ask for.
    const signer = options.ring.keys.some((key) => key.signingKey !== undefined)
      ? options.ring.signer
      : undefined;
    this.directHeaders =
      signer?.signingKey !== undefined && (isHmac(signer.algorithm) || isDirect(signer.algorithm))
        ? {
            access: encodedHeader(signer.algorithm, TOKEN_TYP.access, signer.kid),
            refresh: encodedHeader(signer.algorithm, TOKEN_TYP.refresh, signer.kid),
          }
        : undefined;
    if (shared !== undefined) {
      this.accessCache = shared.accessCache;
      this.verifyOptions = shared.verifyOptions;
      return;
    }
    this.accessCache =
      options.verifyCacheSize > 0 ? new VerifyCache(options.verifyCacheSize) : undefined;
    // One frozen options object per key, built once: nothing option-related happens per request.
    // jsonwebtoken checks the signature only; the claims are checked here as on every other
    // path (claimsError), in one order, so a token answers with the same code whatever signed it.
    this.verifyOptions = new Map(
      options.ring.keys.filter(byJsonwebtoken).map((key) => [
        key.kid,
        {
          algorithms: [key.algorithm],
          complete: true as const,
          ignoreExpiration: true,
          ignoreNotBefore: true,
        },
      ]),
    );
  }

  /**
   * The same keys, cache and options, bound to one strategy: tokens it signs carry `stg: name`
   * and it refuses every token that does not carry exactly that. The registry gives each
   * strategy factory its own bound view, so no strategy accepts another's tokens.
   */
  forStrategy(name: string): TokenService {
    return new TokenService(this.options, name, this);
  }

  /**
   * Signs a token of `kind` with the ring's signing key; `exp` and `iat` are set here. `notAfter`
   * (epoch seconds) caps `exp`, e.g. at the session's absolute end. `claims` is left as it is.
   * A token longer than verification accepts (8 KiB) is a TypeError, not a token.
   */
  sign(
    kind: TokenKind,
    claims: Record<string, unknown>,
    now = Date.now(),
    overrides?: SignOverrides,
    notAfter = Infinity,
  ): { token: string; exp: number } {
    return this.signPayload(kind, withClaims(claims, {}), now, overrides, notAfter);
  }

  /**
   * @internal Not part of the API (a strategy of your own calls {@link sign}, which copies).
   * {@link sign} for a payload its caller has just built and hands over: the registered
   * claims are added to it in place, after its own members, instead of to a copy. The library's
   * own payloads are object literals of a few shapes, so these are plain member stores; a copy
   * member by member (withClaims) is a keyed store to a new member each time, which V8 handles
   * on its slowest path (about 0.3 µs a token, in Node's own instruction counts under callgrind).
   */
  signPayload(
    kind: TokenKind,
    payload: Record<string, unknown>,
    now: number,
    overrides: SignOverrides | undefined,
    notAfter = Infinity,
  ): { token: string; exp: number } {
    const iat = Math.floor(now / 1000);
    const exp = Math.min(
      iat +
        (overrides?.lifetime ?? (kind === 'access' ? this.accessTokenTtl : this.refreshTokenTtl)),
      notAfter,
    );
    payload.token_use = kind;
    payload.iat = iat;
    payload.exp = exp;
    if (this.strategy !== undefined) payload.stg = this.strategy;
    if (this.issuer !== undefined) payload.iss = this.issuer;
    const audience = overrides?.audience ?? this.audience;
    if (audience !== undefined) payload.aud = audience;
    const { signer } = this.ring;
    const headers = this.directHeaders;
    if (headers !== undefined && isDirect(signer.algorithm)) {
      // jsonwebtoken cannot sign EdDSA and is no faster for the others: node:crypto signs them all.
      const header =
        overrides?.headers === undefined
          ? headers[kind]
          : encodedHeader(signer.algorithm, TOKEN_TYP[kind], signer.kid, overrides.headers);
      return verifiable(directSign(signer.algorithm, signer.signingKey!, header, payload), exp);
    }
    // The precomputed HMAC header serves every HMAC token but one with extra header parameters.
    if (headers !== undefined && overrides?.headers === undefined) {
      return verifiable(
        hmacSign(signer.algorithm, signer.signingKey!, headers[kind], payload),
        exp,
      );
    }
    const token = jwt.sign(payload, signer.signingKey!, {
      algorithm: signer.algorithm as JsonwebtokenAlgorithm,
      header: {
        ...overrides?.headers,
        alg: signer.algorithm,
        typ: TOKEN_TYP[kind],
        kid: signer.kid,
      },
    });
    return verifiable(token, exp);
  }

  /**
   * Signature, then registered claims, of a token whose header names an HMAC key or a key of an
   * algorithm node:crypto verifies directly: what jsonwebtoken checks with
   * `algorithms: [key.algorithm]`, without its per-call option work. Returns the decoded payload
   * (not necessarily an object: the caller checks).
   */
  private verifyDirect(token: string, key: RingKey, anyExpiry: boolean): unknown {
    const valid = isHmac(key.algorithm)
      ? hmacVerify(key.algorithm, key.verifyKey, token)
      : signatureVerify(key.algorithm, key.verifyKey, token);
    if (!valid) throw invalid('The token signature or claims are invalid.');
    let payload: unknown;
    try {
      const start = token.indexOf('.') + 1;
      payload = JSON.parse(
        Buffer.from(token.slice(start, token.indexOf('.', start)), 'base64url').toString('utf8'),
      );
    } catch {
      return undefined;
    }
    this.checkClaims(payload, anyExpiry);
    return payload;
  }

  /** The registered claims of a payload whose signature holds (not an object: left to the caller). */
  private checkClaims(payload: unknown, anyExpiry: boolean): void {
    if (payload === null || typeof payload !== 'object') return;
    const error = claimsError(
      // `exp` is still checked to be a finite number, in verify.
      anyExpiry
        ? { ...(payload as Record<string, unknown>), exp: undefined }
        : (payload as Record<string, unknown>),
      Math.floor(Date.now() / 1000),
      this.leeway,
      this.issuer,
      this.audiences,
    );
    if (error === 'expired') throw new AuthError('token_expired', 'The token has expired.');
    if (error === 'not_before') throw invalid('The token is not valid yet.');
    if (error !== undefined) throw invalid('The token signature or claims are invalid.');
  }

  /**
   * Verifies a token of the expected kind. Order matters: shape, then the key the header names,
   * then signature (jsonwebtoken, or node:crypto for HMAC and DIRECT_ALGORITHMS), then claims and
   * kind. Throws only AuthError.
   */
  verify<K extends TokenKind>(token: unknown, kind: K): Payload<K> {
    return this.check(token, kind, false);
  }

  /**
   * @internal Not part of the API: for `POST /logout` of `auth.routes()` only, so that a browser
   * whose access cookie has expired can still end its session. {@link verify} of an access token
   * with every check (signature, `typ`, `token_use`, `stg`, `iss`, `aud`, `sub`, `sid`) but the
   * expiry; never cached.
   */
  verifyAccessIgnoringExpiry(token: unknown): AccessTokenPayload {
    return this.check(token, 'access', true);
  }

  private check<K extends TokenKind>(token: unknown, kind: K, anyExpiry: boolean): Payload<K> {
    if (typeof token !== 'string') throw invalid('The token is not a string.');
    if (token.length === 0) throw invalid('The token is empty.');
    // Only access tokens are cached: they are the ones read on every request.
    const cache = kind === 'access' && !anyExpiry ? this.accessCache : undefined;
    if (cache !== undefined) {
      const hit = cache.get(token, Date.now(), this.findKey);
      if (hit !== undefined) {
        if (this.strategy !== undefined && hit.stg !== this.strategy) throw otherStrategy();
        return hit as Payload<K>;
      }
    }
    if (token.length > MAX_TOKEN_LENGTH) throw invalid('The token is too long.');
    if (!JWS_SHAPE.test(token))
      throw invalid('The token is not a signed JWT (three base64url segments).');
    const segment = token.slice(0, token.indexOf('.'));
    const known = knownHeader(segment);
    const header = known ?? parseHeader(segment);
    const foreign = forbiddenHeader(header);
    if (foreign !== undefined)
      throw invalid(`The token header carries "${foreign}", which is not accepted.`);
    const key = this.ring.find(header.kid, header.alg);
    if (!key) throw new UnknownKeyError();
    if (known === undefined) rememberHeader(segment, header);

    let payload: unknown;
    if (isHmac(key.algorithm) || isDirect(key.algorithm))
      payload = this.verifyDirect(token, key, anyExpiry);
    else {
      try {
        const options = this.verifyOptions.get(key.kid)! as jwt.VerifyOptions & { complete: true };
        payload = (jwt.verify(token, key.verifyKey, options) as jwt.Jwt).payload;
      } catch (cause) {
        // Claims are not jsonwebtoken's to check here (see verifyOptions): this is the signature.
        throw invalid('The token signature or claims are invalid.', cause);
      }
      this.checkClaims(payload, anyExpiry);
    }
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
      throw invalid('The token payload is not a JSON object.');
    }
    const claims = payload as Record<string, unknown>;
    if (header.typ !== TOKEN_TYP[kind] || claims.token_use !== kind) {
      throw invalid(`This is not ${kind === 'access' ? 'an access' : 'a refresh'} token.`);
    }
    if (claims.exp === undefined) throw invalid('The token has no expiry.');
    const time = nonNumericTime(claims);
    if (time !== undefined) throw invalid(`The token's "${time}" claim is not a number.`);
    const { exp, nbf, iat } = claims as {
      exp: number;
      nbf?: number | undefined;
      iat?: number | undefined;
    };
    const now = Date.now() / 1000;
    const seconds = Math.floor(now);
    if (nbf !== undefined && nbf > seconds + this.leeway)
      throw invalid('The token is not valid yet.');
    if (!anyExpiry && seconds >= exp + this.leeway)
      throw new AuthError('token_expired', 'The token has expired.');
    if (iat !== undefined && iat > now + this.leeway)
      throw invalid('The token was issued in the future.');
    if (this.strategy !== undefined && claims.stg !== this.strategy) throw otherStrategy();
    // The rule generateTokens issues by: a signed token with any other subject (300 characters,
    // say) would be refused only later, by the store's helpers, as a 500.
    if (!isUserIdString(claims.sub)) throw invalid('The token has no valid subject.');
    if (claims.sid !== undefined && (typeof claims.sid !== 'string' || !isWellFormed(claims.sid)))
      throw invalid('The token has a malformed session id.');
    if (kind === 'refresh' && (typeof claims.sid !== 'string' || typeof claims.jti !== 'string')) {
      throw invalid('The refresh token lacks its session id.');
    }
    // The absolute session lifetime counts from auth_time: a refresh token without it cannot be renewed.
    if (kind === 'refresh' && claims.auth_time === undefined)
      throw invalid('The refresh token lacks its login time.');
    // A session's own idle timeout, as a lifetime option allows it (a rotation signs with it).
    if (
      kind === 'refresh' &&
      claims.idl !== undefined &&
      !isWholeNumber(claims.idl, 1, MAX_LIFETIME)
    )
      throw invalid('The refresh token has a malformed idle timeout.');
    if (cache !== undefined) {
      const payload = claims as unknown as AccessTokenPayload;
      cache.set(token, payload, exp, key, header.kid, header.alg);
      return { ...payload } as Payload<K>;
    }
    return claims as unknown as Payload<K>;
  }
}
