import { Cluster, Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { clusterAuth } from '../../examples/redis/cluster.js';
import { type Auth, createAuth } from '../../src/index.js';
import {
  contractBreaches,
  FailoverLoad,
  type FailoverLoadOptions,
  meStatus,
  opCounts,
  refusedAfterRevocation,
  resurrections,
  warmUp,
} from '../helpers/failover-load.js';
import { SECRET } from '../helpers/forge.js';
import { serve, type Served } from '../helpers/http.js';
import { idApp } from '../helpers/load.js';
import { RedisCluster } from '../helpers/redis-cluster.js';
import { sendFromArgs } from '../helpers/redis-server.js';
import { Partition, SourceRelay } from '../helpers/split-proxy.js';

/*
 * A real Redis Cluster of 3 masters with one replica each (two in one pair of tests; this file's own), with the README's
 * recommended settings (examples/redis/cluster.ts), under a steady load of logins, refreshes and
 * logouts: a planned CLUSTER FAILOVER of the shard of a live user, then a slot migration of
 * another live user's slot. Nothing the app answered as done comes back, every answer is
 * 200/204/401/409/503 within storeTimeout + 250 ms, and 503s come only from the shard being failed
 * over, around the switch; none from the migration. Then a master killed while its replica lags,
 * and a master cut off from every other node by a network split, the app still reaching it or cut
 * off with it, each with the default (a Cluster with replicas waits for one) and without
 * confirmation (the control); and, on a Cluster with two replicas a master, a split that leaves
 * the master one of them, with the default and with waitForReplicas: 2.
 */

const BOUND_MS = 1000 + 250;
const CLIENTS = 12;
const LOAD: FailoverLoadOptions = {
  clients: CLIENTS,
  boundMs: 5000,
  maxRequests: 20_000,
  maxMs: 60_000,
};
const PREFIX = 'auth:';
const user = (i: number): string => `user-${i}`;
const keyOf = (id: string): string => `${PREFIX}{u:${encodeURIComponent(id)}}`;

let cluster: RedisCluster | undefined;
let auth: Auth | undefined;
let server: Served | undefined;
let load: FailoverLoad | undefined;
let partition: Partition | undefined;
/** The app's relays into the partition, when a test puts it on a side (see SourceRelay). */
let relays: SourceRelay[] = [];
const nodes = new Map<number, Redis>();

process.env.JWT_SECRET ??= SECRET;

afterEach(async () => {
  await load?.stop();
  await server?.close();
  await auth?.close();
  for (const node of nodes.values()) node.disconnect();
  nodes.clear();
  await cluster?.stop();
  await partition?.stop();
  await Promise.all(relays.map((relay) => relay.stop()));
  relays = [];
  [load, server, auth, cluster, partition] = [
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
  ];
});

/** A plain connection to one node, for the cluster commands this test sends. */
function node(port: number): Redis {
  let client = nodes.get(port);
  if (!client) {
    client = new Redis({ port, lazyConnect: true }).on('error', () => {});
    nodes.set(port, client);
  }
  return client;
}

async function id(port: number): Promise<string> {
  return String(await node(port).call('CLUSTER', 'MYID'));
}

async function role(port: number): Promise<string> {
  return /role:(\w+)/.exec(await node(port).info('replication'))?.[1] ?? 'down';
}

/** The port of the master serving `slot`, as the node on `port` sees it. */
async function ownerOf(slot: number, port: number): Promise<number> {
  const slots = (await node(port).call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
  const range = slots.find(([from, to]) => from <= slot && slot <= to);
  if (!range) throw new Error(`no node serves slot ${slot}`);
  return range[2][1];
}

/** The ports of the replicas of the master on `master`. */
async function replicasOf(master: number, ports: number[]): Promise<number[]> {
  const replicas: number[] = [];
  for (const port of ports) {
    const info = await node(port).info('replication');
    if (/role:slave/.test(info) && info.includes(`master_port:${master}\r`)) replicas.push(port);
  }
  return replicas;
}

/** The port of a replica of the master on `master`, if it has one. */
async function replicaOf(master: number, ports: number[]): Promise<number | undefined> {
  return (await replicasOf(master, ports))[0];
}

/**
 * A Cluster of this file's own, 3 masters with `replicas` replicas each, an app on the auth
 * `make` builds for its nodes, every client's user warmed up; and the slot of each client's user.
 * `prepare` is called with the nodes' ports before the app starts.
 */
async function start(
  make: (nodes: { host: string; port: number }[]) => Auth,
  nodeArgs: string[] = [],
  replicas = 1,
  prepare?: (ports: number[]) => Promise<void>,
): Promise<{ ports: number[]; any: number; slotOf: Map<number, number> }> {
  cluster = await RedisCluster.start(3, replicas, nodeArgs);
  const ports = cluster.ports;
  await prepare?.(ports);
  const any = ports[0]!;
  auth = make(ports.map((port) => ({ host: '127.0.0.1', port })));
  server = await serve(idApp(auth));
  await warmUp(
    server.url,
    Array.from({ length: CLIENTS }, (_, i) => user(i)),
  );
  const slotOf = new Map<number, number>();
  for (let i = 0; i < CLIENTS; i++) slotOf.set(i, await userSlot(user(i), any));
  return { ports, any, slotOf };
}

/** The hash slot of the sessions of user `id`, as the node on `port` computes it. */
async function userSlot(id: string, port: number): Promise<number> {
  return Number(await node(port).call('CLUSTER', 'KEYSLOT', keyOf(id)));
}

/** A user (`probe-<n>`) whose sessions the master on `master` holds, as the node on `port` sees it. */
async function userOn(master: number, port: number): Promise<string> {
  for (let i = 0; ; i++)
    if ((await ownerOf(await userSlot(`probe-${i}`, port), port)) === master) return `probe-${i}`;
}

/**
 * Another instance of the app, reaching every node at `ports` from 127.0.0.1 (no split cuts it),
 * and waiting for no replica: a promoted one has none until the old master rejoins.
 */
const otherInstance = (ports: number[]): Auth =>
  createAuth({
    secret: SECRET,
    redis: { cluster: ports.map((port) => ({ host: '127.0.0.1', port })) },
    waitForReplicas: 0,
  });

/** Moves `slot` from the master on `source` to the one on `target`, key by key, as redis-cli's resharding does. */
async function migrateSlot(
  slot: number,
  source: number,
  target: number,
  masters: number[],
): Promise<void> {
  const [sourceId, targetId] = [await id(source), await id(target)];
  await node(target).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId);
  await node(source).call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId);
  await sleep(300);
  for (;;) {
    const keys = (await node(source).call('CLUSTER', 'GETKEYSINSLOT', slot, 100)) as string[];
    if (keys.length === 0) break;
    await node(source).call('MIGRATE', '127.0.0.1', target, '', 0, 5000, 'KEYS', ...keys);
  }
  await sleep(300);
  for (const port of [target, source, ...masters.filter((p) => p !== target && p !== source)])
    await node(port).call('CLUSTER', 'SETSLOT', slot, 'NODE', targetId);
  await until('every master to agree on the moved slot', 10_000, async () => {
    for (const port of masters) if ((await ownerOf(slot, port)) !== target) return false;
    return true;
  });
}

/** The ports of the masters, as each node reports its role. */
async function mastersOf(ports: number[]): Promise<number[]> {
  const masters: number[] = [];
  for (const port of ports) if ((await role(port)) === 'master') masters.push(port);
  return masters;
}

/**
 * What the store reported as unavailable: `redirected`, the failures a Cluster redirection caused
 * (which the store follows, so there must be none), and `all`, every failure with its time, for
 * the line a failing check prints.
 */
function storeFailures(): { redirected: string[]; all: { at: number; what: string }[] } {
  const failures = { redirected: [] as string[], all: [] as { at: number; what: string }[] };
  auth!.on('store_unavailable', ({ operation, error }) => {
    const { message, name, command } = error as Error & { command?: { name?: string } };
    // ioredis sets `command` on an error Redis answered; one without it came from the client.
    const from = command === undefined ? 'the library or client' : `Redis (${command.name})`;
    failures.all.push({ at: Date.now(), what: `${operation}: ${name} from ${from}: ${message}` });
    if (/^(MOVED|ASK) /.test(message)) failures.redirected.push(`${operation}: ${message}`);
  });
  return failures;
}

async function until(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

/** Waits (10 s at most) for a write of one of `shardClients` sent after `since` to succeed, then ends the load. */
async function shardWritesAgainThenStop(shardClients: Set<number>, since: number): Promise<void> {
  await until('a write of the shard to be answered again', 10_000, async () =>
    load!.replies.some(
      (r) =>
        r.sentAt > since &&
        shardClients.has(load!.clientOf.get(r)!) &&
        r.op !== 'me' &&
        (r.status === 200 || r.status === 204),
    ),
  );
  await sleep(500);
  await load!.stop();
}

/**
 * A Cluster for a split test (see start), whose node-to-node traffic (bus and replication) goes
 * through a {@link Partition}: node i sends from an address of its own, 127.0.0.(40 + i)
 * (sendFromArgs), and announces its partition proxies as its ports, so the others reach it
 * through them and the proxies tell the nodes apart. The app and this test reach every node from
 * 127.0.0.1, which no split cuts. Also returns each node's announced port (its proxy) with its
 * own address.
 */
async function startSplittable(
  make: (nodes: { host: string; port: number }[]) => Auth,
  replicas = 1,
): Promise<{ any: number; slotOf: Map<number, number>; addressOf: Map<number, string> }> {
  let addressOf = new Map<number, string>();
  const started = await start(make, [], replicas, async (direct) => {
    addressOf = await behindPartition(direct);
  });
  return { ...started, addressOf };
}

/**
 * Puts the new cluster's nodes behind a {@link Partition} (see startSplittable), before the app
 * has written anything: each node is restarted with its own address and ports on its command
 * line, keeping its nodes.conf. (Redis 6 has no `bind-source-addr` and takes a port announced by
 * CONFIG SET only for what it tells the others, not for its own slot map.) Returns each node's
 * announced port (its proxy) with its own address.
 */
async function behindPartition(direct: number[]): Promise<Map<number, string>> {
  partition = new Partition();
  const addressOf = new Map<number, string>();
  for (const [i, port] of direct.entries()) {
    const address = `127.0.0.${40 + i}`;
    const proxy = await partition.proxy(port, address);
    const bus = await partition.proxy(port + 10_000, address);
    addressOf.set(proxy, address);
    await cluster!.nodes[i]!.restart([
      ...sendFromArgs(address),
      '--cluster-announce-ip',
      '127.0.0.1',
      '--cluster-announce-port',
      String(proxy),
      '--cluster-announce-bus-port',
      String(bus),
    ]);
  }
  const announced = new Set([...addressOf.keys()].map(String));
  await until('every node to know the others by their proxies, and settle', 30_000, async () => {
    for (const port of direct) {
      const healthy = String(await node(port).call('CLUSTER', 'NODES'))
        .trim()
        .split('\n')
        .every((line) => {
          const [, address = '', flags = '', , , , , link] = line.split(' ');
          const known = address.split('@')[0]!.split(':')[1]!;
          return (
            announced.has(known) && !/fail|handshake|noaddr/.test(flags) && link === 'connected'
          );
        });
      // A replica must replicate through its master's proxy, so that a split cuts it off.
      const master = /master_port:(\d+)/.exec(await node(port).info('replication'))?.[1];
      if (!healthy || (master !== undefined && !announced.has(master))) return false;
    }
    return cluster!.settled();
  });
  return addressOf;
}

/** The app's own address when a test puts it on the cut-off side of a split (see SourceRelay). */
const APP_ADDRESS = '127.0.0.50';

/**
 * Replaces the app start() made (which knew the nodes by their own ports) with one, made by
 * `make`, that reaches every node only through a relay from APP_ADDRESS: its seeds are the
 * relays, and `routes` (its natMap) takes every address of the slot map, a node's proxy, to the
 * relay to it. Isolating APP_ADDRESS with a node then leaves the app on that node's side.
 */
async function appThroughRelays(
  ports: number[],
  routes: Map<string, { host: string; port: number }>,
  make: (nodeList: { host: string; port: number }[]) => Auth,
): Promise<void> {
  for (const port of ports) {
    const relay = await SourceRelay.start(port, APP_ADDRESS);
    relays.push(relay);
    routes.set(`127.0.0.1:${port}`, { host: '127.0.0.1', port: relay.port });
  }
  await server!.close();
  await auth!.close();
  auth = make(relays.map((relay) => ({ host: '127.0.0.1', port: relay.port })));
  server = await serve(idApp(auth));
  await warmUp(
    server.url,
    Array.from({ length: CLIENTS }, (_, i) => user(i)),
  );
}

describe('Cluster failover and slot migration under load (Redis Clusters of this file’s own)', () => {
  it('planned CLUSTER FAILOVER and a live slot migration: 0 resurrected, 503s only from the shard while it has no master', async () => {
    const { ports, any, slotOf } = await start(clusterAuth);
    const masterOf = async (i: number): Promise<number> => ownerOf(slotOf.get(i)!, any);
    // A redirection is the store's to follow, to a node its connections knew or not (the
    // promoted replica, left out of a slot map taken before it had replicated): never a 503.
    const failures = storeFailures();

    load = new FailoverLoad(server!.url, user, LOAD);
    await sleep(1500);

    // 1. A planned failover of user-0's shard: its replica takes over.
    const oldMaster = await masterOf(0);
    const shardClients = new Set<number>();
    for (let i = 0; i < CLIENTS; i++) if ((await masterOf(i)) === oldMaster) shardClients.add(i);
    const oldId = await id(oldMaster);
    const replica = await replicaOf(oldMaster, ports);
    expect(replica, `replica of ${oldId}`).toBeDefined();
    const failoverAt = Date.now();
    expect(await node(replica!).call('CLUSTER', 'FAILOVER')).toBe('OK');
    await until('the replica to take over', 20_000, async () => {
      return (await role(replica!)) === 'master' && (await role(oldMaster)) === 'slave';
    });
    const failedOverAt = Date.now();
    await sleep(1500);

    // 2. Migrate the slot of a live user on another shard to a third master, key by key.
    let moved = 1;
    while ((await masterOf(moved)) === replica || (await masterOf(moved)) === oldMaster) moved++;
    const source = await masterOf(moved);
    const masters = await mastersOf(ports);
    const target = masters.find((p) => p !== source)!;
    const migrationAt = Date.now();
    await migrateSlot(slotOf.get(moved)!, source, target, masters);
    const migratedAt = Date.now();
    await sleep(1500);
    await load.stop();

    const replies = load.replies;
    const unavailable = replies.filter((r) => r.status === 503);
    const line = `cluster: ${replies.length} requests, failover ${failedOverAt - failoverAt} ms, migration ${migratedAt - migrationAt} ms, ${unavailable.length} answered 503, slowest ${Math.max(...replies.map((r) => r.ms))} ms, ${load.rotated.length} rotations and ${load.ended.length} ends audited ${JSON.stringify(opCounts(replies))}; ${load.stalls}`;
    console.info(line);
    expect(contractBreaches(load, BOUND_MS), line).toEqual([]);
    expect(failures.redirected, line).toEqual([]);
    expect(load.count('refresh', 200)).toBeGreaterThan(50);
    expect(load.count('logout', 204)).toBeGreaterThan(10);
    // The moved user kept being served through the migration.
    expect(
      replies.some((r) => r.sentAt > migrationAt && r.sentAt < migratedAt && r.status === 200),
    ).toBe(true);
    // 503s only from the failed-over shard's clients, sent before its new master had taken over.
    const clientOf = new Map(load.clientOf.entries());
    const outside = unavailable.filter(
      (r) =>
        !shardClients.has(clientOf.get(r)!) ||
        r.sentAt + r.ms < failoverAt ||
        r.sentAt > failedOverAt + 100,
    );
    const failed = failures.all
      .slice(0, 40)
      .map(({ at, what }) => `+${at - failoverAt} ms ${what}`);
    expect(
      outside.map(
        (r) =>
          `client ${clientOf.get(r)} ${r.op} sent at +${r.sentAt - failoverAt} ms, answered in ${r.ms} ms`,
      ),
      `${line}; the store's failures: ${JSON.stringify(failed)}`,
    ).toEqual([]);

    const audit = new Cluster(
      ports.map((port) => ({ host: '127.0.0.1', port })),
      { lazyConnect: true },
    ).on('error', () => {});
    try {
      expect(await resurrections(audit, PREFIX, load), line).toEqual([]);
    } finally {
      audit.disconnect();
    }
  }, 120_000);

  // The replica is frozen and cut off from its master, then the master is killed: what the master
  // acknowledged meanwhile never reached the replica that takes over. The default waits for a
  // replica on a Cluster that has them, so none of it was answered as done; the control
  // (waitForReplicas: 0) shows that the same run does lose acknowledged writes.
  for (const waitForReplicas of [undefined, 0] as const) {
    const title =
      waitForReplicas === undefined
        ? 'the default (a replica confirms each write): 0 resurrected, writes answer again once the old master is back as a replica'
        : 'waitForReplicas: 0 (the control): the audit sees writes the failover undid';
    it(`master killed (SIGKILL) while its replica lags: ${title}`, async () => {
      const { ports, any, slotOf } = await start((nodes) =>
        createAuth({
          secret: SECRET,
          redis: { cluster: nodes },
          ...(waitForReplicas === undefined ? {} : { waitForReplicas }),
        }),
      );
      const oldMaster = await ownerOf(slotOf.get(0)!, any);
      const shardClients = new Set<number>();
      for (let i = 0; i < CLIENTS; i++)
        if ((await ownerOf(slotOf.get(i)!, any)) === oldMaster) shardClients.add(i);
      const replica = await replicaOf(oldMaster, ports);
      expect(replica, `replica of ${oldMaster}`).toBeDefined();
      const serverOn = (port: number) => cluster!.nodes[ports.indexOf(port)]!;

      load = new FailoverLoad(server!.url, user, LOAD);
      await sleep(1500);
      // Freeze the replica, and drop its link on the master's side: what the master takes from
      // now on stays in its own backlog, not in a socket buffer the replica could still read.
      serverOn(replica!).pause();
      await node(oldMaster).call('CLIENT', 'KILL', 'TYPE', 'replica');
      const laggingAt = Date.now();
      await sleep(1500);
      const killedAt = Date.now();
      await serverOn(oldMaster).kill();
      serverOn(replica!).resume();
      await until(
        'the replica to take over',
        30_000,
        async () => (await role(replica!)) === 'master',
      );
      const promotedAt = Date.now();
      // Audited at once, before later refreshes can turn an undone rotation into a reuse that
      // revokes its family (which would hide it from the audit).
      const audit = new Cluster(
        ports.filter((port) => port !== oldMaster).map((port) => ({ host: '127.0.0.1', port })),
        { lazyConnect: true },
      ).on('error', () => {});
      try {
        const undoneAtPromotion = await resurrections(audit, PREFIX, load);
        // Back as an empty node (an operator's restart): it rejoins as the new master's replica.
        await serverOn(oldMaster).restart();
        await until('the old master to rejoin as a replica', 30_000, async () =>
          /master_link_status:up/.test(await node(oldMaster).info('replication')),
        );
        const rejoinedAt = Date.now();
        await shardWritesAgainThenStop(shardClients, rejoinedAt);

        const replies = load.replies;
        const line = `cluster, master killed, waitForReplicas ${waitForReplicas ?? 'default'}: ${replies.length} requests, lagging from ${laggingAt} for ${killedAt - laggingAt} ms before the kill, promoted after ${promotedAt - killedAt} ms, ${replies.filter((r) => r.status === 503).length} answered 503, ${undoneAtPromotion.length} resurrected at the promotion ${JSON.stringify(opCounts(replies))}; ${load.stalls}`;
        console.info(line);
        expect(contractBreaches(load, BOUND_MS), line).toEqual([]);
        const undone = await resurrections(audit, PREFIX, load);
        if (waitForReplicas === undefined) {
          expect(undoneAtPromotion, line).toEqual([]);
          expect(undone, line).toEqual([]);
          // Writes that reached the frozen replica's shard while it lagged were answered 503.
          expect(
            replies.some(
              (r) =>
                r.status === 503 &&
                r.sentAt >= laggingAt &&
                r.sentAt < killedAt &&
                shardClients.has(load!.clientOf.get(r)!),
            ),
            line,
          ).toBe(true);
        } else expect(undoneAtPromotion.length, line).toBeGreaterThan(0);
      } finally {
        audit.disconnect();
      }
    }, 180_000);
  }

  // A network split: a master cut off from every other node (its replica included). The
  // majority fails its shard over to the replica; the cut-off master stops answering once it has
  // missed the majority for cluster-node-timeout (5 s here): writes and, as
  // cluster-allow-reads-when-down is no, reads too (CLUSTERDOWN). On healing it rejoins as the
  // new master's replica, dropping what it took meanwhile. The default waits for a replica,
  // which the cut-off master cannot reach: none of that was answered as done. The control
  // (waitForReplicas: 0) answers it, and loses it.
  // Two sides for the app: it still reaches every node, or it is cut off with that master: it
  // reaches the nodes only through relays the partition counts as one more node on the cut-off
  // side, so the split leaves it that master alone. Either way, a session another instance of
  // the app ends on the majority's side during the split is never accepted: the cut-off master
  // stopped answering before its replica could take over.
  // Then two replicas a shard, the split leaving the master one of them: that one confirms
  // WAIT 1 until the master stops answering, while the majority promotes the other one, so the
  // default loses what it confirmed; waiting for both replicas (waitForReplicas: 2) loses nothing.
  const splits = [
    { appCutOff: false, keptReplica: false, waits: [undefined, 0] },
    { appCutOff: true, keptReplica: false, waits: [undefined, 0] },
    { appCutOff: false, keptReplica: true, waits: [undefined, 2] },
  ] as const;
  for (const { appCutOff, keptReplica, waits } of splits)
    for (const waitForReplicas of waits) {
      const loses = waitForReplicas === 0 || (keptReplica && waitForReplicas === undefined);
      const name = keptReplica
        ? 'two replicas a shard, one left with the cut-off master'
        : appCutOff
          ? 'the app cut off with a master from the other nodes'
          : 'a master cut off from the other nodes, the app still reaching it';
      const title = keptReplica
        ? waitForReplicas === undefined
          ? 'the default (1) is confirmed by the replica left behind: the audit sees writes the split undid'
          : 'waitForReplicas: 2: 0 resurrected'
        : waitForReplicas !== undefined
          ? 'waitForReplicas: 0 (the control): the audit sees writes the split undid'
          : appCutOff
            ? 'the default: 0 resurrected, and no session ended on the other side accepted'
            : 'the default (a replica confirms each write): 0 resurrected';
      it(`network split, ${name}: ${title}`, async () => {
        const routes = new Map<string, { host: string; port: number }>();
        const make = (nodeList: { host: string; port: number }[]): Auth =>
          createAuth({
            secret: SECRET,
            redis: { cluster: nodeList, natMap: (key: string) => routes.get(key) ?? null },
            ...(waitForReplicas === undefined ? {} : { waitForReplicas }),
          });
        const { any, slotOf, addressOf } = await startSplittable(make, keptReplica ? 2 : 1);
        // The nodes as the cluster announces them: their proxies.
        const ports = [...addressOf.keys()];
        if (appCutOff) await appThroughRelays(ports, routes, make);
        const oldMaster = await ownerOf(slotOf.get(0)!, any);
        expect(ports, 'the slot map names the proxies').toContain(oldMaster);
        const shardClients = new Set<number>();
        for (let i = 0; i < CLIENTS; i++)
          if ((await ownerOf(slotOf.get(i)!, any)) === oldMaster) shardClients.add(i);
        // The replica the majority promotes, and the one the split leaves with the old master.
        const [replica, kept] = await replicasOf(oldMaster, ports);
        expect(replica, `replica of ${oldMaster}`).toBeDefined();
        if (keptReplica) expect(kept, `second replica of ${oldMaster}`).toBeDefined();
        // A user of the cut-off shard whose session another instance of the app will end.
        const probeId = await userOn(oldMaster, any);
        const probe = await auth!.generateTokens({ id: probeId });
        // Checked once before the split, as a user active then would be (and so cached, with
        // sessionCache).
        expect(await meStatus(server!.url, probe.access_token)).toBe(200);

        load = new FailoverLoad(server!.url, user, LOAD);
        await sleep(1500);
        const splitAt = Date.now();
        partition!.isolate(
          addressOf.get(oldMaster)!,
          ...(keptReplica ? [addressOf.get(kept!)!] : []),
          ...(appCutOff ? [APP_ADDRESS] : []),
        );
        await until(
          'the replica to take over',
          30_000,
          async () => (await role(replica!)) === 'master',
        );
        const promotedAt = Date.now();
        const other = waitForReplicas !== 0 ? otherInstance(ports) : undefined;
        // Audited from the majority's side at once too, as in the kill test: later refreshes
        // can turn an undone rotation into a reuse that revokes its family, hiding it from the
        // audit after the heal.
        const majority = new Cluster(
          ports
            .filter((port) => port !== oldMaster && port !== kept)
            .map((port) => ({ host: '127.0.0.1', port })),
          { lazyConnect: true },
        ).on('error', () => {});
        try {
          const refusal =
            other && refusedAfterRevocation(other, probeId, server!.url, probe.access_token);
          // Awaited below; handled now, so a failure meanwhile is not an unhandled rejection.
          refusal?.catch(() => {});
          const atPromotion = resurrections(majority, PREFIX, load);
          atPromotion.catch(() => {});
          // The cut-off side stays cut off a while longer, as a real split would.
          await sleep(2000);
          const undoneAtPromotion = await atPromotion;
          partition!.heal();
          await until('the old master to rejoin as a replica', 30_000, async () => {
            const info = await node(oldMaster).info('replication');
            return /role:slave/.test(info) && /master_link_status:up/.test(info);
          });
          const rejoinedAt = Date.now();
          await shardWritesAgainThenStop(shardClients, rejoinedAt);
          const refused = await refusal;

          const replies = load.replies;
          const what = `cluster, network split, ${keptReplica ? 'a replica left with the master, ' : ''}${appCutOff ? 'the app cut off, ' : ''}waitForReplicas ${waitForReplicas ?? 'default'}`;
          const line = `${what}: ${replies.length} requests, promoted ${promotedAt - splitAt} ms after the split, healed about 2 s later, the old master a replica ${rejoinedAt - splitAt} ms after the split, ${replies.filter((r) => r.status === 503).length} answered 503 ${JSON.stringify(opCounts(replies))}${refused ? `; the session ended on the other side: accepted ${refused.accepted} times more, refused ${refused.ms} ms after its revocation` : ''}; ${load.stalls}`;
          console.info(line);
          expect(contractBreaches(load, BOUND_MS), line).toEqual([]);
          if (refused) expect(refused.accepted, line).toBe(0);
          const audit = new Cluster(
            ports.map((port) => ({ host: '127.0.0.1', port })),
            { lazyConnect: true },
          ).on('error', () => {});
          try {
            const undone = await resurrections(audit, PREFIX, load);
            console.info(
              `${what}: ${undoneAtPromotion.length} resurrected at the promotion, ${undone.length} after the heal`,
            );
            if (loses) expect(undoneAtPromotion.length, line).toBeGreaterThan(0);
            else {
              expect(undoneAtPromotion, line).toEqual([]);
              expect(undone, line).toEqual([]);
              // Not vacuous: the shard's writes were tried during the split, and refused.
              expect(
                replies.some(
                  (r) =>
                    r.status === 503 &&
                    r.op !== 'me' &&
                    r.sentAt >= splitAt &&
                    r.sentAt < promotedAt &&
                    shardClients.has(load!.clientOf.get(r)!),
                ),
                line,
              ).toBe(true);
            }
          } finally {
            audit.disconnect();
          }
        } finally {
          majority.disconnect();
          await other?.close();
        }
      }, 180_000);
    }

  // The session cache answers a check from memory, so the cut-off master's CLUSTERDOWN never
  // reaches an app whose only requests for that shard are cached checks: nothing would rebuild
  // its feeds (ioredis refreshes its slot map on errors, and has no refresh interval by default)
  // before the split healed, and a session ended on the majority's side meanwhile would be
  // accepted from memory. The feed of a Cluster node asks it for its cluster state at each
  // heartbeat: a master cut off from the majority says fail after cluster-node-timeout, before
  // its replica can take over, and the cache is dropped then.
  it('network split with sessionCache and no other traffic: a cached session ended on the majority side is never accepted', async () => {
    const { any, addressOf } = await startSplittable((nodeList) =>
      createAuth({ secret: SECRET, redis: { cluster: nodeList }, sessionCache: true }),
    );
    const ports = [...addressOf.keys()];
    const probeId = 'probe';
    const oldMaster = await ownerOf(await userSlot(probeId, any), any);
    const replica = await replicaOf(oldMaster, ports);
    expect(replica, `replica of ${oldMaster}`).toBeDefined();
    const probe = await auth!.generateTokens({ id: probeId });
    // Checked twice before the split: the second answer comes from the cache.
    for (let i = 0; i < 2; i++) expect(await meStatus(server!.url, probe.access_token)).toBe(200);

    const splitAt = Date.now();
    partition!.isolate(addressOf.get(oldMaster)!);
    await until(
      'the replica to take over',
      30_000,
      async () => (await role(replica!)) === 'master',
    );
    const promotedAt = Date.now();
    const other = otherInstance(ports);
    try {
      const refusal = refusedAfterRevocation(other, probeId, server!.url, probe.access_token);
      refusal.catch(() => {});
      await sleep(3000);
      partition!.heal();
      const refused = await refusal;
      const line = `cluster, network split, sessionCache, no other traffic: promoted ${promotedAt - splitAt} ms after the split; the cached session ended on the other side: accepted ${refused.accepted} times more, refused ${refused.ms} ms after its revocation`;
      console.info(line);
      expect(refused.accepted, line).toBe(0);
    } finally {
      await other.close();
    }
  }, 120_000);

  // Nodes that announce an address the app reaches by another (NAT, containers): the Cluster
  // client's natMap turns each announced address into a reachable one. A confirmed write that
  // meets a moved slot follows the MOVED to the node natMap names, on its first try.
  it('natMap: a write to a moved slot follows the redirection through the map', async () => {
    const ANNOUNCED = '127.0.0.2';
    const { ports, any, slotOf } = await start(
      (nodes) =>
        createAuth({
          secret: SECRET,
          redis: {
            cluster: nodes,
            natMap: (key: string) => {
              const [host, port] = key.split(':');
              return host === ANNOUNCED ? { host: '127.0.0.1', port: Number(port) } : null;
            },
          },
        }),
      ['--bind', '127.0.0.1', ANNOUNCED, '--cluster-announce-ip', ANNOUNCED],
    );
    const { redirected } = storeFailures();
    const pair = await auth!.generateTokens({ id: user(0) });
    const source = await ownerOf(slotOf.get(0)!, any);
    const masters = await mastersOf(ports);
    await migrateSlot(
      slotOf.get(0)!,
      source,
      masters.find((p) => p !== source)!,
      masters,
    );

    const rotated = await auth!.refreshTokens(pair.refresh_token);
    expect(redirected).toEqual([]);
    expect(await auth!.checkRefreshToken(rotated.refresh_token)).toBe(true);
  }, 120_000);
});
