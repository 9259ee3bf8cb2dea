import type { TestProject } from 'vitest/node';
import { RedisCluster } from './helpers/redis-cluster.js';
import { hasRedisServer, RedisServer } from './helpers/redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
    /** True when the harness started this Redis, so tests may flush it. */
    redisOwned: boolean;
    /** Which backend the integration tests run against: the vitest project decides. */
    redisBackend: 'single' | 'cluster';
    /** Ports of the cluster's masters on 127.0.0.1 (empty unless redisBackend is 'cluster'). */
    clusterPorts: number[];
  }
}

/**
 * One redis-server for the run, on a free port, stopped at the end. With REDIS_URL set, that
 * Redis is used instead (and may be flushed: pointing the tests at it says so). The `cluster`
 * project gets a real 3-master Redis Cluster on free ports instead.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (!process.env.REDIS_URL && !hasRedisServer()) {
    throw new Error(
      'The integration tests need Redis: install redis-server (apt-get install redis-server) or set REDIS_URL.',
    );
  }
  if (project.name === 'cluster') {
    const cluster = await RedisCluster.start(3);
    project.provide('redisBackend', 'cluster');
    project.provide('clusterPorts', cluster.ports);
    project.provide('redisUrl', `redis://127.0.0.1:${cluster.ports[0]}`);
    project.provide('redisOwned', true);
    return () => cluster.stop();
  }
  project.provide('redisBackend', 'single');
  project.provide('clusterPorts', []);
  if (process.env.REDIS_URL) {
    project.provide('redisUrl', process.env.REDIS_URL);
    project.provide('redisOwned', true);
    return async () => {};
  }
  const server = await RedisServer.start();
  project.provide('redisUrl', server.url);
  project.provide('redisOwned', true);
  return () => server.stop();
}
