import type { Cluster, Redis } from 'ioredis';
import { bounded, StoreTimeoutError } from './bounded.js';
import { keySlot } from './cluster-slots.js';
import { type ReplicaWatch, watchReplicas } from './cluster-replicas.js';
import { type IoRedisClient, quietFailoverDetector } from './redis-connection.js';
import {
  BATCHED_WRITES,
  type BatchedName,
  batched,
  confirmedWrite,
  EVALUATE,
  type Evaluate,
  type ScriptArgs,
  type ScriptedTarget,
  type ScriptName,
  type Write,
} from './redis-scripts.js';
import { TurnBatcher } from './turn-batcher.js';

/** Connections for confirmed writes (see `writers`), besides the one for reads. */
const WRITER_CONNECTIONS = 4;
/** ioredis's error for a command that outlived its `commandTimeout` (ioredis 5 and 6). */
const IOREDIS_TIMEOUT = 'Command timed out';

/** A write the master took but too few replicas confirmed in time: a failover could undo it. */
export class ReplicationError extends Error {
  /** `setting`: the store's waitForReplicas, as the user gave it or as the topology's default set it. */
  constructor(wanted: number, got: number, ms: number, setting: number | 'replicated') {
    const option =
      setting === 'replicated'
        ? `waitForReplicas: 'replicated', a Cluster's default: one replica for each shard that has one`
        : `waitForReplicas: ${setting}`;
    super(
      `the write reached ${got} of the ${wanted} replicas required within ${ms} ms (${option}): a master with fewer replicas connected and in sync cannot confirm a write; see the README, "Redis topologies"`,
    );
    this.name = 'ReplicationError';
  }
}

export interface ScriptWritesOptions {
  /** Every write settles within this many ms, the wait for replicas included. */
  timeout: number;
  /**
   * Replicas that must have a write (Redis `WAIT`) before it counts as done; 0 answers as soon as
   * the master has it. `'replicated'` (a Cluster's default): 1 for the writes of each shard
   * whose master has a replica, else 0 (see watchReplicas, cluster-replicas.ts).
   */
  waitForReplicas: number | 'replicated';
}

/**
 * How the Redis store's write scripts reach Redis: batched with the turn's others of their kind
 * on a single node, bounded in time, and, with `waitForReplicas`, confirmed by replicas (`WAIT`)
 * on connections of their own before they count as done.
 */
export class ScriptWrites {
  /**
   * Where confirmed writes go: connections of their own, because `WAIT` blocks the connection it
   * runs on until the replicas answer. Session checks must not queue behind it, and with several
   * connections one write's confirmation does not hold up the next one's.
   */
  private readonly writers: { client: IoRedisClient; busy: number }[] = [];
  /** Replicas each write waits for: options.waitForReplicas (0 with `'replicated'`). */
  private readonly wanted: number;
  /**
   * With `'replicated'` on a Cluster: 1 for each hash slot whose master has a replica (its writes
   * wait for one), else 0. Undefined until first known.
   */
  private slotsWaiting: Uint8Array | undefined;
  /** `'replicated'` until the Cluster's replicas are known: no write goes out before, unconfirmed. */
  private deciding: Promise<void> | undefined;
  /** With `'replicated'` on a Cluster: which shards have a replica, asked again as it changes. */
  private readonly replicaWatch: ReplicaWatch | undefined;
  /** The client's own `keyPrefix`, which Redis sees in front of ours (a key's slot includes it). */
  private readonly clientPrefix: string;
  /**
   * The hot writes (logins, rotations), one command per kind per turn of the event loop (see
   * TurnBatcher). Single node only: one batch's keys may lie in different Cluster slots.
   */
  private readonly batchedWrites = new Map<ScriptName, TurnBatcher<Write, number>>();

  /** `keepConnecting` is given each writer connection this opens (see RedisStore). */
  constructor(
    private readonly client: IoRedisClient,
    private readonly options: ScriptWritesOptions,
    private readonly keepConnecting: (client: IoRedisClient) => void,
  ) {
    this.clientPrefix = client.options.keyPrefix ?? '';
    this.wanted = options.waitForReplicas === 'replicated' ? 0 : options.waitForReplicas;
    if (this.wanted > 0) this.addWriters();
    else if (options.waitForReplicas === 'replicated' && client.isCluster) {
      const watch = watchReplicas(
        client as Cluster,
        (command) => bounded(command, options.timeout, 'Redis'),
        (slots) => {
          this.slotsWaiting = slots;
          if (this.writers.length === 0 && slots.includes(1)) this.addWriters();
        },
      );
      this.replicaWatch = watch;
      // Writes wait (bounded) for the first answer.
      this.deciding = watch.first.then(() => {
        this.deciding = undefined;
      });
    }
    if (!client.isCluster)
      for (const [name, batchedName] of Object.entries(BATCHED_WRITES) as [
        ScriptName,
        BatchedName,
      ][])
        this.batchedWrites.set(
          name,
          new TurnBatcher(
            ({ key, args }) => this.writeOne(name, key, args),
            (writes) => this.writeMany(batchedName, writes),
          ),
        );
  }

  /** A write script's result: batched with the turn's others of its kind where it can be. */
  write(name: ScriptName, key: string, ...args: ScriptArgs): Promise<number> {
    const batcher = this.batchedWrites.get(name);
    return batcher === undefined ? this.writeOne(name, key, args) : batcher.add({ key, args });
  }

  /** Stops watching the Cluster's replicas; returns the connections this opened, for the caller to quit. */
  close(): IoRedisClient[] {
    this.replicaWatch?.stop();
    return this.writers.map((writer) => writer.client);
  }

  /** The connections confirmed writes go through (see `writers`). */
  private addWriters(): void {
    for (let i = 0; i < WRITER_CONNECTIONS; i++) {
      // ioredis 6 types duplicate() per class, so a call on the union does not compile.
      const writer: IoRedisClient = this.client.isCluster
        ? (this.client as Cluster).duplicate()
        : quietFailoverDetector((this.client as Redis).duplicate());
      writer.on('error', () => {});
      this.keepConnecting(writer);
      this.writers.push({ client: writer, busy: 0 });
    }
  }

  private async writeOne(name: ScriptName, key: string, args: ScriptArgs): Promise<number> {
    return Number(
      await this.runScript(
        (target) => (target as ScriptedTarget)[name](key, ...args),
        (target, text) => EVALUATE[name](target, text, 1, [key, ...args]),
        key,
      ),
    );
  }

  /** Several calls of one write script, in one batched script call (single node). */
  private async writeMany(name: BatchedName, writes: Write[]): Promise<(number | Error)[]> {
    const argv: ScriptArgs = writes.map((write) => write.key);
    for (const { args } of writes) argv.push(args.length, ...args);
    const results = (await this.runScript(
      (target) => batched(target, name, writes.length, argv),
      (target, text) => EVALUATE[name](target, text, writes.length, argv),
    )) as unknown[];
    return results.map((result) => (result instanceof Error ? result : Number(result)));
  }

  /**
   * Runs a write script, bounded in time: `invoke` calls it on the client, or, with
   * `waitForReplicas`, `evaluate` queues it on a writer's pipeline (see Evaluate), with
   * a `WAIT` after it in the same round trip, on the same connection (so, on a Cluster, on the
   * node that ran the script): the write only counts once that many replicas have it, and a
   * failover cannot undo it.
   */
  private async runScript(
    invoke: (target: object) => unknown,
    evaluate: Evaluate,
    key?: string,
  ): Promise<unknown> {
    // One bound for the whole call, the wait for the Cluster's replicas included.
    const deadline = Date.now() + this.options.timeout;
    if (this.deciding !== undefined) await bounded(this.deciding, this.options.timeout, 'Redis');
    const started = Date.now();
    const ms = Math.max(1, deadline - started);
    const wanted =
      this.slotsWaiting !== undefined && key !== undefined
        ? // The slot of the key as Redis sees it: the client's own prefix in front.
          this.slotsWaiting[keySlot(this.clientPrefix + key)]!
        : this.wanted;
    if (wanted === 0) return bounded(invoke(this.client) as Promise<unknown>, ms, 'Redis');
    const writer = this.writers.reduce((a, b) => (b.busy < a.busy ? b : a));
    // Busy until Redis answers, even past our timeout: the connection is blocked until then.
    writer.busy++;
    const exec = confirmedWrite(writer.client, evaluate, wanted, deadline, () =>
      this.replicaWatch?.recheck(),
    );
    exec.then(
      () => writer.busy--,
      () => writer.busy--,
    );
    // WAIT's own timeout ends near ours (Redis checks it about every 100 ms), so a master with
    // no replica in sync mostly ends here: the error says what the write was waiting for.
    const waitingFor = `Redis, or the ${wanted === 1 ? 'replica' : `${wanted} replicas`} that waitForReplicas asks to confirm the write,`;
    const results = await bounded(exec, ms, waitingFor);
    const [script, wait] = results ?? [];
    if (!script || !wait) throw new Error('the write pipeline returned no results');
    if (script[0]) throw script[0];
    // The client's commandTimeout (ours, when we made the client) was armed as WAIT was sent,
    // before our timer, and wins a tie with it: the same timeout, said the same way.
    // An app's own client may time out sooner than the store: the time is the one waited.
    if (wait[0])
      throw (wait[0] as Error).message === IOREDIS_TIMEOUT
        ? new StoreTimeoutError(waitingFor, Math.min(ms, Date.now() - started))
        : wait[0];
    const got = Number(wait[1]);
    if (!(got >= wanted)) throw new ReplicationError(wanted, got, ms, this.options.waitForReplicas);
    return script[1];
  }
}
