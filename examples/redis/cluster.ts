import { createAuth } from 'koa-jwt-redis';

// Cluster: give some nodes; the library creates the Cluster client (no auto-pipelining, reads
// and writes on masters only) and follows failovers and slot migrations.
export function clusterAuth(nodes: { host: string; port: number }[]) {
  return createAuth({
    secret: process.env.JWT_SECRET!,
    redis: { cluster: nodes },
  });
}
