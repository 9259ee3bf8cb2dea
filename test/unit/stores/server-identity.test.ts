import { describe, expect, it } from 'vitest';
import { sameServer } from '../../../src/stores/server-identity.js';

describe('sameServer', () => {
  const at = (runId: string | undefined, address: string) => ({ runId, address });

  it('tells servers apart by run id where they know one, whatever the address', () => {
    expect(sameServer(at('a1', '10.0.0.1:6379'), at('a1', '10.0.0.1:6379'))).toBe(true);
    // Through a proxy or a moved DNS name: one address, two servers.
    expect(sameServer(at('a1', '10.0.0.1:6379'), at('b2', '10.0.0.1:6379'))).toBe(false);
    // One server reached at two addresses.
    expect(sameServer(at('a1', '10.0.0.1:6379'), at('a1', '10.0.0.2:6379'))).toBe(true);
  });

  it('falls back to the address only when neither knows a run id', () => {
    expect(sameServer(at(undefined, '10.0.0.1:6379'), at(undefined, '10.0.0.1:6379'))).toBe(true);
    expect(sameServer(at(undefined, '10.0.0.1:6379'), at(undefined, '10.0.0.2:6379'))).toBe(false);
    // One that knows a run id and one that does not are never taken for the same.
    expect(sameServer(at('a1', '10.0.0.1:6379'), at(undefined, '10.0.0.1:6379'))).toBe(false);
  });
});
