import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { describe, expect, it, vi } from 'vitest';
import {
  AuthConfigError,
  createAuth,
  memoryStore,
  postgresStore,
  redisStore,
} from '../../../src/index.js';
import { keySlot } from '../../../src/stores/cluster-slots.js';
import {
  connectRedis,
  instanceProblems,
  prefixHashTag,
} from '../../../src/stores/redis-connection.js';
import { harnessRedisUrl } from '../../helpers/auth.js';
import { SECRET } from '../../helpers/forge.js';

function optionOf(options: Record<string, unknown>): string {
  try {
    createAuth({ secret: SECRET, ...options } as never);
  } catch (error) {
    expect(error).toBeInstanceOf(AuthConfigError);
    return (error as AuthConfigError).option;
  }
  throw new Error(`expected ${JSON.stringify(options)} to be refused`);
}

describe('the redis option', () => {
  it('refuses URLs that are empty, malformed or of another scheme, naming the option', () => {
    for (const url of [
      '',
      '   ',
      'localhost:6379',
      'not a url',
      'http://127.0.0.1:6379',
      'redis://',
      'redis://127.0.0.1:6379/db',
      'redis://127.0.0.1:6379?db=abc',
      'redis://127.0.0.1:6379/?db=',
    ])
      expect(optionOf({ redis: url }), url).toBe('redis');
  });

  it('refuses connection options that name no Redis or a wrong one', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{}, 'redis'],
      [{ tls: {} }, 'redis'],
      [{ url: 'ftp://x' }, 'redis.url'],
      [{ url: '' }, 'redis.url'],
      [{ host: '' }, 'redis.host'],
      [{ host: '127.0.0.1', port: 0 }, 'redis.port'],
      // ioredis sends db as it is: NaN (an unset environment variable through Number), '' or 'x'
      // made its SELECT reject unhandled, which ended the process once it connected.
      [{ host: '127.0.0.1', db: Number.NaN }, 'redis.db'],
      [{ host: '127.0.0.1', db: '' }, 'redis.db'],
      [{ host: '127.0.0.1', db: 'x' }, 'redis.db'],
      [{ host: '127.0.0.1', db: '2' }, 'redis.db'],
      [{ host: '127.0.0.1', db: -1 }, 'redis.db'],
      [{ host: '127.0.0.1', db: 1.5 }, 'redis.db'],
      [{ url: 'redis://127.0.0.1', db: Number.NaN }, 'redis.db'],
      // A timeout of 0 or less timed every command out at once.
      [{ host: '127.0.0.1', commandTimeout: 0 }, 'redis.commandTimeout'],
      [{ host: '127.0.0.1', commandTimeout: -1 }, 'redis.commandTimeout'],
      [{ host: '127.0.0.1', commandTimeout: Number.NaN }, 'redis.commandTimeout'],
      [{ host: '127.0.0.1', commandTimeout: '500' }, 'redis.commandTimeout'],
      [
        { cluster: [{ host: '127.0.0.1', port: 7000 }], redisOptions: { commandTimeout: 0 } },
        'redis.redisOptions.commandTimeout',
      ],
      [
        { cluster: [{ host: '127.0.0.1', port: 7000 }], redisOptions: { db: 'x' } },
        'redis.redisOptions.db',
      ],
      [{ host: 'redis://127.0.0.1:6379' }, 'redis.host'],
      [{ host: '127.0.0.1', tls: 'yes' }, 'redis.tls'],
      [{ sentinels: [], name: 'mymaster' }, 'redis.sentinels'],
      [{ sentinels: [{ host: '127.0.0.1', port: 'x' }], name: 'mymaster' }, 'redis.sentinels'],
      [{ sentinels: [{ host: '127.0.0.1', port: 26379 }] }, 'redis.name'],
      [{ sentinels: [{ host: '127.0.0.1', port: 26379 }], name: 'm', role: 'slave' }, 'redis.role'],
      [{ cluster: [] }, 'redis.cluster'],
      [{ cluster: [{ host: '127.0.0.1', port: 7000 }], redisOptions: 3 }, 'redis.redisOptions'],
      // ioredis ignores a name it does not know: a misspelt password or tls would connect without.
      [{ host: '127.0.0.1', pasword: 'secret' }, 'redis.pasword'],
      // Other clients' names for ioredis's options.
      [{ host: '127.0.0.1', user: 'app' }, 'redis.user'],
      [{ host: '127.0.0.1', database: 2 }, 'redis.database'],
      [{ socket: { host: '127.0.0.1', port: 6379 } }, 'redis.socket'],
      [{ host: '127.0.0.1', tsl: {} }, 'redis.tsl'],
      [{ url: 'rediss://127.0.0.1', commandTimout: 500 }, 'redis.commandTimout'],
      [
        { sentinels: [{ host: '127.0.0.1', port: 26379 }], name: 'm', sentinelPasword: 'x' },
        'redis.sentinelPasword',
      ],
      [{ cluster: [{ host: '127.0.0.1', port: 7000 }], scalereads: 'master' }, 'redis.scalereads'],
      // A Cluster takes a node's settings in redisOptions only: at the top they were dropped, and
      // the nodes reached in plain text, without the password.
      [{ cluster: [{ host: '127.0.0.1', port: 7000 }], tls: {} }, 'redis.tls'],
      [{ cluster: [{ host: '127.0.0.1', port: 7000 }], password: 'x' }, 'redis.password'],
      [
        { cluster: [{ host: '127.0.0.1', port: 7000 }], redisOptions: { Password: 'x' } },
        'redis.redisOptions.Password',
      ],
    ];
    for (const [redis, option] of cases)
      expect(optionOf({ redis }), JSON.stringify(redis)).toBe(option);
    expect(optionOf({ redis: [] })).toBe('redis');
    expect(optionOf({ redis: 42 })).toBe('redis');
  });

  it('checks waitForReplicas, which needs Redis', () => {
    for (const waitForReplicas of [-1, 1.5, 17, '1'])
      expect(optionOf({ redis: { host: '127.0.0.1', lazyConnect: true }, waitForReplicas })).toBe(
        'waitForReplicas',
      );
    expect(optionOf({ waitForReplicas: 1 })).toBe('waitForReplicas');
  });

  it('creates a client set up for the guarantees, over the user’s settings', () => {
    const node = connectRedis(
      {
        host: '127.0.0.1',
        port: 1,
        lazyConnect: true,
        maxRetriesPerRequest: 20,
        commandTimeout: 5000,
      },
      800,
    );
    const options = (node.client as Redis).options;
    expect(node).toMatchObject({ owned: true, topology: 'single' });
    expect(options).toMatchObject({ maxRetriesPerRequest: 1, commandTimeout: 800 });
    expect(
      options.reconnectOnError?.(
        new Error('READONLY You can’t write against a read only replica.'),
      ),
    ).toBe(true);
    node.client.disconnect();

    // A setting given as undefined (an unset environment variable) leaves the library's in place.
    const unset = connectRedis(
      { host: '127.0.0.1', port: 1, lazyConnect: true, retryStrategy: undefined },
      800,
    );
    expect((unset.client as Redis).options.retryStrategy?.(100)).toBe(1000);
    unset.client.disconnect();

    const sentinel = connectRedis(
      { sentinels: [{ host: '127.0.0.1', port: 1 }], name: 'mymaster', lazyConnect: true },
      1000,
    );
    expect(sentinel.topology).toBe('sentinel');
    expect((sentinel.client as Redis).options.failoverDetector).toBe(true);
    expect(instanceProblems(sentinel.client)).toEqual([]);
    sentinel.client.disconnect();

    const cluster = connectRedis(
      { cluster: [{ host: '127.0.0.1', port: 1 }], enableAutoPipelining: true, lazyConnect: true },
      1000,
    );
    expect(cluster.topology).toBe('cluster');
    expect((cluster.client as Cluster).options).toMatchObject({
      enableAutoPipelining: false,
      scaleReads: 'master',
    });
    expect(instanceProblems(cluster.client)).toEqual([]);
    cluster.client.disconnect();
  });

  it('names the settings of a user’s own client that break a guarantee', () => {
    const sentinel = new Redis({
      sentinels: [{ host: '127.0.0.1', port: 1 }],
      name: 'mymaster',
      lazyConnect: true,
    });
    expect(instanceProblems(sentinel).join('\n')).toMatch(
      /failoverDetector[\s\S]*reconnectOnError/,
    );
    const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], {
      lazyConnect: true,
      enableAutoPipelining: true,
      scaleReads: 'slave',
    });
    expect(instanceProblems(cluster).join('\n')).toMatch(/scaleReads[\s\S]*enableAutoPipelining/);
    const plain = new Redis({ lazyConnect: true });
    expect(instanceProblems(plain)).toEqual([]);

    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }): void => {
      if (w.code === 'KOA_JWT_REDIS_CLIENT_SETTINGS') warnings.push(w.message);
    };
    process.on('warning', onWarning);
    try {
      connectRedis(sentinel, 1000);
      connectRedis(cluster, 1000);
    } finally {
      sentinel.disconnect();
      cluster.disconnect();
      plain.disconnect();
    }
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        process.off('warning', onWarning);
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toContain('failoverDetector');
        resolve();
      }),
    );
  });
});

describe("a Cluster client's own keyPrefix", () => {
  it('finds the hash tag Redis hashes, exactly when it puts every user in one slot', () => {
    const users = ['1', 'ana', 'user-42', 'ümlaut'];
    for (const prefix of [
      '',
      'app:',
      '{app}:',
      'a{b}c:',
      '{}',
      '{',
      'x{:',
      '}{a}',
      '{a',
      'a}b{c}d',
    ]) {
      const slots = new Set(users.map((id) => keySlot(`${prefix}auth:{u:${id}}`)));
      expect(prefixHashTag(prefix) !== undefined, prefix).toBe(slots.size === 1);
    }
    expect(prefixHashTag('a{b}c:')).toBe('{b}');
  });

  it('warns once, naming the tag, for a Cluster (yours or one made from options); not for one node', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }): void => {
      if (w.code === 'KOA_JWT_REDIS_CLUSTER_KEY_PREFIX') warnings.push(w.message);
    };
    process.on('warning', onWarning);
    const plain = new Redis({ lazyConnect: true, keyPrefix: '{app}:' });
    const untagged = new Cluster([{ host: '127.0.0.1', port: 1 }], {
      lazyConnect: true,
      keyPrefix: 'app:',
    });
    const tagged = new Cluster([{ host: '127.0.0.1', port: 1 }], {
      lazyConnect: true,
      keyPrefix: '{app}:',
    });
    try {
      connectRedis(plain, 1000);
      connectRedis(untagged, 1000);
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).toEqual([]);
      connectRedis(tagged, 1000);
      connectRedis(tagged, 1000);
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
      for (const client of [plain, untagged, tagged]) client.disconnect();
    }
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/keyPrefix "\{app\}:" has the hash tag \{app\}.*one slot/);
  });

  it('warns for a Cluster the library makes from options with such a keyPrefix', async () => {
    // A fresh copy of the modules: the warning above was this process's one.
    vi.resetModules();
    const fresh = await import('../../../src/stores/redis-connection.js');
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }): void => {
      if (w.code === 'KOA_JWT_REDIS_CLUSTER_KEY_PREFIX') warnings.push(w.message);
    };
    process.on('warning', onWarning);
    const { client } = fresh.connectRedis(
      { cluster: [{ host: '127.0.0.1', port: 1 }], keyPrefix: 'a{b}:', lazyConnect: true },
      1000,
    );
    try {
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
      client.disconnect();
    }
    expect(warnings).toEqual([expect.stringContaining('has the hash tag {b}')]);
  });
});

describe('a database the server does not have', () => {
  it('closes the client, warning once, rather than write sessions to database 0', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }): void => {
      if (w.code === 'KOA_JWT_REDIS_DB_OUT_OF_RANGE') warnings.push(w.message);
    };
    process.on('warning', onWarning);
    const harness = new URL(harnessRedisUrl());
    const keyPrefix = `db-range-${process.pid}-${Date.now()}:`;
    const byUrl = new URL(harness.href);
    byUrl.pathname = '/99';
    const made = [
      createAuth({ secret: SECRET, redis: byUrl.href, keyPrefix }),
      createAuth({ secret: SECRET, redis: { url: harness.href, db: 99 }, keyPrefix }),
      // Confirmed writes go through connections of their own (duplicates of the client's
      // settings): they are refused the database too, not left writing to database 0.
      createAuth({
        secret: SECRET,
        redis: { url: harness.href, db: 99 },
        keyPrefix,
        waitForReplicas: 1,
      }),
    ];
    const admin = new Redis(harness.href);
    const connections = async () =>
      Number(/total_connections_received:(\d+)/.exec(await admin.info('stats'))![1]);
    try {
      for (const auth of made) {
        await expect(auth.generateTokens({ id: 'nobody' })).rejects.toMatchObject({
          code: 'store_unavailable',
        });
        await expect(auth.ping()).rejects.toMatchObject({ code: 'store_unavailable' });
      }
      // Closed for good: no reconnection every 100 ms, each refused again.
      const before = await connections();
      await sleep(600);
      expect((await connections()) - before).toBe(0);
      for (const auth of made)
        await expect(auth.generateTokens({ id: 'nobody' })).rejects.toMatchObject({
          code: 'store_unavailable',
        });
      // Nothing reached database 0 (nor any other) under the prefix.
      for (const db of [0, 15]) {
        await admin.select(db);
        expect(await admin.keys(`${keyPrefix}*`)).toEqual([]);
      }
    } finally {
      process.off('warning', onWarning);
      admin.disconnect();
      for (const auth of made) await auth.close();
    }
    expect(warnings).toEqual([expect.stringMatching(/DB index is out of range.*databases/)]);
  });
});

describe('something else given where a Redis belongs', () => {
  it('says what it is and where it goes: a store as `store`, a pg Pool through postgresStore, a client before the options', () => {
    const messageOf = (make: () => unknown): string => {
      try {
        make();
      } catch (error) {
        expect(error).toBeInstanceOf(AuthConfigError);
        return (error as Error).message;
      }
      throw new Error('expected it to be refused');
    };
    expect(messageOf(() => createAuth({ secret: SECRET, redis: memoryStore() as never }))).toMatch(
      /`redis`.*is a session store.*give it as `store`/,
    );
    const poolLike = { query: async () => ({ rows: [] }), connect: async () => ({}) };
    expect(messageOf(() => createAuth({ secret: SECRET, redis: poolLike as never }))).toMatch(
      /`redis`.*pg Pool.*postgresStore\(pool\)/,
    );
    const client = new Redis({ lazyConnect: true });
    try {
      expect(messageOf(() => redisStore({ keyPrefix: 'app:' } as never, client as never))).toMatch(
        /is a Redis client: the client comes first/,
      );
    } finally {
      client.disconnect();
    }
    expect(messageOf(() => postgresStore({ schema: 'app' } as never, poolLike as never))).toMatch(
      /is a pg Pool: the pool comes first/,
    );
    // Closed for good: every request would answer 503.
    const closed = new Redis({ lazyConnect: true });
    closed.disconnect();
    expect(messageOf(() => createAuth({ secret: SECRET, redis: closed }))).toMatch(
      /`redis`.*was closed/,
    );
    expect(messageOf(() => postgresStore({ ...poolLike, ended: true } as never))).toMatch(
      /`postgresStore.connection`.*was ended/,
    );
  });
});

describe('a createAuth that fails after it made its Redis client', () => {
  it('closes that client: the caller has no instance to close it through', async () => {
    const name = `kjr-failed-create-${process.pid}-${Date.now()}`;
    const observer = new Redis(harnessRedisUrl());
    try {
      // sessionIdleTtl is checked as the session strategy registers, after the store is made.
      expect(() =>
        createAuth({
          secret: SECRET,
          redis: { url: harnessRedisUrl(), connectionName: name },
          sessionIdleTtl: 1,
        }),
      ).toThrow(AuthConfigError);
      const connected = async () =>
        ((await observer.call('CLIENT', 'LIST')) as string).includes(` name=${name} `);
      // Time for a leaked client to connect and name itself (before the fix it always did), then
      // for a closing one to be gone.
      await sleep(500);
      const deadline = Date.now() + 3000;
      while ((await connected()) && Date.now() < deadline) await sleep(50);
      expect(await connected()).toBe(false);
    } finally {
      observer.disconnect();
    }
  });
});

describe('the topology of a user’s own client', () => {
  it('is Sentinel only when the client has sentinels (ioredis defaults them to null)', () => {
    const plain = new Redis({ lazyConnect: true });
    const sentinel = new Redis({
      sentinels: [{ host: '127.0.0.1', port: 1 }],
      name: 'mymaster',
      lazyConnect: true,
    });
    try {
      expect(connectRedis(plain, 1000)).toMatchObject({ owned: false, topology: 'single' });
      expect(connectRedis(sentinel, 1000)).toMatchObject({ owned: false, topology: 'sentinel' });
    } finally {
      plain.disconnect();
      sentinel.disconnect();
    }
  });
});

/**
 * ioredis 6 declares a subclass of String, which leaves String.prototype in V8's slow
 * (dictionary) mode for the whole process; the library repairs it as it loads
 * (src/stores/fast-strings.ts). Each case runs in a Node process of its own, V8's natives syntax
 * on, the library's source through tsx, and prints `%HasFastProperties(String.prototype)`.
 */
describe('String.prototype with the library loaded (V8, ioredis 6)', () => {
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  const library = new URL('../../../src/index.ts', import.meta.url).href;
  const fast = 'console.log(%HasFastProperties(String.prototype));';
  async function run(source: string): Promise<string> {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', source],
      { cwd: root, timeout: 30_000 },
    );
    return stdout.trim();
  }

  // The cause, as Node 20's V8 shows it (the engine this was measured on); another engine may
  // not slow it. If this fails on Node 20, ioredis no longer slows string methods and
  // restoreFastStringMethods can go.
  it.runIf(process.versions.node.startsWith('20.'))(
    'is slow after ioredis 6 alone: what the library repairs',
    async () => {
      expect(await run(`import 'ioredis'; ${fast}`)).toBe('false');
    },
  );

  it('is fast once the library has loaded, ioredis 6 with it', async () => {
    expect(await run(`import ${JSON.stringify(library)}; ${fast}`)).toBe('true');
  });

  it('stays fast when code loaded after the library declares a subclass of String', async () => {
    // What a second copy of ioredis 6, loaded after the library, does.
    const source = `import ${JSON.stringify(library)}; class Later extends String {}; ${fast}`;
    expect(await run(source)).toBe('true');
  });
});
