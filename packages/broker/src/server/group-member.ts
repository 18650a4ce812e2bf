import type { AssignedPartition, BrokerFrame, Cursor, StartPosition } from '@relaymq/sdk/protocol';
import type { LogEngine } from '../engine/engine.js';

const partitionKey = (topic: string, partition: number): string => `${partition}:${topic}`;

/** Pause before a start lookup that failed (see {@link GroupMember.learnStart}) is asked again; it doubles per failure in a row. */
export const START_RETRY_MS = 250;
/** The longest such pause: a pattern over thousands of partitions no replica answers for is asked again at most this often. */
export const START_RETRY_MAX_MS = 8_000;

/**
 * One consumer-group member on this broker (a `subscribe` with `group`): it
 * turns the group table, as applied here, into the member's delivery cursors
 * and `assignment` frames. A partition is delivered only while the member
 * owns it and is not asked to revoke it; a newly granted partition starts at
 * the group's committed position (or where `from` says when there is none),
 * and the `assignment` frame that grants it goes out before any of its
 * messages.
 */
export class GroupMember {
  /** Epoch of each partition delivered now. */
  private owned = new Map<string, number>();
  private lastSent = '';
  /**
   * Partitions granted to this member whose start `from` decides but this
   * broker cannot tell without asking (see {@link awaitsStart}): left out of
   * the assignment until the caller learnt it ({@link takeUnknownStarts},
   * {@link learnStart}) and refreshes again.
   */
  private readonly unknownStarts = new Map<string, { topic: string; partition: number }>();
  /** Of {@link unknownStarts}, those being asked for now. */
  private readonly learning = new Set<string>();
  /** With `from: { time }`: per partition, the first offset stored at or after that time (`LogEngine.offsetForTime`), until used once. */
  private readonly timeStarts = new Map<string, number>();
  /** Start lookups failed in a row (see {@link startRetryMs}). */
  private failedLookups = 0;

  constructor(
    /** The group's name as stored (scoped to the principal). */
    readonly group: string,
    readonly member: string,
    private readonly from: StartPosition,
  ) {}

  /** Whether the member is delivered `topic`/`partition` now. */
  owns(topic: string, partition: number): boolean {
    return this.owned.has(partitionKey(topic, partition));
  }

  /**
   * Brings `cursors` in line with the member's assignment and returns the
   * `assignment` frame to send, or `undefined` when nothing changed.
   * Partitions of topics the member may not read (`readable` false) are left
   * out, cursor and frame alike: the coordinator knows no ACL and assigns
   * whatever the group's pattern matches, but no member of the group (all of
   * one principal, as group names are scoped to it) may read them, so they
   * stay with their owner unread, and their names are not told.
   */
  refresh(engine: LogEngine, subscription: number, cursors: Map<string, Cursor>, readable: (topic: string) => boolean = () => true): BrokerFrame | undefined {
    const groups = engine.consumerGroups;
    const entries: AssignedPartition[] = [];
    const next = new Map<string, number>();
    const assigned = new Set<string>();
    for (const p of groups.assignmentOf(this.group, this.member)) {
      if (!readable(p.topic)) continue;
      const key = partitionKey(p.topic, p.partition);
      assigned.add(key);
      if (p.revoking) {
        // Nothing more is sent: the member finishes what it holds, commits and releases.
        cursors.delete(key);
        const entry: AssignedPartition = { topic: p.topic, partition: p.partition, epoch: p.epoch, revoking: true };
        // Not delivered in the last frame under this epoch (e.g. granted and revoked before this member's first
        // frame): the position to release it at, so a member that never saw the grant still releases it rather than
        // leave it the member's, delivered to nobody. A member that owns it releases at its own position instead.
        if (this.owned.get(key) !== p.epoch) {
          if (this.awaitsStart(engine, p.topic, p.partition, key)) continue;
          entry.offset = groups.position(this.group, p.topic, p.partition) ?? this.startOffset(engine, p.topic, p.partition);
        }
        entries.push(entry);
        continue;
      }
      if (this.awaitsStart(engine, p.topic, p.partition, key)) continue;
      next.set(key, p.epoch);
      const entry: AssignedPartition = { topic: p.topic, partition: p.partition, epoch: p.epoch };
      if (this.owned.get(key) !== p.epoch) {
        const offset = groups.position(this.group, p.topic, p.partition) ?? this.startOffset(engine, p.topic, p.partition);
        cursors.set(key, { topic: p.topic, partition: p.partition, offset });
        entry.offset = offset;
      }
      entries.push(entry);
    }
    for (const key of this.owned.keys()) if (!next.has(key)) cursors.delete(key);
    // A start learnt (or being learnt) for a partition no longer assigned is of a grant that is gone: a later
    // grant learns it again (the topic may have been deleted and created again meanwhile).
    for (const key of this.timeStarts.keys()) if (!assigned.has(key)) this.timeStarts.delete(key);
    for (const key of this.unknownStarts.keys()) if (!assigned.has(key)) this.unknownStarts.delete(key);
    this.owned = next;
    // Sent when the assignment changed, or when a partition is granted (again).
    const text = JSON.stringify(entries.map(({ offset: _offset, ...rest }) => rest));
    if (text === this.lastSent && !entries.some((e) => e.offset !== undefined && e.revoking !== true)) return undefined;
    this.lastSent = text;
    return { type: 'assignment', subscription, partitions: entries };
  }

  /**
   * Whether a partition granted now waits for its start (and records it if
   * so): the group never committed it and it is not delivered here yet, and
   * `from` is a time whose offset is not known yet, or the partition is
   * hosted elsewhere and never read here — its bounds are then `0..0`, so
   * `'new'` would start at offset 0 (the whole history) and `'earliest'`
   * below the first retained message (a gap for nothing).
   */
  private awaitsStart(engine: LogEngine, topic: string, partition: number, key: string): boolean {
    const from = this.from;
    if (this.owned.has(key) || (typeof from === 'object' && 'offset' in from)) return false;
    if (engine.consumerGroups.position(this.group, topic, partition) !== undefined) return false;
    const known = typeof from === 'object' ? this.timeStarts.has(key) : engine.boundsKnown?.(topic, partition) !== false;
    if (known) return false;
    this.unknownStarts.set(key, { topic, partition });
    return true;
  }

  /** Partitions left out of the assignment for an unknown start, not asked for yet: the caller passes each to {@link learnStart}, then refreshes. */
  takeUnknownStarts(): Array<{ key: string; topic: string; partition: number }> {
    const taken: Array<{ key: string; topic: string; partition: number }> = [];
    for (const [key, p] of this.unknownStarts) {
      if (this.learning.has(key)) continue;
      this.learning.add(key);
      taken.push({ key, ...p });
    }
    return taken;
  }

  /** Learns the start of a partition {@link takeUnknownStarts} named (the offset for `from`'s time, or the bounds from a replica); a failure leaves it to the next refresh. */
  async learnStart(engine: LogEngine, item: { key: string; topic: string; partition: number }): Promise<void> {
    const from = this.from;
    try {
      if (typeof from === 'object' && 'time' in from) {
        const offset = await engine.offsetForTime(item.topic, item.partition, from.time);
        // Kept only while still awaited: a refresh meanwhile that no longer found it assigned forgot it (see `refresh`).
        if (this.unknownStarts.has(item.key)) this.timeStarts.set(item.key, offset);
      } else await engine.currentBounds(item.topic, item.partition);
      this.failedLookups = 0;
    } catch (err) {
      this.failedLookups++;
      throw err;
    } finally {
      this.learning.delete(item.key);
      this.unknownStarts.delete(item.key);
    }
  }

  /** How long to wait before asking again after a failed {@link learnStart}: {@link START_RETRY_MS}, doubled per failure in a row, at most {@link START_RETRY_MAX_MS}. */
  startRetryMs(): number {
    return Math.min(START_RETRY_MS * 2 ** Math.min(Math.max(this.failedLookups - 1, 0), 16), START_RETRY_MAX_MS);
  }

  /** Where a partition the group never committed starts, as `from` says (a time: as learnt, see {@link awaitsStart}). */
  private startOffset(engine: LogEngine, topic: string, partition: number): number {
    const { start, end } = engine.bounds(topic, partition);
    const from = this.from;
    if (from === 'new') return end;
    // An offset retention already removed is kept, as for a plain subscription: delivery starts at the first retained one and the SDK reports the gap.
    if (typeof from === 'object' && 'offset' in from) return from.offset;
    if (typeof from === 'object') {
      // Used once: a later grant learns it again (the topic may have been deleted and created again meanwhile).
      const key = partitionKey(topic, partition);
      const offset = this.timeStarts.get(key);
      this.timeStarts.delete(key);
      return offset ?? start;
    }
    return start;
  }
}
