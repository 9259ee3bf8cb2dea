import { randomBytes } from 'node:crypto';
import { createAuth } from 'koa-jwt-redis';
import { createWebApp } from './app.js';

// A random secret per start is fine for a demo (restarts log everyone out); set JWT_SECRET for real use.
const secret = process.env.JWT_SECRET ?? randomBytes(32).toString('base64url');
const redis = process.env.REDIS_URL; // unset: in-memory sessions

const auth = createAuth({
  secret,
  redis,
  userFields: ['name'],
  tokenDelivery: 'cookie',
  // Short on purpose, so the page shows silent refreshes; the default is 900 s.
  accessTokenTtl: Number(process.env.ACCESS_TTL ?? 30),
  // Two tabs that refresh at the same moment should not end the session.
  refreshGracePeriod: 10,
  // Chromium accepts Secure (and __Host-) cookies from http://localhost and http://127.0.0.1 (the
  // browser test checks it). For a browser or host that does not, COOKIE_SECURE=false during
  // development only (it warns under NODE_ENV=production).
  cookies: { secure: process.env.COOKIE_SECURE !== 'false' },
});
const port = Number(process.env.PORT ?? 3000);

createWebApp(auth).listen(port, '127.0.0.1', () => {
  console.log(
    `koa-jwt-redis web example on http://127.0.0.1:${port} (alice / wonderland, bob / builder; sessions in ${redis ? 'Redis' : 'memory'})`,
  );
});
