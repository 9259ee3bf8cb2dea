import type { Context, Middleware } from 'koa';
import { AuthConfigError, AuthError } from '../errors.js';
import { isOneOrMore } from '../config/validate.js';
import type { AuthUser, UserClaims } from '../tokens/claims.js';
import { throwAuthError } from './render-error.js';
import type { AuthState } from './state.js';

/** A claim's expected value: one value, or a list of which any one will do. */
type Expected<T> = [T] extends [readonly (infer E)[]] ? E | readonly E[] : T | readonly T[];

/**
 * Claims to match, keyed by the claims you declared on `UserClaims`; any string key until you
 * declare some.
 */
export type ClaimRequirements = [keyof UserClaims] extends [never]
  ? Record<string, unknown>
  : { [K in keyof UserClaims]?: Expected<NonNullable<UserClaims[K]>> };

/** A check of your own: return true to let the request through. */
export type AuthorizePredicate = (user: AuthUser, ctx: Context) => boolean | Promise<boolean>;

/**
 * What `authorize()` demands of `ctx.state.user`. Every part given must hold.
 */
export interface AuthorizeRequirements {
  /**
   * OAuth scopes the token must grant, all of them: read from the `scope` claim (space-separated,
   * RFC 9068) or an array `scope`/`scp` claim. Named in the 403 challenge.
   */
  scope?: string | readonly string[] | undefined;
  /** Roles of which the user needs one: the `role` claim (a string) or the `roles` claim (an array). */
  role?: string | readonly string[] | undefined;
  /**
   * Claims that must match: the claim equals the value (or one of the values listed); a claim
   * that is an array must contain it (or one of them).
   */
  claims?: ClaimRequirements | undefined;
  /** Anything else: called last, with the user and the context. */
  check?: AuthorizePredicate | undefined;
}

/** The rule of `authorize(rule)`: requirements, or a predicate alone. */
export type AuthorizeRule = AuthorizeRequirements | AuthorizePredicate;

// RFC 6750 §3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), no quote, no backslash, no space.
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

function list(name: string, value: unknown, pattern?: RegExp): readonly string[] | undefined {
  if (value === undefined) return undefined;
  const token = (v: unknown) =>
    typeof v === 'string' && v.length > 0 && (!pattern || pattern.test(v));
  if (!isOneOrMore(value, token)) {
    throw new AuthConfigError(
      `authorize.${name}`,
      pattern
        ? 'must be a scope or a non-empty list of scopes (printable ASCII, no space, quote or backslash)'
        : 'must be a non-empty string or a non-empty list of them',
    );
  }
  return typeof value === 'string' ? [value] : [...(value as string[])];
}

function scopesOf(user: AuthUser): ReadonlySet<string> {
  const claims = user as unknown as Record<string, unknown>;
  const out = new Set<string>();
  for (const name of ['scope', 'scp']) {
    const value = claims[name];
    if (typeof value === 'string') for (const s of value.split(' ')) if (s) out.add(s);
    if (Array.isArray(value)) for (const s of value) if (typeof s === 'string') out.add(s);
  }
  return out;
}

function rolesOf(user: AuthUser): ReadonlySet<string> {
  const claims = user as unknown as Record<string, unknown>;
  const out = new Set<string>();
  if (typeof claims.role === 'string') out.add(claims.role);
  if (Array.isArray(claims.roles))
    for (const r of claims.roles as unknown[]) if (typeof r === 'string') out.add(r);
  return out;
}

/** What a claim can be matched against: a JSON scalar that equals itself (null: a null claim). */
function isClaimValue(value: unknown): boolean {
  return (
    value === null ||
    typeof value === 'string' ||
    typeof value === 'boolean' ||
    (typeof value === 'number' && Number.isFinite(value))
  );
}

function claimMatches(actual: unknown, expected: readonly unknown[]): boolean {
  if (Array.isArray(actual)) return actual.some((a) => expected.includes(a));
  return expected.includes(actual);
}

/**
 * Builds the `authorize(rule)` middleware: 403 `insufficient_scope` with an RFC 6750 §3.1
 * challenge unless `ctx.state.user` meets the rule; 401 `token_missing` when there is no user
 * (put it after `requireAuth()`). The rule is checked here, once.
 */
export function createAuthorize(
  rule: AuthorizeRule,
  realm: string | undefined,
): Middleware<AuthState> {
  const requirements: AuthorizeRequirements = typeof rule === 'function' ? { check: rule } : rule;
  if (requirements === null || typeof requirements !== 'object' || Array.isArray(requirements))
    throw new AuthConfigError('authorize', 'needs { scope, role, claims, check } or a predicate');
  for (const [key, value] of Object.entries(requirements)) {
    if (!['scope', 'role', 'claims', 'check'].includes(key))
      throw new AuthConfigError(
        `authorize.${key}`,
        'is not a requirement; known: scope, role, claims, check',
      );
    // As for a claim's value: a requirement read from an unset environment variable would drop
    // out of the rule and let through the users it was written to refuse.
    if (value === undefined)
      throw new AuthConfigError(
        `authorize.${key}`,
        'was given as undefined (an unset environment variable?): give its value, or leave the key out',
      );
  }
  const scopes = list('scope', requirements.scope, SCOPE_TOKEN);
  const roles = list('role', requirements.role);
  // One string read as a list ('admin,editor') would be one role no user has. In a list, a comma
  // is the role's own (an LDAP group's DN).
  if (typeof requirements.role === 'string' && requirements.role.includes(','))
    throw new AuthConfigError(
      'authorize.role',
      `takes one role per item, e.g. ['admin', 'editor'] (got ${JSON.stringify(requirements.role)})`,
    );
  const { check } = requirements;
  if (check !== undefined && typeof check !== 'function')
    throw new AuthConfigError('authorize.check', 'must be a function (user, ctx) => boolean');
  const claimInput = requirements.claims as Record<string, unknown> | undefined;
  if (
    claimInput !== undefined &&
    (claimInput === null || typeof claimInput !== 'object' || Array.isArray(claimInput))
  )
    throw new AuthConfigError('authorize.claims', 'must be an object of claim: value(s)');
  const claims = Object.entries(claimInput ?? {}).map(([name, value]): [string, unknown[]] => {
    const expected = Array.isArray(value) ? [...(value as unknown[])] : [value];
    // Undefined (an unset environment variable) would match every token without the claim, and an
    // object, NaN or an empty list none: a rule that cannot mean what it says is refused here.
    // null stays: it matches a claim that is null, never a missing one.
    if (expected.length === 0 || !expected.every(isClaimValue))
      throw new AuthConfigError(
        `authorize.claims.${name}`,
        'must be a string, a finite number, a boolean or null, or a non-empty list of them',
      );
    return [name, expected];
  });
  if (!scopes && !roles && claims.length === 0 && !check)
    throw new AuthConfigError('authorize', 'needs at least one of scope, role, claims or check');

  const challenge = scopes
    ? `Bearer error="insufficient_scope", scope="${scopes.join(' ')}"`
    : 'Bearer error="insufficient_scope"';
  const forbidden = (): AuthError =>
    new AuthError('insufficient_scope', 'The token does not grant access to this resource.', {
      headers: { 'WWW-Authenticate': challenge, 'Cache-Control': 'no-store' },
    });

  return async function authorize(ctx, next) {
    const { user, authError } = ctx.state;
    if (user === undefined) {
      // After getData(): the reason it recorded (token_expired tells the client to refresh,
      // store_unavailable is no logout), else no token at all.
      throwAuthError(
        ctx,
        authError instanceof AuthError
          ? authError
          : new AuthError('token_missing', 'This resource needs an access token.'),
        realm,
      );
    }
    let allowed = true;
    if (scopes) {
      const granted = scopesOf(user);
      allowed = scopes.every((s) => granted.has(s));
    }
    if (allowed && roles) {
      const held = rolesOf(user);
      allowed = roles.some((r) => held.has(r));
    }
    if (allowed) {
      const values = user as unknown as Record<string, unknown>;
      allowed = claims.every(([name, expected]) => claimMatches(values[name], expected));
    }
    if (allowed && check) allowed = (await check(user, ctx as unknown as Context)) === true;
    if (!allowed) throwAuthError(ctx, forbidden(), realm);
    await next();
  };
}
