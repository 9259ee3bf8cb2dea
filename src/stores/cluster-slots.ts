/**
 * Which Cluster shards have a replica, by hash slot: a Cluster store's writes wait for a replica
 * only where one exists (see cluster-replicas.ts).
 */

/** Hash slots in a Redis Cluster. */
const SLOTS = 16384;

/** CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster hashes keys with. */
const CRC16 = new Uint16Array(256);
for (let byte = 0; byte < 256; byte++) {
  let crc = byte << 8;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
  CRC16[byte] = crc & 0xffff;
}

/**
 * The hash slot of `key`, as Redis Cluster computes it: of the hash tag (the bytes between the
 * first `{` and the first `}` after it) when that is not empty, else of the whole key.
 */
export function keySlot(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  let [start, end] = [0, bytes.length];
  const open = bytes.indexOf(0x7b);
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) [start, end] = [open + 1, close];
  }
  let crc = 0;
  for (let i = start; i < end; i++)
    crc = ((crc << 8) & 0xffff) ^ CRC16[((crc >> 8) ^ bytes[i]!) & 0xff]!;
  return crc % SLOTS;
}

/**
 * From a `CLUSTER NODES` reply: 1 for each slot whose master has a replica listed (whatever the
 * replica's state: one that is failing or lagging may still be promoted once it is back), else
 * 0. Slots being imported or migrated (`[slot->-id]`) count for the master that serves them.
 */
export function slotsWithReplicasFromNodes(nodes: string): Uint8Array {
  const lines = nodes
    .split('\n')
    .map((line) => line.trim().split(' '))
    .filter((fields) => fields.length >= 8);
  const flagged = (fields: string[], flag: string) => fields[2]!.split(',').includes(flag);
  const replicated = new Set<string>();
  for (const fields of lines) if (flagged(fields, 'slave')) replicated.add(fields[3]!);
  const slots = new Uint8Array(SLOTS);
  for (const fields of lines) {
    if (!flagged(fields, 'master') || !replicated.has(fields[0]!)) continue;
    for (const range of fields.slice(8)) {
      if (range.startsWith('[')) continue;
      const [from, to = from] = range.split('-');
      slots.fill(1, Number(from), Number(to) + 1);
    }
  }
  return slots;
}

/**
 * A field of a map reply: a flat `[name, value, ...]` array (RESP2, and RESP3 with ioredis's
 * default `replyMapping`), a plain object (`replyMapping: 'resp3'`) or a `Map`.
 */
function field(map: unknown, name: string): unknown {
  if (Array.isArray(map)) {
    for (let i = 0; i + 1 < map.length; i += 2) if (String(map[i]) === name) return map[i + 1];
    return undefined;
  }
  if (map instanceof Map) return map.get(name);
  return typeof map === 'object' && map !== null
    ? (map as Record<string, unknown>)[name]
    : undefined;
}

/**
 * From a `CLUSTER SHARDS` reply (Redis 7: per shard, `slots` as from-to pairs and `nodes` as
 * maps), for a Cluster that refuses `CLUSTER NODES`: as from `CLUSTER NODES`, 1 for each slot of
 * a shard that lists a replica, whatever its `health` (a failing one included). Undefined for a
 * reply of another shape, which is not read as "no replica".
 */
export function slotsWithReplicasFromShards(shards: unknown): Uint8Array | undefined {
  if (!Array.isArray(shards)) return undefined;
  const slots = new Uint8Array(SLOTS);
  for (const shard of shards) {
    const nodes = field(shard, 'nodes');
    const ranges = field(shard, 'slots');
    if (!Array.isArray(nodes) || !Array.isArray(ranges)) return undefined;
    if (!nodes.some((node) => String(field(node, 'role')) === 'replica')) continue;
    for (let i = 0; i + 1 < ranges.length; i += 2)
      slots.fill(1, Number(ranges[i]), Number(ranges[i + 1]) + 1);
  }
  return slots;
}

/**
 * From a `CLUSTER SLOTS` reply (`[from, to, master, ...replicas]` per range), for a Cluster that
 * refuses both `CLUSTER NODES` and `CLUSTER SHARDS` (or runs Redis < 7): it lists a replica only
 * while it replicates (neither one that has not synced yet nor one that is failing).
 */
export function slotsWithReplicasFromSlots(ranges: unknown): Uint8Array {
  const slots = new Uint8Array(SLOTS);
  for (const range of Array.isArray(ranges) ? (ranges as unknown[][]) : [])
    if (Array.isArray(range) && range.length > 3)
      slots.fill(1, Number(range[0]), Number(range[1]) + 1);
  return slots;
}
