import type { TestProject } from 'vitest/node';
import { hasRedisServer, RedisServer } from './helpers/redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
    /** True when the harness started this Redis, so tests may flush it. */
    redisOwned: boolean;
  }
}

/**
 * One redis-server for the run, on a free port, stopped at the end. With REDIS_URL set, that
 * Redis is used instead (and may be flushed: pointing the tests at it says so).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.REDIS_URL) {
    project.provide('redisUrl', process.env.REDIS_URL);
    project.provide('redisOwned', true);
    return async () => {};
  }
  if (!hasRedisServer()) {
    throw new Error('The integration tests need Redis: install redis-server (apt-get install redis-server) or set REDIS_URL.');
  }
  const server = await RedisServer.start();
  project.provide('redisUrl', server.url);
  project.provide('redisOwned', true);
  return () => server.stop();
}
