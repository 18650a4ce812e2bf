import type { AssignedPartition, BrokerFrame, Cursor, StartPosition } from '@relaymq/sdk/protocol';
import type { LogEngine } from '../engine/engine.js';

const partitionKey = (topic: string, partition: number): string => `${partition}:${topic}`;

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
   */
  refresh(engine: LogEngine, subscription: number, cursors: Map<string, Cursor>): BrokerFrame | undefined {
    const groups = engine.consumerGroups;
    const entries: AssignedPartition[] = [];
    const next = new Map<string, number>();
    for (const p of groups.assignmentOf(this.group, this.member)) {
      const key = partitionKey(p.topic, p.partition);
      if (p.revoking) {
        // Nothing more is sent: the member finishes what it holds, commits and releases.
        cursors.delete(key);
        const entry: AssignedPartition = { topic: p.topic, partition: p.partition, epoch: p.epoch, revoking: true };
        // Not delivered in the last frame under this epoch (e.g. granted and revoked before this member's first
        // frame): the position to release it at, so a member that never saw the grant still releases it rather than
        // leave it the member's, delivered to nobody. A member that owns it releases at its own position instead.
        if (this.owned.get(key) !== p.epoch) {
          if (this.awaitsBounds(engine, p.topic, p.partition, key)) continue;
          entry.offset = groups.position(this.group, p.topic, p.partition) ?? this.startOffset(engine, p.topic, p.partition);
        }
        entries.push(entry);
        continue;
      }
      if (this.awaitsBounds(engine, p.topic, p.partition, key)) continue;
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
    this.owned = next;
    // Sent when the assignment changed, or when a partition is granted (again).
    const text = JSON.stringify(entries.map(({ offset: _offset, ...rest }) => rest));
    if (text === this.lastSent && !entries.some((e) => e.offset !== undefined && e.revoking !== true)) return undefined;
    this.lastSent = text;
    return { type: 'assignment', subscription, partitions: entries };
  }

  /**
   * Partitions granted to this member whose start `from` decides, hosted
   * elsewhere and never read here: their bounds are unknown (`0..0`), so
   * they are left out of the assignment until the caller learned them
   * ({@link takeUnknownBounds}, `LogEngine.currentBounds`) and refreshes
   * again; `'new'` would otherwise start at offset 0 (the whole history)
   * and `'earliest'` below the first retained message (a gap for nothing).
   */
  private readonly unknownBounds = new Map<string, { topic: string; partition: number }>();
  /** Of {@link unknownBounds}, those whose bounds are being asked for now. */
  private readonly learning = new Set<string>();

  /** Whether `topic`/`partition` waits for its bounds (see {@link unknownBounds}); records it if so. */
  private awaitsBounds(engine: LogEngine, topic: string, partition: number, key: string): boolean {
    if (typeof this.from === 'object' && 'offset' in this.from) return false; // needs no bounds
    if (this.owned.has(key) || engine.boundsKnown?.(topic, partition) !== false) return false;
    if (engine.consumerGroups.position(this.group, topic, partition) !== undefined) return false;
    this.unknownBounds.set(key, { topic, partition });
    return true;
  }

  /** Partitions left out of the assignment for unknown bounds, not asked for yet: the caller learns them, then calls {@link learnt} and refreshes. */
  takeUnknownBounds(): Array<{ key: string; topic: string; partition: number }> {
    const taken: Array<{ key: string; topic: string; partition: number }> = [];
    for (const [key, p] of this.unknownBounds) {
      if (this.learning.has(key)) continue;
      this.learning.add(key);
      taken.push({ key, ...p });
    }
    return taken;
  }

  /** The bounds of the partition `key` were asked for (learnt, or failed: asked again on a later refresh). */
  learnt(key: string): void {
    this.learning.delete(key);
    this.unknownBounds.delete(key);
  }

  /** Where a partition the group never committed starts, as `from` says (a time starts at the first retained message). */
  private startOffset(engine: LogEngine, topic: string, partition: number): number {
    const { start, end } = engine.bounds(topic, partition);
    const from = this.from;
    if (from === 'new') return end;
    // An offset retention already removed is kept, as for a plain subscription: delivery starts at the first retained one and the SDK reports the gap.
    if (typeof from === 'object' && 'offset' in from) return from.offset;
    return start;
  }
}
