import { describe, expect, it } from 'vitest';
import { resolveVerifierOptions } from '../../../src/config/verifier.js';

/** The plain-http jwksUri warning: loud for any host on the network, quiet for loopback. */
describe('jwksUri over plain http', () => {
  it('warns for a host off the machine, never for a loopback address in any spelling', async () => {
    const seen: string[] = [];
    const listener = (warning: Error & { code?: string }) => seen.push(warning.code ?? '');
    process.on('warning', listener);
    try {
      const resolve = (host: string) =>
        resolveVerifierOptions({ jwksUri: `http://${host}/jwks.json` });
      for (const host of [
        'localhost:8080',
        'localhost.',
        '127.0.0.1',
        '127.0.0.2',
        '127.255.255.254',
        '127.1',
        '0x7f000001',
        '[::1]',
        '[0:0:0:0:0:0:0:1]',
        '[::ffff:127.0.0.1]',
        '[::ffff:127.10.0.3]',
      ]) {
        resolve(host);
      }
      await new Promise((done) => setImmediate(done));
      expect(seen.filter((code) => code === 'KOA_JWT_REDIS_INSECURE_JWKS')).toEqual([]);
      for (const host of [
        'auth.example.test',
        '128.0.0.1',
        '10.0.0.1',
        '[::ffff:10.0.0.1]',
        '[::2]',
      ]) {
        resolve(host);
      }
      await new Promise((done) => setImmediate(done));
      // Once per process, whichever host came first.
      expect(seen.filter((code) => code === 'KOA_JWT_REDIS_INSECURE_JWKS')).toEqual([
        'KOA_JWT_REDIS_INSECURE_JWKS',
      ]);
    } finally {
      process.off('warning', listener);
    }
  });
});
