import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  compactUuid,
  expandUuid,
  packCore,
  PREVIOUS_UUID_CHARS,
} from '../../../src/stores/record-codec.js';

describe('the Redis record packing', () => {
  it('keeps a refresh token UUID in 22 characters and gives it back exactly', () => {
    for (let i = 0; i < 1000; i++) {
      const uuid = randomUUID();
      const compact = compactUuid(uuid);
      expect(compact).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(expandUuid(compact)).toBe(uuid);
    }
    expect(compactUuid('not-a-uuid')).toBe('not-a-uuid');
  });

  it('fits a core record with the previous UUID in 64 bytes, the listpack limit', () => {
    const now = Date.now();
    const core = packCore({
      jti: randomUUID(),
      previousJti: compactUuid(randomUUID()).slice(0, PREVIOUS_UUID_CHARS),
      rotatedAt: now,
      createdAt: now,
      expiresAt: now + 31_536_000_000,
    });
    expect(Buffer.byteLength(core)).toBeLessThanOrEqual(64);
  });
});
