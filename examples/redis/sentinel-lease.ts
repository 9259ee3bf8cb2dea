import { createAuth } from 'koa-jwt-redis';

// Sentinel with masterLease: reads trust the master only while enough sentinels vouch for it,
// so an app cut off with an old master answers 503 rather than accept a session that was ended
// on the other side of the split.
export function sentinelLeaseAuth(sentinels: { host: string; port: number }[]) {
  return createAuth({
    secret: process.env.JWT_SECRET!,
    redis: { sentinels, name: 'mymaster' },
    masterLease: true,
  });
}
