import { Redis } from 'ioredis';
import { createAuth } from 'koa-jwt-redis';
import { createMigratingApp } from './app.js';

// The new secret is a new one: tokens of the two systems cannot be mistaken for each other.
const auth = createAuth({
  secret: process.env.JWT_SECRET ?? 'a-new-secret-of-at-least-32-bytes!!',
  redis: new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
    maxRetriesPerRequest: 1,
    commandTimeout: 1000,
  }),
  userFields: ['username', 'role'],
});
const app = createMigratingApp(auth, {
  oldSecret: process.env.OLD_JWT_SECRET ?? 'the-secret-koa-jwt-used',
  until: new Date(process.env.MIGRATION_UNTIL ?? Date.now() + 30 * 24 * 3600 * 1000),
});
app.listen(3000, () => console.log('http://127.0.0.1:3000'));
