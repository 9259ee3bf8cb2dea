/**
 * Type test, checked by `npm run typecheck` (never run): the `redis` option accepts the clients
 * users construct from ioredis 6 (what `npm install ioredis` gives today) and from ioredis 5 (the
 * `ioredis5` dev alias), single-node and Cluster, with either reply mapping.
 */
import type { Cluster as Cluster6, Redis as Redis6 } from 'ioredis';
import type { Cluster as Cluster5, Redis as Redis5 } from 'ioredis5';
import { type AuthOptions, createAuth, type RedisClient } from '../../src/index.js';

declare const redis6: Redis6;
declare const redis6Resp3: Redis6<'resp3'>;
declare const cluster6: Cluster6;
declare const redis5: Redis5;
declare const cluster5: Cluster5;

export function acceptsEveryMajor(secret: string): void {
  for (const redis of [redis6, redis6Resp3, cluster6, redis5, cluster5]) {
    createAuth({ secret, redis });
  }
  const options: AuthOptions = { secret, redis: 'redis://127.0.0.1:6379' };
  createAuth(options);
}

export function refusesWhatIsNoClient(): RedisClient[] {
  return [
    // @ts-expect-error a connection string's parts are not a client
    { host: '127.0.0.1', port: 6379 },
    // @ts-expect-error a client without defineCommand cannot run the session scripts
    { hget: redis6.hget.bind(redis6), hgetall: redis6.hgetall.bind(redis6) },
  ];
}
