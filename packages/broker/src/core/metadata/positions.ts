/**
 * Positions of durable subscriptions as a pure table: per durable name and
 * partition, the next offset to deliver. Commits only ever raise a position
 * (max of stored and committed), so a stale, repeated or reordered commit is
 * harmless. The in-memory engine uses it directly; the cluster applies it
 * inside the replicated metadata state machine.
 */
import { FIELD_LIMITS, durableNameProblem, topicProblem, type Cursor } from '@relaymq/sdk/protocol';

/** Bounds on the table, so hostile commits cannot grow broker memory without end. */
export const POSITION_LIMITS = Object.freeze({
  /** Durable names with stored positions. */
  maxDurables: 10_000,
  /** Partitions with a stored position per durable name. */
  maxPositionsPerDurable: 10_000,
});

/** What a commit did: the durable's positions afterwards, or a refusal because a limit was reached. */
export type CommitResult = { kind: 'positions'; positions: Cursor[] } | { kind: 'limit'; message: string };

const positionKey = (topic: string, partition: number): string => `${partition}:${topic}`;

export class DurablePositions {
  private readonly byDurable = new Map<string, Map<string, Cursor>>();

  /** The stored positions of `durable` (empty when none). */
  get(durable: string): Cursor[] {
    return [...(this.byDurable.get(durable)?.values() ?? [])].map((c) => ({ ...c }));
  }

  /** Number of durable names with positions. */
  get size(): number {
    return this.byDurable.size;
  }

  /** Every durable name with its positions (for a snapshot). */
  toRecords(): Array<{ durable: string; positions: Cursor[] }> {
    return [...this.byDurable.keys()].map((durable) => ({ durable, positions: this.get(durable) }));
  }

  /** Replaces the table with `records` (from {@link toRecords}). */
  restore(records: ReadonlyArray<{ durable: string; positions: readonly Cursor[] }>): void {
    this.byDurable.clear();
    for (const { durable, positions } of records) {
      this.byDurable.set(durable, new Map(positions.map((p) => [positionKey(p.topic, p.partition), { topic: p.topic, partition: p.partition, offset: p.offset }])));
    }
  }

  /** Forgets every position of `topic`'s partitions (the topic was deleted); a durable left with none is forgotten. */
  forgetTopic(topic: string): void {
    for (const [durable, table] of this.byDurable) {
      for (const [key, cursor] of table) if (cursor.topic === topic) table.delete(key);
      if (table.size === 0) this.byDurable.delete(durable);
    }
  }

  /**
   * Raises the positions of `durable` to those committed; a committed offset
   * lower than the stored one is ignored. All or nothing: a commit that would
   * pass a limit changes nothing. An empty commit only reads.
   */
  commit(durable: string, positions: readonly Cursor[]): CommitResult {
    const stored = this.byDurable.get(durable);
    const fresh = new Set<string>();
    for (const p of positions) {
      const key = positionKey(p.topic, p.partition);
      if (stored?.has(key) !== true) fresh.add(key);
    }
    if (fresh.size > 0 && stored === undefined && this.byDurable.size >= POSITION_LIMITS.maxDurables) {
      return { kind: 'limit', message: `no room for durable ${durable}: ${POSITION_LIMITS.maxDurables} durable names already hold positions` };
    }
    if ((stored?.size ?? 0) + fresh.size > POSITION_LIMITS.maxPositionsPerDurable) {
      return { kind: 'limit', message: `durable ${durable} would hold more than ${POSITION_LIMITS.maxPositionsPerDurable} positions` };
    }
    if (positions.length === 0) return { kind: 'positions', positions: this.get(durable) };
    const table = stored ?? new Map<string, Cursor>();
    this.byDurable.set(durable, table);
    for (const p of positions) {
      const key = positionKey(p.topic, p.partition);
      const current = table.get(key);
      if (current === undefined) table.set(key, { topic: p.topic, partition: p.partition, offset: p.offset });
      else if (p.offset > current.offset) current.offset = p.offset;
    }
    return { kind: 'positions', positions: this.get(durable) };
  }
}

/** A commit of durable positions as it travels between brokers and through the metadata log. */
export interface CommitPositionsCommand {
  type: 'commit-positions';
  durable: string;
  positions: Cursor[];
}

/** Reads an untrusted value as a {@link CommitPositionsCommand}, or `undefined` when it is not one. */
export function parseCommitPositions(value: unknown): CommitPositionsCommand | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const o = value as Record<string, unknown>;
  if (o.type !== 'commit-positions' || typeof o.durable !== 'string' || durableNameProblem(o.durable) !== undefined) return undefined;
  if (!Array.isArray(o.positions) || o.positions.length > FIELD_LIMITS.maxList) return undefined;
  const positions: Cursor[] = [];
  for (const item of o.positions as unknown[]) {
    if (typeof item !== 'object' || item === null) return undefined;
    const c = item as Record<string, unknown>;
    if (typeof c.topic !== 'string' || topicProblem(c.topic) !== undefined) return undefined;
    if (!isOffset(c.partition) || !isOffset(c.offset)) return undefined;
    // The incarnation the broker taking the commit checked the topic in (absent: an older broker's entry).
    if (c.incarnation !== undefined && !isOffset(c.incarnation)) return undefined;
    positions.push(c.incarnation === undefined ? { topic: c.topic, partition: c.partition, offset: c.offset } : { topic: c.topic, partition: c.partition, offset: c.offset, incarnation: c.incarnation });
  }
  return { type: 'commit-positions', durable: o.durable, positions };
}

function isOffset(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
