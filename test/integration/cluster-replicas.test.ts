import { createHash, randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { type Auth, createAuth, redisStore } from '../../src/index.js';
import { keySlot } from '../../src/stores/cluster-slots.js';
import { confirmedWrite } from '../../src/stores/redis-scripts.js';
import { refusedSoon, untilCached } from '../helpers/auth.js';
import { decodeSegment, SECRET } from '../helpers/forge.js';
import { RedisCluster } from '../helpers/redis-cluster.js';
import { redisServerMajor } from '../helpers/redis-server.js';

/*
 * How a Cluster store decides whether its writes wait for a replica (the default,
 * waitForReplicas 'replicated'), on the paths the failover tests do not take: an ACL that refuses
 * CLUSTER NODES, a client of the app's own with lazyConnect, and a Cluster that gains its first
 * replica while the app runs. Whether a write waited is read off the nodes' own count of WAIT
 * calls (INFO commandstats). On Redis 6 (`npm run test:redis6`) CLUSTER SHARDS does not exist:
 * an ACL that refuses CLUSTER NODES leaves the slot map, as one that refuses both does on 7.
 */

/** Whether these nodes know CLUSTER SHARDS (Redis 7), and ACL rules that deny a subcommand. */
const REDIS_7 = redisServerMajor() >= 7;
/** The CLUSTER subcommands the tests' users need, allowed one by one where Redis 6 cannot deny one. */
const CLUSTER_SUBCOMMANDS = ['info', 'slots', 'shards', 'nodes', 'myid', 'keyslot'];

const clusters: RedisCluster[] = [];
const plain: Redis[] = [];
let auth: Auth | undefined;
let own: Cluster | undefined;

/** Closes the test's auth and its own client, if any. */
async function closeAuth(): Promise<void> {
  await auth?.close();
  own?.disconnect();
  [auth, own] = [undefined, undefined];
}

afterEach(async () => {
  await closeAuth();
  vi.restoreAllMocks();
});

afterAll(async () => {
  for (const client of plain) client.disconnect();
  await Promise.all(clusters.map((cluster) => cluster.stop()));
});

/** A write for confirmedWrite: it sets its key and answers 1. */
const WRITE = "redis.call('SET', KEYS[1], 'written') return 1";

async function started(masters: number, replicas: number): Promise<RedisCluster> {
  const cluster = await RedisCluster.start(masters, replicas);
  clusters.push(cluster);
  return cluster;
}

const byPort = new Map<number, Redis>();
function node(port: number): Redis {
  let client = byPort.get(port);
  if (client === undefined) {
    client = new Redis({ port, lazyConnect: true }).on('error', () => {});
    byPort.set(port, client);
    plain.push(client);
  }
  return client;
}

const startNodes = (cluster: RedisCluster) =>
  cluster.ports.map((port) => ({ host: '127.0.0.1', port }));

/**
 * A hash tag (`t<n>`) whose slot is served by a node `wanted` accepts, by the slot map `port`
 * gives: a keyPrefix of `{t<n>}:` puts every key of a store on that node.
 */
async function tagOn(port: number, wanted: (at: number) => boolean): Promise<string> {
  const slots = (await node(port).call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
  const ownerOf = (slot: number) => slots.find(([from, to]) => from <= slot && slot <= to)?.[2][1];
  for (let n = 0; n < 100_000; n++) {
    const owner = ownerOf(keySlot(`{t${n}}`));
    if (owner !== undefined && wanted(owner)) return `t${n}`;
  }
  throw new Error(`no hash tag on a wanted node in the slot map of ${port}`);
}

/** WAIT calls the Cluster's nodes have served, in all (but a paused node's). */
async function waits(cluster: RedisCluster, paused?: number): Promise<number> {
  let calls = 0;
  for (const port of cluster.ports.filter((at) => at !== paused)) {
    const stats = await node(port).info('commandstats');
    calls += Number(/cmdstat_wait:calls=(\d+)/.exec(stats)?.[1] ?? 0);
  }
  return calls;
}

/** WAIT calls one login made (2 when Redis did not have the script yet: EVALSHA, WAIT, EVAL, WAIT). */
async function waitsOfLogin(cluster: RedisCluster, id: string): Promise<number> {
  const before = await waits(cluster);
  const pair = await auth!.generateTokens({ id });
  expect(await auth!.checkRefreshToken(pair.refresh_token)).toBe(true);
  return (await waits(cluster)) - before;
}

/**
 * Until every node's CLUSTER SLOTS lists a replica for every range: the fallback judges by it,
 * asking whichever node the client picks.
 */
async function replicasInSlotMap(cluster: RedisCluster): Promise<void> {
  const deadline = Date.now() + 20_000;
  const listsReplicas = async (port: number) =>
    ((await node(port).call('CLUSTER', 'SLOTS')) as unknown[][]).every((r) => r.length >= 4);
  while (Date.now() < deadline) {
    if ((await Promise.all(cluster.ports.map(listsReplicas))).every(Boolean)) return;
    await sleep(100);
  }
  throw new Error('the slot map lists no replica for some range after 20 s');
}

/**
 * A user on every node of `cluster`, password `kjr-password`, allowed all but `denied` (CLUSTER
 * subcommands, as `-cluster|nodes`). Redis 6 has neither the rule that denies a subcommand nor
 * channel rules (every channel is allowed): there CLUSTER is denied, then each other subcommand
 * allowed.
 */
async function aclUser(cluster: RedisCluster, name: string, ...denied: string[]): Promise<void> {
  const rules = REDIS_7
    ? ['&*', '+@all', ...denied]
    : [
        '+@all',
        '-cluster',
        ...CLUSTER_SUBCOMMANDS.filter((sub) => !denied.includes(`-cluster|${sub}`)).map(
          (sub) => `+cluster|${sub}`,
        ),
      ];
  for (const port of cluster.ports)
    await node(port).call('ACL', 'SETUSER', name, 'on', '>kjr-password', '~*', ...rules);
}

describe('a Cluster store decides whether writes wait for a replica', () => {
  it('an ACL that refuses CLUSTER NODES: judged from CLUSTER SHARDS, which lists a failing replica too (Redis 7; from CLUSTER SLOTS on 6, which has no SHARDS, with a warning); one that refuses both: from CLUSTER SLOTS, which does not, with one warning', async () => {
    // A node timeout of 3 s: the paused replica is flagged failing within seconds.
    const cluster = await RedisCluster.start(3, 1, ['--cluster-node-timeout', '3000']);
    clusters.push(cluster);
    await aclUser(cluster, 'kjr-shards', '-cluster|nodes');
    await aclUser(cluster, 'kjr-slots', '-cluster|nodes', '-cluster|shards');
    await replicasInSlotMap(cluster);
    const warning = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    const ours = () =>
      warning.mock.calls.filter(
        ([, options]) => (options as { code?: string })?.code === 'KOA_JWT_REDIS_CLUSTER_NODES',
      );
    // A paused node's port is left out of the client's start nodes. The first client has
    // ioredis hand map replies (CLUSTER SHARDS) as objects, the other as flat arrays.
    const login = (username: string, keyPrefix?: string, paused?: number) => {
      own = new Cluster(
        startNodes(cluster).filter((start) => start.port !== paused),
        {
          ...(keyPrefix ? { keyPrefix } : {}),
          redisOptions: {
            username,
            password: 'kjr-password',
            ...(username === 'kjr-shards' ? { replyMapping: 'resp3' as const } : {}),
          },
        },
      ).on('error', () => {});
      auth = createAuth({ secret: SECRET, redis: own });
    };

    // Every shard has a replica that replicates: both ways, writes wait; on Redis 7 only the
    // second warns, on 6 the first (the warning is given once a process).
    login('kjr-shards');
    expect(await waitsOfLogin(cluster, 'kjr-shards-user')).toBeGreaterThan(0);
    await closeAuth();
    expect(ours()).toHaveLength(REDIS_7 ? 0 : 1);
    login('kjr-slots');
    expect(await waitsOfLogin(cluster, 'kjr-slots-user')).toBeGreaterThan(0);
    await closeAuth();
    expect(ours()).toHaveLength(1);
    expect(String(ours()[0]![0])).toMatch(
      REDIS_7
        ? /CLUSTER NODES: NOPERM.*; CLUSTER SHARDS: NOPERM.*judged from CLUSTER SLOTS/
        : /CLUSTER NODES: NOPERM.*; CLUSTER SHARDS: ERR Unknown subcommand.*judged from CLUSTER SLOTS/,
    );

    // One replica stops: every node flags it failing, and the slot map leaves it out.
    const nodes = String(await node(cluster.ports[0]!).call('CLUSTER', 'NODES'));
    const [replicaId, replicaAddress, , masterId] = nodes
      .split('\n')
      .map((line) => line.split(' '))
      .find((fields) => fields[2]?.includes('slave'))!;
    const port = (address: string) => Number(/:(\d+)@/.exec(address)![1]);
    const masterPort = port(
      nodes
        .split('\n')
        .find((line) => line.startsWith(masterId!))!
        .split(' ')[1]!,
    );
    const paused = port(replicaAddress!);
    const replica = cluster.nodes.find((server) => server.url.endsWith(`:${paused}`))!;
    replica.pause();
    try {
      const deadline = Date.now() + 30_000;
      const flagged = async (at: number) =>
        String(await node(at).call('CLUSTER', 'NODES')).includes(
          `${replicaId} ${replicaAddress} slave,fail `,
        ) && !JSON.stringify(await node(at).call('CLUSTER', 'SLOTS')).includes(replicaId!);
      const others = cluster.ports.filter((at) => at !== paused);
      while (!(await Promise.all(others.map(flagged))).every(Boolean)) {
        if (Date.now() > deadline)
          throw new Error('the paused replica was not flagged failing in 30 s');
        await sleep(200);
      }
      // Every key of the stores below on the failing replica's master.
      const tag = await tagOn(masterPort, (at) => at === masterPort);

      // Judged from CLUSTER SHARDS: the shard's writes still wait for its replica, as with
      // CLUSTER NODES, so none is answered as done while no replica has it.
      if (REDIS_7) {
        login('kjr-shards', `{${tag}}:`, paused);
        await expect(auth!.generateTokens({ id: 'while-failing' })).rejects.toMatchObject({
          code: 'store_unavailable',
        });
        await closeAuth();
      }

      // Judged from CLUSTER SLOTS: the failing replica is not listed, the write does not wait.
      for (const user of REDIS_7 ? ['kjr-slots'] : ['kjr-shards', 'kjr-slots']) {
        login(user, `{${tag}}:`, paused);
        const before = await waits(cluster, paused);
        const pair = await auth!.generateTokens({ id: `while-failing-${user}` });
        expect(await auth!.checkRefreshToken(pair.refresh_token)).toBe(true);
        expect(await waits(cluster, paused)).toBe(before);
        await closeAuth();
      }
    } finally {
      replica.resume();
    }
  }, 90_000);

  // The session cache's feed on a Cluster master asks CLUSTER INFO at each heartbeat (a master
  // cut off from the majority says fail: cluster-failover.test.ts); an ACL that refuses it
  // leaves the PING, and the cache works as before.
  it('sessionCache on a Cluster whose ACL refuses CLUSTER INFO: the feeds fall back to PING, the cache serves and stays coherent', async () => {
    const cluster = await started(3, 0);
    await aclUser(cluster, 'kjr-noinfo', '-cluster|info');
    const login = { username: 'kjr-noinfo', password: 'kjr-password' };
    // ioredis's own ready check is a CLUSTER INFO too: such an ACL needs it off.
    const client = (): Cluster =>
      new Cluster(startNodes(cluster), { redisOptions: login, enableReadyCheck: false }).on(
        'error',
        () => {},
      );
    const mine = client();
    const theirs = client();
    const store = redisStore(mine, { sessionCache: true });
    const instance = { auth: createAuth({ secret: SECRET, store }), store };
    const other = createAuth({ secret: SECRET, redis: theirs });
    try {
      expect(await node(cluster.ports[0]!).call('CLUSTER', 'INFO')).toMatch(/cluster_state:ok/);
      const pair = await instance.auth.generateTokens({ id: 'no-info' });
      await untilCached(instance, pair.access_token);
      // Past maxStaleness (1 s): the heartbeats were answered, or the cache would be dropped.
      await sleep(1500);
      const { sub, sid } = decodeSegment(pair.access_token, 1) as { sub: string; sid: string };
      expect(store.cachedLiveness!(sub, sid, Date.now())).toBe(true);
      await other.revokeSession(sub, sid);
      await refusedSoon(instance, pair.access_token);
    } finally {
      await instance.auth.close();
      await other.close();
      mine.disconnect();
      theirs.disconnect();
    }
  });

  it('your own Cluster client with lazyConnect: writes wait once it has connected', async () => {
    const cluster = await started(3, 1);
    own = new Cluster(startNodes(cluster), { lazyConnect: true }).on('error', () => {});
    auth = createAuth({ secret: SECRET, redis: own });
    expect(await waitsOfLogin(cluster, 'lazy-user')).toBeGreaterThan(0);
  });

  it('a Cluster of masters that gains a replica while the app runs: that shard’s writes wait from then on, the others’ do not', async () => {
    const cluster = await started(3, 0);
    auth = createAuth({ secret: SECRET, redis: { cluster: startNodes(cluster) } });
    expect(await waitsOfLogin(cluster, 'before-user')).toBe(0);

    const master = cluster.ports[0]!;
    const waitsOn = async (port: number) =>
      Number(/cmdstat_wait:calls=(\d+)/.exec(await node(port).info('commandstats'))?.[1] ?? 0);
    const addedAt = Date.now();
    await cluster.addReplica(master);
    // Asked again at the next slot-map refresh, or within 30 s.
    let i = 0;
    while ((await waitsOn(master)) === 0 && Date.now() - addedAt < 40_000) {
      await sleep(500);
      for (let n = 0; n < 6; n++) await waitsOfLogin(cluster, `after-user-${i++}`);
    }
    console.info(
      `writes to the shard waited for its replica ${Date.now() - addedAt} ms after it joined`,
    );
    expect(await waitsOn(master)).toBeGreaterThan(0);
    // Every later login succeeds: those of the shard with a replica wait for it, the others
    // (which no failover can undo) do not wait, and are not refused for want of a replica.
    const others = cluster.ports.slice(1, 3);
    const [before, beforeOthers] = [await waitsOn(master), await Promise.all(others.map(waitsOn))];
    for (let n = 0; n < 24; n++) await waitsOfLogin(cluster, `later-user-${n}`);
    expect(await waitsOn(master)).toBeGreaterThan(before);
    expect(await Promise.all(others.map(waitsOn))).toEqual(beforeOthers);
    await auth!.close();

    // A client of the app's own whose keyPrefix has a hash tag puts every key in that tag's slot:
    // the shard is the prefix's, not the user's.
    for (const [tag, waitsThere] of [
      [await tagOn(master, (port) => port === master), true],
      [await tagOn(master, (port) => port !== master), false],
    ] as const) {
      own = new Cluster(startNodes(cluster), { keyPrefix: `{${tag}}:` }).on('error', () => {});
      auth = createAuth({ secret: SECRET, redis: own });
      const [was, wereOthers] = [await waitsOn(master), await Promise.all(others.map(waitsOn))];
      for (let n = 0; n < 12; n++) await waitsOfLogin(cluster, `prefixed-user-${n}`);
      expect(await Promise.all(others.map(waitsOn)), tag).toEqual(wereOthers);
      if (waitsThere) expect(await waitsOn(master), tag).toBeGreaterThanOrEqual(was + 12);
      else expect(await waitsOn(master), tag).toBe(was);
      await closeAuth();
    }
  }, 120_000);

  it("with the default and its replicas frozen: a write fails naming waitForReplicas, the option to change (not as ioredis's 'Command timed out', whose timer wins a tie with ours)", async () => {
    const cluster = await started(3, 1);
    auth = createAuth({ secret: SECRET, redis: { cluster: startNodes(cluster) } });
    expect(await waitsOfLogin(cluster, 'before-freeze')).toBeGreaterThan(0);
    const replicas = [];
    for (const server of cluster.nodes)
      if (/role:slave/.test(await node(server.port).info('replication'))) replicas.push(server);
    expect(replicas).toHaveLength(3);
    const store = redisStore(
      { cluster: startNodes(cluster) },
      { keyPrefix: 'frozen:', timeout: 1500 },
    );
    const session = (sessionId: string) => ({
      sessionId,
      jti: randomUUID(),
      now: Date.now(),
      expiresAt: Date.now() + 60_000,
      ip: '',
      userAgent: '',
    });
    try {
      await store.create('user-1', session('a1b2c3d4e5f60717'), 0);
      for (const server of replicas) server.pause();
      // WAIT's answer (0 replicas) or the store's timer, whichever comes first: either names the
      // option; WAIT's says its value is the Cluster default, which the user never wrote.
      const failure = await store
        .create('user-1', session('a1b2c3d4e5f60718'), 0)
        .catch((e: unknown) => e);
      console.info(`a write with the replicas frozen: ${String(failure)}`);
      expect(String(failure)).toMatch(
        /reached 0 of the 1 replicas required within \d+ ms \(waitForReplicas: 'replicated', a Cluster's default: one replica for each shard that has one\)|the replica that waitForReplicas asks to confirm the write, did not answer within \d+ ms/,
      );
      const login = await auth.generateTokens({ id: 'while-frozen' }).catch((e: unknown) => e);
      expect(login).toBeInstanceOf(Error);
    } finally {
      for (const server of replicas) server.resume();
      await store.close();
    }
  }, 60_000);

  it('computes each key’s hash slot as Redis does (hash tags included)', async () => {
    const cluster = clusters[0] ?? (await started(3, 0));
    const keys = [
      '',
      'a',
      'auth:{u:alice}',
      'x{}y',
      '{}{a}',
      'a{b',
      'a}b{c}d',
      'é{ü}',
      '{u:%F0%9F%98%80}',
    ];
    for (let n = 0; n < 200; n++) keys.push(`auth:{u:user-${n}}:${n}`, `k${n * 7919}`);
    for (const key of keys)
      expect(keySlot(key), key).toBe(
        Number(await node(cluster.ports[0]!).call('CLUSTER', 'KEYSLOT', key)),
      );
  });
});

describe('a confirmed write that reaches a replica', () => {
  it('by a redirection from an older view: the script, refused there, goes to the master and is confirmed', async () => {
    const cluster = await started(3, 1);
    const client = new Cluster(startNodes(cluster), { scaleReads: 'master' }).on('error', () => {});
    own = client;
    await replicasInSlotMap(cluster);
    await client.ping();
    await new Promise<void>((resolve) => client.refreshSlotsCache(() => resolve()));
    const key = `stale{${randomUUID()}}`;
    const slots = (client as unknown as { slots: string[][] }).slots;
    const [master, replica] = slots[keySlot(key)]!;
    expect(replica, 'the slot map lists a replica').toBeDefined();
    // ioredis's pool keeps its replica connections READONLY: there Redis runs a script itself.
    const toReplica = client.nodes('slave').find((n) => `127.0.0.1:${n.options.port}` === replica);
    await expect(toReplica!.eval(WRITE, 1, key)).rejects.toThrow(
      /READONLY You can't write against a read only replica/,
    );
    // As if a redirection from an older view had named the replica: the slot's node is it.
    slots[keySlot(key)] = [replica!];
    let rechecked = 0;
    const sha = createHash('sha1').update(WRITE).digest('hex');
    const results = await confirmedWrite(
      client,
      (target, text) =>
        text ? (target as Redis).eval(WRITE, 1, key) : (target as Redis).evalsha(sha, 1, key),
      1,
      Date.now() + 5000,
      () => rechecked++,
    );
    expect(results?.[0]).toEqual([null, 1]);
    // WAIT: the master's replica confirmed it.
    expect(results?.[1]).toEqual([null, 1]);
    expect(rechecked).toBe(1);
    expect(await node(Number(master!.split(':')[1])).get(key)).toBe('written');
  }, 60_000);
});
