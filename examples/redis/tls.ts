import { readFileSync } from 'node:fs';
import { createAuth } from 'koa-jwt-redis';

// TLS: the ioredis `tls` options (here the CA that signed the server's certificate), either
// with host and port, or completing a rediss:// URL.
export function tlsAuth(host: string, port: number, caFile: string) {
  return createAuth({
    secret: process.env.JWT_SECRET!,
    redis: { host, port, tls: { ca: readFileSync(caFile) } },
  });
}

export function tlsUrlAuth(url: string, caFile: string) {
  return createAuth({
    secret: process.env.JWT_SECRET!,
    redis: { url, tls: { ca: readFileSync(caFile) } },
  });
}
