import { createAuth } from 'koa-jwt-redis';

// Sentinel: the library creates the client, follows a failover as soon as the sentinels announce
// it, and confirms every session write on a replica before answering (waitForReplicas: 1).
export function sentinelAuth(sentinels: { host: string; port: number }[]) {
  return createAuth({
    secret: process.env.JWT_SECRET!,
    redis: { sentinels, name: 'mymaster' },
  });
}
