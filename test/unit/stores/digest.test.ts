import { createHash, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sha256, sha256Uuid } from '../../../src/stores/digest.js';

describe('sha256', () => {
  it('gives what a Hash object gives, in hex and in base64url, for ASCII and non-ASCII text', () => {
    for (const text of ['', 'user-1', 'š\u{1F600}\0x', randomUUID().repeat(40)]) {
      for (const encoding of ['hex', 'base64url'] as const)
        expect(sha256(text, encoding)).toBe(createHash('sha256').update(text).digest(encoding));
    }
  });
});

describe('sha256Uuid', () => {
  it("writes a string's first 128 bits of SHA-256 like a UUID, lower-case", () => {
    for (const text of ['', 'koa-jwt-redis successor\0abc\0def', randomUUID()]) {
      const hex = createHash('sha256').update(text).digest('hex').slice(0, 32);
      const uuid = sha256Uuid(text);
      expect(uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(uuid.replaceAll('-', '')).toBe(hex);
    }
  });
});
