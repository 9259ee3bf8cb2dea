import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import { type Auth, type AuthOptions, createAuth } from '../../src/index.js';
import { SECRET } from './forge.js';

/** A key prefix of its own per test, so tests sharing the harness Redis never see each other's keys. */
export const uniquePrefix = (): string => `t${randomUUID().slice(0, 8)}:`;

export const harnessRedisUrl = (): string => inject('redisUrl');

/** The client settings the README recommends for an injected ioredis client. */
export function redisClient(url = harnessRedisUrl()): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 1, commandTimeout: 1000, retryStrategy: (n) => Math.min(n * 100, 1000) });
  client.on('error', () => {});
  return client;
}

/** An Auth on the harness Redis (a URL, so the instance owns and closes its client). */
export function testAuth(options: Partial<AuthOptions> = {}): Auth {
  return createAuth({ secret: SECRET, redis: harnessRedisUrl(), keyPrefix: uniquePrefix(), ...options });
}

/** All keys under a prefix, with their TTLs in ms. */
export async function keysWithTtl(client: Redis, prefix: string): Promise<Map<string, number>> {
  const keys = await client.keys(`${prefix}*`);
  const out = new Map<string, number>();
  for (const key of keys) out.set(key, await client.pttl(key));
  return out;
}
