import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const SECRET = randomBytes(32);
const env = process.env.NODE_ENV;
let warning: { mock: { calls: unknown[][] } };

beforeEach(() => {
  process.env.NODE_ENV = 'production';
  warning = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
  // The warning is once per process: each test loads the library afresh.
  vi.resetModules();
});
afterEach(() => {
  process.env.NODE_ENV = env;
  vi.restoreAllMocks();
});

const memoryWarnings = () =>
  warning.mock.calls.filter(
    ([, options]) =>
      (options as { code?: string } | undefined)?.code === 'KOA_JWT_REDIS_MEMORY_STORE',
  );

describe('the in-memory store (neither `redis` nor `store`) under NODE_ENV=production', () => {
  it('is warned of once, at start-up, before any login, under the default strategy', async () => {
    const { createAuth } = await import('../../../src/index.js');
    await createAuth({ secret: SECRET }).close();
    await createAuth({ secret: SECRET, strategy: 'session' }).close();
    expect(memoryWarnings()).toHaveLength(1);
    expect(String(memoryWarnings()[0]![0])).toMatch(
      /^koa-jwt-redis: sessions live in process memory/,
    );
  });

  it('with `jwt`, which keeps no sessions: only once another strategy records one in memory', async () => {
    const { createAuth } = await import('../../../src/index.js');
    const auth = createAuth({ secret: SECRET, strategy: 'jwt' });
    try {
      const pair = await auth.generateTokens({ id: 'u1' });
      await auth.refreshTokens(pair.refresh_token);
      expect(memoryWarnings()).toEqual([]);
      await auth.generateTokens({ id: 'u1' }, { strategy: 'redis' });
      await auth.generateTokens({ id: 'u2' }, { strategy: 'session' });
      expect(memoryWarnings()).toHaveLength(1);
    } finally {
      await auth.close();
    }
  });
});
