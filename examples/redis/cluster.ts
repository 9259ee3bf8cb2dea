import { createAuth } from 'koa-jwt-redis';

// Cluster: give some nodes; the library creates the Cluster client (no auto-pipelining, reads
// and writes on masters only) and follows failovers and slot migrations. Each node's own
// settings (tls, username, password) go in `redisOptions`, as ioredis's Cluster takes them;
// given beside `cluster` they are an AuthConfigError, since ioredis would drop them there.
export function clusterAuth(nodes: { host: string; port: number }[]) {
  return createAuth({
    secret: process.env.JWT_SECRET!,
    redis: { cluster: nodes },
  });
}
