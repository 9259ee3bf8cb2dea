import { randomBytes } from 'node:crypto';
import { createAuth } from 'koa-jwt-redis';
import { createApp } from './app.js';

// A random secret per start is fine for a demo (restarts log everyone out); set JWT_SECRET for real use.
const secret = process.env.JWT_SECRET ?? randomBytes(32).toString('base64url');
const redis = process.env.REDIS_URL; // unset: in-memory sessions

const auth = createAuth({ secret, redis, userFields: ['name', 'role'] });
const port = Number(process.env.PORT ?? 3000);

createApp(auth).listen(port, '127.0.0.1', () => {
  console.log(
    `koa-jwt-redis example on http://127.0.0.1:${port} (sessions in ${redis ? 'Redis' : 'memory'})`,
  );
  console.log(
    `try: curl -s -XPOST localhost:${port}/login -H 'content-type: application/json' -d '{"username":"alice","password":"wonderland"}'`,
  );
});
