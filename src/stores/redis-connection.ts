import { Cluster, type ClusterNode, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import { AuthConfigError } from '../errors.js';
import {
  isWholeNumber,
  noMisspelt,
  shown,
  stripUndefined,
  warn,
  warnOnce,
} from '../config/validate.js';
import { restoreFastStringMethods } from './fast-strings.js';

// This module imports ioredis, so ioredis has loaded by now (fast-strings.ts says why this runs).
restoreFastStringMethods();

/** The ioredis classes the library drives (internal: the public type is {@link RedisClient}). */
export type IoRedisClient = Redis | Cluster;

/**
 * An ioredis `Redis` or `Cluster` instance, of ioredis 5 or 6. Structural on purpose: ioredis's
 * classes have private members, so naming them here would tie users to the one copy of ioredis
 * this package was compiled against, and a client from another major (or another copy in
 * node_modules) would not compile (TS2322). The store drives it through ioredis's own API.
 */
export interface RedisClient {
  defineCommand(
    name: string,
    definition: { lua: string; numberOfKeys?: number | undefined; readOnly?: boolean | undefined },
  ): void;
  zscore(...args: never[]): unknown;
  duplicate(...args: never[]): unknown;
  quit(): Promise<unknown>;
  disconnect(...args: never[]): void;
  readonly isCluster: boolean;
  readonly options: object;
}

/**
 * Connection settings for a client the library creates and owns: ioredis options for one node
 * (with `tls` for TLS, and optionally `url` for a `redis://`/`rediss://` URL the other options
 * complete), or `sentinels` + `name` for Sentinel.
 */
export type RedisConnectionOptions = RedisOptions & {
  /** A `redis://` or `rediss://` URL; the other options complete it (e.g. `tls: { ca }`). */
  url?: string | undefined;
};

/** A Redis Cluster the library connects to: the startup nodes, and ioredis Cluster options. */
export type ClusterConnectionOptions = ClusterOptions & {
  cluster: ClusterNode[];
};

/** What the `redis` option accepts. */
export type RedisOption = RedisClient | string | RedisConnectionOptions | ClusterConnectionOptions;

export type Topology = 'single' | 'sentinel' | 'cluster';

/**
 * The address ioredis connects to for `address` ("host:port" as Redis or a sentinel names it),
 * through a client's `natMap` (an object or a function); undefined when it maps nothing there.
 */
export function natMapped(
  natMap: unknown,
  address: string,
): { host: string; port: number } | undefined {
  const map = natMap as
    | Record<string, { host: string; port: number }>
    | ((key: string) => { host: string; port: number } | null | undefined)
    | undefined;
  return (typeof map === 'function' ? map(address) : map?.[address]) ?? undefined;
}

export interface RedisConnection {
  client: IoRedisClient;
  /** The library created the client, so it quits it on close. */
  owned: boolean;
  topology: Topology;
}

export function isRedisClient(value: unknown): value is RedisClient {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as RedisClient).defineCommand === 'function' &&
    typeof (value as RedisClient).zscore === 'function'
  );
}

const URL_EXAMPLE = 'e.g. redis://127.0.0.1:6379/0 or rediss://user:pass@redis.example.com:6380';

function checkUrl(name: string, url: unknown): string {
  if (typeof url !== 'string' || url.trim() === '')
    throw new AuthConfigError(name, `must be a non-empty Redis URL (${URL_EXAMPLE})`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new AuthConfigError(name, `is not a valid URL (${URL_EXAMPLE})`, { cause });
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:')
    throw new AuthConfigError(
      name,
      `must use the redis: or rediss: scheme, not ${parsed.protocol} (${URL_EXAMPLE})`,
    );
  if (parsed.hostname === '') throw new AuthConfigError(name, `names no host (${URL_EXAMPLE})`);
  if (parsed.pathname !== '' && parsed.pathname !== '/' && !/^\/\d{1,2}$/.test(parsed.pathname))
    throw new AuthConfigError(name, `has a database path that is not a number (${URL_EXAMPLE})`);
  // ioredis takes query parameters as options too: ?db=abc would be its SELECT's to refuse.
  const db = parsed.searchParams.get('db');
  if (db !== null && !/^\d{1,9}$/.test(db))
    throw new AuthConfigError(
      name,
      `has a db query parameter that is not a number (${URL_EXAMPLE})`,
    );
  return url;
}

/** A `READONLY` reply means we are talking to a replica (a demoted master): reconnect, and do not resend. */
function reconnectOnReadOnly(error: Error): boolean {
  return error.message.startsWith('READONLY');
}

/** What a Sentinel client's failover detector holds (ioredis internals, read defensively). */
interface WithFailoverDetector {
  connector?:
    | {
        failoverDetector?: { sentinels?: { client?: Redis | undefined }[] | undefined } | undefined;
      }
    | undefined;
}

const ignore = (): void => {};

/**
 * ioredis's failover detector (`failoverDetector: true`) subscribes to `+switch-master` on every
 * known sentinel through connections of its own that have no `error` listener, so a sentinel
 * that is down when the client (re)connects makes ioredis print "[ioredis] Unhandled error
 * event" stack traces to stderr (ioredis issue 1600), which the app cannot catch. The detector
 * is made anew at each connection, before the client's `connect` event: that event gives each of
 * its connections a listener, as ioredis gives the sentinel connections it asks for the master.
 * Nothing is lost: the detector reconnects by itself, and the client's own errors still reach
 * the client's listeners. A client that is not a Sentinel one, or an ioredis whose internals
 * differ, is left as it is. Returns the client.
 */
export function quietFailoverDetector<C extends IoRedisClient>(client: C): C {
  if (client.isCluster || !Array.isArray((client as Redis).options.sentinels)) return client;
  const quiet = (): void => {
    const sentinels = (client as WithFailoverDetector).connector?.failoverDetector?.sentinels;
    if (!Array.isArray(sentinels)) return;
    for (const { client: watcher } of sentinels)
      if (watcher !== undefined && watcher.listenerCount('error') === 0)
        watcher.on('error', ignore);
  };
  // Now too: a client passed in may be connected already, with its detector made.
  quiet();
  client.on('connect', quiet);
  return client;
}

/**
 * The option names ioredis 5 and 6 read (of a node's connection, Sentinel, a Cluster, and Node's
 * net socket options they hand on), and ours (`url`, `cluster`): a name one letter off one of
 * these is refused (see noMisspelt), any other passes.
 */
const IOREDIS_OPTION_NAMES = [
  ...['url', 'cluster', 'redisOptions', 'Connector', 'keyPrefix', 'showFriendlyErrorStack'],
  // a node's connection
  ...['host', 'port', 'path', 'family', 'tls', 'username', 'password', 'db', 'connectionName'],
  ...['retryStrategy', 'commandTimeout', 'blockingTimeout', 'blockingTimeoutGrace'],
  ...['socketTimeout', 'keepAlive', 'noDelay', 'disableClientInfo', 'clientInfoTag'],
  ...['autoResubscribe', 'autoResendUnfulfilledCommands', 'reconnectOnError', 'readOnly'],
  ...['stringNumbers', 'protocol', 'replyMapping', 'connectTimeout', 'disconnectTimeout'],
  ...['monitor', 'maxRetriesPerRequest', 'maxLoadingRetryTime', 'enableAutoPipelining'],
  ...['autoPipeliningIgnoredCommands', 'offlineQueue', 'commandQueue', 'enableOfflineQueue'],
  ...['enableReadyCheck', 'lazyConnect', 'scripts', 'himportFieldsets'],
  // Sentinel
  ...['sentinels', 'name', 'role', 'sentinelUsername', 'sentinelPassword', 'sentinelTLS'],
  ...['sentinelRetryStrategy', 'sentinelReconnectStrategy', 'sentinelCommandTimeout'],
  ...['sentinelMaxConnections', 'preferredSlaves', 'natMap', 'updateSentinels'],
  ...['enableTLSForSentinelMode', 'failoverDetector'],
  // a Cluster
  ...['clusterRetryStrategy', 'clusterNodeRetryStrategy', 'scaleReads', 'maxRedirections'],
  ...['retryDelayOnFailover', 'retryDelayOnClusterDown', 'retryDelayOnTryAgain'],
  ...['retryDelayOnMoved', 'slotsRefreshTimeout', 'slotsRefreshInterval', 'useSRVRecords'],
  ...['resolveSrv', 'dnsLookup', 'shardedSubscribers'],
  // Node's net.connect
  ...['localAddress', 'localPort', 'hints', 'lookup', 'keepAliveInitialDelay', 'timeout'],
  ...['allowHalfOpen', 'autoSelectFamily', 'autoSelectFamilyAttemptTimeout', 'signal', 'fd'],
];

/** Settings of one node's connection, which an ioredis Cluster takes only in `redisOptions`. */
const NODE_ONLY_OPTIONS = [
  'host',
  'port',
  'path',
  'tls',
  'username',
  'password',
  'db',
  'connectionName',
  'commandTimeout',
  'connectTimeout',
  'sentinels',
];

/** Other clients' names for ioredis's options (node-redis's, database URLs'), as people carry them over. */
const IOREDIS_OTHER_NAMES: Readonly<Record<string, string>> = {
  uri: 'url',
  user: 'username',
  pass: 'password',
  database: 'db',
  hostname: 'host',
  socket: 'host and port (node-redis nests them in socket; ioredis takes them at the top)',
};

/** Reconnect quickly, then at most once a second, forever. */
const retryStrategy = (attempt: number): number => Math.min(attempt * 50, 1000);

/**
 * The settings the guarantees rely on, applied over the user's for every node connection the
 * library creates: commands bounded in time and retried at most once after a reconnect (so none
 * pile up and run long after their request answered 503), a `READONLY` reply drops the
 * connection so the client looks for the master again, reads and writes only on the master.
 */
function nodeSettings(user: RedisOptions, storeTimeout: number): RedisOptions {
  const commandTimeout =
    typeof user.commandTimeout === 'number' && user.commandTimeout < storeTimeout
      ? user.commandTimeout
      : storeTimeout;
  return {
    retryStrategy,
    // A setting given as undefined (an unset environment variable) leaves ours in place.
    ...stripUndefined(user),
    commandTimeout,
    maxRetriesPerRequest: 1,
    reconnectOnError: reconnectOnReadOnly,
  };
}

/**
 * A node connection's numbers that ioredis uses as they are: a `db` of NaN (Number of an unset
 * environment variable), '' or 'x' made its own SELECT reject unhandled, ending the process, and
 * a `commandTimeout` of 0 or less timed commands out at once (503s, a flaky ping).
 */
function checkNodeNumbers(name: string, options: RedisOptions): void {
  const { db, commandTimeout } = options as { db?: unknown; commandTimeout?: unknown };
  const convert = (value: unknown) =>
    typeof value === 'string' ? ', a string: convert it with Number(…)' : '';
  if (db !== undefined && !isWholeNumber(db, 0, Number.MAX_SAFE_INTEGER))
    throw new AuthConfigError(
      `${name}.db`,
      `must be a database number from 0 (got ${shown(db)}${convert(db)}); leave it out for 0`,
    );
  if (commandTimeout !== undefined && !isWholeNumber(commandTimeout, 1, Number.MAX_SAFE_INTEGER))
    throw new AuthConfigError(
      `${name}.commandTimeout`,
      `must be a whole number of ms above 0 (got ${shown(commandTimeout)}${convert(commandTimeout)}); leave it out for storeTimeout`,
    );
}

function checkAddresses(name: string, list: unknown, example: string): void {
  if (!Array.isArray(list) || list.length === 0)
    throw new AuthConfigError(name, `must be a non-empty array of addresses, ${example}`);
  for (const address of list) {
    if (typeof address === 'string' || typeof address === 'number') continue;
    const { host, port } = (address ?? {}) as {
      host?: unknown;
      port?: unknown;
    };
    if (
      address === null ||
      typeof address !== 'object' ||
      (host !== undefined && (typeof host !== 'string' || host === '')) ||
      (port !== undefined &&
        (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65_535))
    )
      throw new AuthConfigError(name, `has an address that is not { host, port }, ${example}`);
  }
}

function createCluster(options: ClusterConnectionOptions, storeTimeout: number): Cluster {
  checkAddresses(
    'redis.cluster',
    options.cluster,
    "e.g. { cluster: [{ host: '10.0.0.1', port: 6379 }] }",
  );
  noMisspelt('redis', options, IOREDIS_OPTION_NAMES, 'an ioredis option', IOREDIS_OTHER_NAMES);
  // ioredis's Cluster reads a node connection's settings from redisOptions only: at the top they
  // would be dropped, and the nodes reached without the TLS or password they were given.
  for (const name of NODE_ONLY_OPTIONS)
    if ((options as unknown as Record<string, unknown>)[name] !== undefined)
      throw new AuthConfigError(
        `redis.${name}`,
        `is a node connection's setting, which a Cluster reads from redisOptions: give { cluster, redisOptions: { ${name} } }`,
      );
  const { cluster: nodes, ...clusterOptions } = options;
  if (
    clusterOptions.redisOptions !== undefined &&
    (clusterOptions.redisOptions === null || typeof clusterOptions.redisOptions !== 'object')
  )
    throw new AuthConfigError('redis.redisOptions', 'must be an object of ioredis options');
  if (clusterOptions.redisOptions !== undefined) {
    noMisspelt(
      'redis.redisOptions',
      clusterOptions.redisOptions,
      IOREDIS_OPTION_NAMES,
      'an ioredis option',
      IOREDIS_OTHER_NAMES,
    );
    checkNodeNumbers('redis.redisOptions', clusterOptions.redisOptions);
  }
  return new Cluster(nodes, {
    clusterRetryStrategy: retryStrategy,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    slotsRefreshTimeout: Math.min(1000, storeTimeout),
    ...clusterOptions,
    // Auto-pipelining sends a batch to the node the slot map names; a batch that meets a moved
    // slot fails as a whole (503s in a failover or a migration). Replicas may lag behind a revocation.
    enableAutoPipelining: false,
    scaleReads: 'master',
    redisOptions: nodeSettings(clusterOptions.redisOptions ?? {}, storeTimeout),
  });
}

function createNode(options: RedisConnectionOptions, storeTimeout: number): Redis {
  noMisspelt('redis', options, IOREDIS_OPTION_NAMES, 'an ioredis option', IOREDIS_OTHER_NAMES);
  const { url, ...nodeOptions } = options;
  if (url !== undefined) checkUrl('redis.url', url);
  checkNodeNumbers('redis', nodeOptions);
  // ioredis would connect to localhost:6379 when nothing is named: never a silent default.
  if (
    url === undefined &&
    nodeOptions.host === undefined &&
    nodeOptions.port === undefined &&
    nodeOptions.path === undefined &&
    nodeOptions.sentinels === undefined
  )
    throw new AuthConfigError(
      'redis',
      'names no Redis: give { host, port }, { url }, { sentinels, name } or { cluster: [nodes] }',
    );
  if (
    nodeOptions.host !== undefined &&
    (typeof nodeOptions.host !== 'string' || nodeOptions.host === '')
  )
    throw new AuthConfigError('redis.host', 'must be a non-empty host name or address');
  if (typeof nodeOptions.host === 'string' && nodeOptions.host.includes('://'))
    throw new AuthConfigError(
      'redis.host',
      'is a URL: give it as `redis: url` or `{ url }`, or give its host name alone',
    );
  if (
    nodeOptions.port !== undefined &&
    (!Number.isInteger(nodeOptions.port) || nodeOptions.port < 1 || nodeOptions.port > 65_535)
  )
    throw new AuthConfigError(
      'redis.port',
      `must be a port number from 1 to 65535 (got ${shown(nodeOptions.port)}${typeof nodeOptions.port === 'string' ? ', a string: convert it with Number(…)' : ''})`,
    );
  if (nodeOptions.sentinels !== undefined) {
    checkAddresses(
      'redis.sentinels',
      nodeOptions.sentinels,
      "e.g. { sentinels: [{ host: '10.0.0.1', port: 26379 }], name: 'mymaster' }",
    );
    if (typeof nodeOptions.name !== 'string' || nodeOptions.name === '')
      throw new AuthConfigError(
        'redis.name',
        'must name the master the sentinels monitor, e.g. "mymaster"',
      );
    if (nodeOptions.role === 'slave')
      throw new AuthConfigError('redis.role', 'must be "master": sessions are written');
  }
  if (
    nodeOptions.tls !== undefined &&
    (nodeOptions.tls === null || typeof nodeOptions.tls !== 'object')
  )
    throw new AuthConfigError('redis.tls', 'must be an object of TLS options, e.g. { ca }');
  const settings = nodeSettings(nodeOptions, storeTimeout);
  if (nodeOptions.sentinels !== undefined) {
    // Subscribe to the sentinels' +switch-master: follow a failover at once, not at the next error.
    settings.failoverDetector = true;
    settings.sentinelRetryStrategy ??= retryStrategy;
    settings.sentinelCommandTimeout ??= Math.min(1000, storeTimeout);
  }
  return url === undefined ? new Redis(settings) : new Redis(url, settings);
}

let instanceWarned = false;

/**
 * The hash tag Redis Cluster takes from `prefix` (between its first `{` and the first `}` after
 * it, when not empty), or undefined: a client keyPrefix with one puts every key in one slot.
 */
export function prefixHashTag(prefix: string): string | undefined {
  const open = prefix.indexOf('{');
  const close = open < 0 ? -1 : prefix.indexOf('}', open + 1);
  return close > open + 1 ? prefix.slice(open, close + 1) : undefined;
}

/** Warns once when a Cluster client's own keyPrefix would put every key of the library in one slot. */
function warnPrefixHashTag(client: IoRedisClient): void {
  const prefix = client.isCluster ? (client as Cluster).options.keyPrefix : undefined;
  const tag = prefix === undefined ? undefined : prefixHashTag(prefix);
  if (tag !== undefined)
    warnOnce(
      'KOA_JWT_REDIS_CLUSTER_KEY_PREFIX',
      `the Redis Cluster client's keyPrefix ${JSON.stringify(prefix)} has the hash tag ${tag}, which Redis hashes instead of each user's own tag: every session key lands in one slot, on one master. Drop the braces from it, or give the library a client without a keyPrefix (the library's keyPrefix option takes no braces: it tags each user's keys itself).`,
    );
}

/** Settings of a user's own client that are known to break a guarantee, each with what to do. */
export function instanceProblems(client: IoRedisClient): string[] {
  const problems: string[] = [];
  if (client instanceof Cluster || client.isCluster) {
    const options = (client as Cluster).options;
    if (options.scaleReads !== undefined && options.scaleReads !== 'master')
      problems.push(
        'scaleReads reads from replicas, which may still hold a session that was just revoked: leave it "master"',
      );
    if (options.enableAutoPipelining)
      problems.push(
        'enableAutoPipelining makes writes to a moved slot fail during a failover or a slot migration: turn it off',
      );
    return problems;
  }
  const options = (client as Redis).options as RedisOptions;
  if (Array.isArray(options.sentinels)) {
    if (!options.failoverDetector)
      problems.push(
        'failoverDetector is off, so the client keeps writing to a demoted master until it errors: set failoverDetector: true',
      );
    if (typeof options.reconnectOnError !== 'function')
      problems.push(
        'no reconnectOnError, so the client can stay on a demoted master that answers READONLY: reconnect on READONLY',
      );
    if (options.role === 'slave')
      problems.push('role "slave" sends session writes to a replica: use role "master"');
  }
  return problems;
}

/**
 * Turns the `redis` option into a client: a user's instance as it is (warning once about settings
 * known to break a guarantee), or one the library creates and owns from a URL or options.
 */
export function connectRedis(option: unknown, storeTimeout: number): RedisConnection {
  if (isRedisClient(option)) {
    const given = option as unknown as IoRedisClient;
    // After quit() or disconnect() ioredis never reconnects: every request would answer 503.
    if (given.status === 'end')
      throw new AuthConfigError(
        'redis',
        'is an ioredis client that was closed (quit() or disconnect()), which never reconnects: give an open one',
      );
    const problems = instanceProblems(given);
    if (problems.length > 0 && !instanceWarned) {
      instanceWarned = true;
      warn(
        'KOA_JWT_REDIS_CLIENT_SETTINGS',
        `the Redis client passed as \`redis\` has settings that break a guarantee (see README, "Redis topologies"): ${problems.join('; ')}.`,
      );
    }
    warnPrefixHashTag(given);
    // ioredis's defaults have `sentinels: null`.
    const sentinel = !given.isCluster && Array.isArray((given as Redis).options.sentinels);
    return {
      client: given,
      owned: false,
      topology: option.isCluster ? 'cluster' : sentinel ? 'sentinel' : 'single',
    };
  }
  let client: IoRedisClient;
  let topology: Topology;
  if (typeof option === 'string') {
    client = new Redis(checkUrl('redis', option), {
      ...nodeSettings({}, storeTimeout),
      enableAutoPipelining: true,
    });
    topology = 'single';
  } else if (option !== null && typeof option === 'object' && !Array.isArray(option)) {
    const methods = option as Record<string, unknown>;
    if (typeof methods.rotate === 'function' && typeof methods.isLive === 'function')
      throw new AuthConfigError(
        'redis',
        'is a session store (redisStore(…), postgresStore(…), memoryStore() or your own): give it as `store`',
      );
    if (typeof methods.query === 'function' && typeof methods.connect === 'function')
      throw new AuthConfigError(
        'redis',
        'looks like a pg Pool: for sessions in PostgreSQL, give `store: postgresStore(pool)`',
      );
    if ('cluster' in option) {
      client = createCluster(option as ClusterConnectionOptions, storeTimeout);
      topology = 'cluster';
    } else {
      client = createNode(option as RedisConnectionOptions, storeTimeout);
      topology = (option as RedisConnectionOptions).sentinels ? 'sentinel' : 'single';
    }
  } else {
    throw new AuthConfigError(
      'redis',
      'must be a redis:// URL, connection options ({ host, port, tls }, { sentinels, name } or { cluster: [nodes] }), or an ioredis Redis or Cluster instance',
    );
  }
  warnPrefixHashTag(client);
  // Errors surface per request as 503s; without a listener ioredis would log each reconnect.
  // (RedisStore closes its own connections on a refused database: see keepConnecting.)
  client.on('error', () => {});
  return { client, owned: true, topology };
}
