/**
 * The comparison a user would write by hand, of the kind fastapi_framework's `jwt_auth` documents:
 * jsonwebtoken with a prebuilt KeyObject, an access token with the user id, a refresh token whose
 * UUID is kept in one global Redis set, no rotation record, no per-session metadata, a stateless
 * `/me`. Written for this benchmark; it does what such a server does and nothing more.
 */
import { createSecretKey, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import jsonwebtoken from 'jsonwebtoken';
import { SECRET } from './secret.js';

const SET = 'refresh_tokens';

export interface HandWritten {
  login(id: string): Promise<HandPair>;
  /** The new pair, or undefined when the token is invalid or its UUID is not in the set. */
  refresh(token: string): Promise<HandPair | undefined>;
  /** The access token's payload, or undefined when it does not verify. */
  me(token: string): { sub: string } | undefined;
  close(): Promise<void>;
}

export interface HandPair {
  access_token: string;
  refresh_token: string;
  token_type: 'bearer';
}

/** `accessTtl`: seconds; /me runs use tokens issued when the process starts, so they ask for longer. */
export function handWritten(redisUrl: string, prefix: string, accessTtl = 900): HandWritten {
  const key = createSecretKey(Buffer.from(SECRET));
  const redis = new Redis(redisUrl, { enableAutoPipelining: true });
  const set = `${prefix}${SET}`;

  async function issue(sub: string): Promise<HandPair> {
    const uuid = randomUUID();
    const access_token = jsonwebtoken.sign({ sub }, key, {
      algorithm: 'HS256',
      expiresIn: accessTtl,
    });
    const refresh_token = jsonwebtoken.sign({ sub, uuid }, key, {
      algorithm: 'HS256',
      expiresIn: 3600,
    });
    await redis.sadd(set, uuid);
    return { access_token, refresh_token, token_type: 'bearer' };
  }

  function verify(token: string): jsonwebtoken.JwtPayload | undefined {
    try {
      const payload = jsonwebtoken.verify(token, key, { algorithms: ['HS256'] });
      return typeof payload === 'object' ? payload : undefined;
    } catch {
      return undefined;
    }
  }

  return {
    login: issue,
    async refresh(token) {
      const payload = verify(token);
      if (typeof payload?.uuid !== 'string' || typeof payload.sub !== 'string') return undefined;
      // SREM answers whether it was there: check and invalidate in one command.
      if ((await redis.srem(set, payload.uuid)) !== 1) return undefined;
      return issue(payload.sub);
    },
    me(token) {
      const payload = verify(token);
      return typeof payload?.sub === 'string' ? { sub: payload.sub } : undefined;
    },
    async close() {
      await redis.quit();
    },
  };
}
