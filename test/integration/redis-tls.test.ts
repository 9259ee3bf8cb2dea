import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tlsAuth, tlsUrlAuth } from '../../examples/redis/tls.js';
import { type Auth, createAuth } from '../../src/index.js';
import { SECRET } from '../helpers/forge.js';
import { freePort, RedisServer } from '../helpers/redis-server.js';

/*
 * A redis-server with TLS on, its certificates made here by openssl (a CA, and a server
 * certificate for 127.0.0.1 that CA signed): the library connects through `{ host, port, tls }` and
 * through a rediss:// URL with the CA in options, and refuses a server it cannot verify.
 */

const dir = mkdtempSync(join(tmpdir(), 'kjr-tls-'));
const file = (name: string): string => join(dir, name);
let server: RedisServer;
let tlsPort: number;
let admin: Redis;

process.env.JWT_SECRET ??= SECRET;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: 'pipe', timeout: 60_000 });
}

beforeAll(async () => {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.crt'),
    '-days',
    '1',
    '-subj',
    '/CN=koa-jwt-redis test CA',
  );
  openssl(
    'req',
    ...ec,
    '-keyout',
    file('server.key'),
    '-out',
    file('server.csr'),
    '-subj',
    '/CN=localhost',
  );
  writeFileSync(file('san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(
    'x509',
    '-req',
    '-in',
    file('server.csr'),
    '-CA',
    file('ca.crt'),
    '-CAkey',
    file('ca.key'),
    '-CAcreateserial',
    '-out',
    file('server.crt'),
    '-days',
    '1',
    '-extfile',
    file('san.cnf'),
  );
  tlsPort = await freePort();
  // The plain port stays for the harness's readiness check and the admin client.
  server = await RedisServer.start([
    '--tls-port',
    String(tlsPort),
    '--tls-cert-file',
    file('server.crt'),
    '--tls-key-file',
    file('server.key'),
    '--tls-ca-cert-file',
    file('ca.crt'),
    '--tls-auth-clients',
    'no',
  ]);
  admin = new Redis(server.url, { lazyConnect: true }).on('error', () => {});
});

afterAll(async () => {
  admin?.disconnect();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A login, a refresh and a logout through `auth`; the session was stored on the TLS server. */
async function roundTrip(auth: Auth): Promise<void> {
  try {
    const pair = await auth.generateTokens({ id: 'tls-user' });
    expect(await admin.keys('auth:*')).toContain('auth:{u:tls-user}');
    const next = await auth.refreshTokens(pair.refresh_token);
    expect(await auth.checkRefreshToken(pair.refresh_token)).toBe(false);
    await auth.invalidateRefreshToken(next.refresh_token);
    expect(await auth.checkRefreshToken(next.refresh_token)).toBe(false);
  } finally {
    await auth.close();
  }
}

describe('Redis over TLS (certificates made by openssl here)', () => {
  it('connects through { host, port, tls: { ca } }', async () => {
    await roundTrip(tlsAuth('127.0.0.1', tlsPort, file('ca.crt')));
  });

  it('connects through a rediss:// URL with the CA in options', async () => {
    await roundTrip(tlsUrlAuth(`rediss://127.0.0.1:${tlsPort}`, file('ca.crt')));
  });

  it('refuses a server whose certificate it cannot verify: 503, never a session on it', async () => {
    const auth = createAuth({
      secret: SECRET,
      redis: `rediss://127.0.0.1:${tlsPort}`,
      keyPrefix: 'untrusted:',
    });
    try {
      await expect(auth.generateTokens({ id: 'tls-user' })).rejects.toMatchObject({
        code: 'store_unavailable',
        status: 503,
      });
      expect(await admin.keys('untrusted:*')).toEqual([]);
    } finally {
      await auth.close();
    }
  });
});
