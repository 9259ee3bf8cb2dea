import { types } from 'node:util';
import { describe, expect, it } from 'vitest';
import { AuthError } from '../../../src/index.js';
import { withRealm } from '../../../src/middleware/render-error.js';

/** An app's own AuthError subclass, as a custom strategy may throw. */
class TenantError extends AuthError {
  readonly tenant = 'acme';
}

describe('withRealm', () => {
  it('returns a copy that is still a native error of its class, with its stack and cause', () => {
    const cause = new Error('the reason');
    const original = new TenantError('token_invalid', 'Not ours.', { cause });
    const copy = withRealm(original, 'api');
    expect(copy).not.toBe(original);
    expect(copy.headers['WWW-Authenticate']).toBe('Bearer realm="api", error="invalid_token"');
    expect(original.headers['WWW-Authenticate']).toBe('Bearer error="invalid_token"');
    expect(copy).toBeInstanceOf(TenantError);
    expect(copy).toBeInstanceOf(AuthError);
    expect(copy).toBeInstanceOf(Error);
    expect(types.isNativeError(copy)).toBe(true);
    expect(Object.prototype.toString.call(copy)).toBe('[object Error]');
    expect(structuredClone(copy)).toBeInstanceOf(Error);
    expect(copy.stack).toBe(original.stack);
    expect(copy.stack).toMatch(/^TenantError: Not ours\.\n\s+at /);
    expect([copy.name, copy.message, copy.cause, copy.code, copy.status, copy.expose]).toEqual([
      'TenantError',
      'Not ours.',
      cause,
      'token_invalid',
      401,
      true,
    ]);
    expect((copy as TenantError).tenant).toBe('acme');
    expect(copy.toJSON()).toEqual(original.toJSON());
    // The stack can still be set, on the copy alone.
    copy.stack = 'replaced';
    expect([copy.stack, original.stack]).toEqual([
      'replaced',
      expect.stringMatching(/^TenantError/),
    ]);
  });

  it('copies a frozen error, and leaves Error.stackTraceLimit as it was', () => {
    const limit = Error.stackTraceLimit;
    const shared = Object.freeze(new AuthError('token_expired', 'Expired.'));
    const copy = withRealm(shared, 'api');
    expect(copy.headers['WWW-Authenticate']).toBe('Bearer realm="api", error="invalid_token"');
    expect([copy.code, copy.stack]).toEqual(['token_expired', shared.stack]);
    expect(Error.stackTraceLimit).toBe(limit);
    // The stack setter writes to the object it is set on, never to the copy behind it.
    const child = Object.create(copy) as AuthError;
    child.stack = 'child';
    expect([child.stack, copy.stack]).toEqual(['child', shared.stack]);
  });

  it('returns the error itself when there is nothing to add', () => {
    const plain = new AuthError('token_invalid', 'x');
    expect(withRealm(plain, undefined)).toBe(plain);
    const forbidden = new AuthError('store_unavailable', 'x');
    expect(withRealm(forbidden, 'api')).toBe(forbidden);
    const realmed = withRealm(plain, 'api');
    expect(withRealm(realmed, 'other')).toBe(realmed);
  });
});
