import { describe, expect, it } from 'vitest';
import { isOneOrMore } from '../../../src/config/validate.js';

describe('isOneOrMore (audience, issuer, authorize lists)', () => {
  it('takes one non-empty string or a non-empty array of them', () => {
    expect(isOneOrMore('api')).toBe(true);
    expect(isOneOrMore(['api', 'web'])).toBe(true);
    for (const bad of ['', [], [''], ['api', 5], 5, null, undefined, {}, [undefined]])
      expect(isOneOrMore(bad)).toBe(false);
  });

  it("checks every item with the caller's test", () => {
    const regExpToo = (v: unknown) => typeof v === 'string' || v instanceof RegExp;
    expect(isOneOrMore([/^api:/, 'web'], regExpToo)).toBe(true);
    expect(isOneOrMore(/^api:/, regExpToo)).toBe(true);
    expect(isOneOrMore([], regExpToo)).toBe(false);
    expect(isOneOrMore([/x/, 1], regExpToo)).toBe(false);
  });
});
