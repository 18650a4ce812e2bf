/**
 * Consumer lag: how far a consumer's committed position trails the end of a
 * partition. Positions come from {@link PositionSource}s: durable
 * subscriptions' positions today; consumer groups add a source of their own
 * (kind `group`) and need nothing else here.
 */

/** What kind of consumer a position belongs to. */
export type ConsumerKind = 'durable' | 'group';

/** A consumer's committed position in one partition: the next offset it will be given. */
export interface ConsumerPosition {
  kind: ConsumerKind;
  /** Durable name or group name. */
  consumer: string;
  topic: string;
  partition: number;
  offset: number;
}

/** Where committed positions are read from (as applied on this broker; no round trip). */
export interface PositionSource {
  positions(): Iterable<ConsumerPosition>;
}

/** One consumer's lag in one partition. */
export interface ConsumerLag extends ConsumerPosition {
  /** The partition's end (the offset the next message will get), as its leader knows it. */
  end: number;
  /** Messages committed but not yet consumed: `end - offset` less the offsets between them that hold no message (holes), never below 0. */
  lag: number;
}

/**
 * Most lag rows one broker reports (and exports as metric series): beyond
 * it, rows with the smallest lag are left out, so a cluster with very many
 * durable names cannot grow every scrape without bound.
 */
export const MAX_LAG_ROWS = 10_000;

/** The partitions a broker reports lag of. */
export interface LedPartitions {
  /** The end of a partition this broker leads, `undefined` for others. */
  end(topic: string, partition: number): number | undefined;
  /** Offsets in `[from, to)` holding no message (an engine with offset holes); absent: none. */
  holesBetween?(topic: string, partition: number, from: number, to: number): number;
}

/**
 * Lag of every position in a partition led here. Only the leader reports a
 * partition, so each (consumer, partition) is counted once in the cluster and
 * its end is the committed end, not a follower's that may trail it.
 */
export function consumerLag(sources: readonly PositionSource[], led: LedPartitions, max = MAX_LAG_ROWS): ConsumerLag[] {
  const rows: ConsumerLag[] = [];
  for (const source of sources) {
    for (const p of source.positions()) {
      const end = led.end(p.topic, p.partition);
      if (end === undefined) continue;
      const holes = p.offset < end ? (led.holesBetween?.(p.topic, p.partition, p.offset, end) ?? 0) : 0;
      rows.push({ kind: p.kind, consumer: p.consumer, topic: p.topic, partition: p.partition, offset: p.offset, end, lag: Math.max(0, end - p.offset - holes) });
    }
  }
  if (rows.length > max) rows.sort((a, b) => b.lag - a.lag).splice(max);
  return rows.sort(compareLag);
}

/** By kind, consumer, topic, partition. */
export function compareLag(a: ConsumerPosition, b: ConsumerPosition): number {
  return cmp(a.kind, b.kind) || cmp(a.consumer, b.consumer) || cmp(a.topic, b.topic) || a.partition - b.partition;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Positions of durable subscriptions from a table of records (the metadata's, or the in-memory engine's). */
export function durablePositionSource(records: () => ReadonlyArray<{ durable: string; positions: ReadonlyArray<{ topic: string; partition: number; offset: number }> }>): PositionSource {
  return {
    *positions() {
      for (const { durable, positions } of records()) {
        for (const p of positions) yield { kind: 'durable', consumer: durable, topic: p.topic, partition: p.partition, offset: p.offset };
      }
    },
  };
}

/** Positions of consumer groups, from the group table's records (kind `group`, consumer = the group name as stored). */
export function groupPositionSource(records: () => ReadonlyArray<{ group: string; positions: ReadonlyArray<{ topic: string; partition: number; offset: number }> }>): PositionSource {
  return {
    *positions() {
      for (const { group, positions } of records()) {
        for (const p of positions) yield { kind: 'group', consumer: group, topic: p.topic, partition: p.partition, offset: p.offset };
      }
    },
  };
}
