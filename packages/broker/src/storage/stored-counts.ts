import type { Entry } from '../core/raft/types.js';
import type { PublishCommand } from '../core/partition/command.js';
import { PartitionProjection, type ProjectionBase } from '../core/partition/projection.js';

/**
 * How many messages each entry of a partition's Raft log stores, decided when
 * the entry is appended to the log (layout `unified`, docs/storage.md): the
 * partition offsets of an entry's messages must be in its record before it is
 * committed, so that offsets are dense and the same on every replica without
 * a second write at apply time.
 *
 * `applyPublish` stores, of a batch, either nothing or its suffix from the
 * first new seq, depending only on the idempotence table before it; that
 * table is a function of the log before the entry. So each replica projects
 * every entry it appends over the applied state plus the entries between
 * (a {@link PartitionProjection}), and gets the count the apply step will
 * store, whoever leads: the stored messages are the entry's last `count`.
 * After a conflicting suffix was cut, the projection is rebuilt from the
 * applied state over the entries that remain. Pure.
 */
/** What the counts read of the replica: its last applied index, and its log's entries in `[lo, hi)` (the window after the applied index is always there). */
export interface CountsSource {
  appliedIndex(): number;
  entries(lo: number, hi: number): readonly Entry<PublishCommand>[];
}

export class StoredCounts {
  private readonly projection: PartitionProjection;
  /** The last index projected on top of the base (the base's applied index after a reset). */
  private projectedThrough = 0;

  /**
   * @param base - the applied partition (its end offset and idempotence table), `source.appliedIndex()` its last applied index
   */
  constructor(
    base: ProjectionBase,
    dedupeWindow: number,
    private readonly source: CountsSource,
  ) {
    this.projection = new PartitionProjection(base, dedupeWindow);
  }

  /** Messages `entry` (just appended, after every entry before it) stores. */
  count(entry: Entry<PublishCommand>): number {
    // Appended again at an index already projected (a cut not reported): start over.
    if (entry.index <= this.projectedThrough) this.rebuild();
    // An entry that is no publish stores nothing, whatever precedes it: the entries before it are projected once a publish
    // needs them. A restarted leader's first entry follows the whole window, which the apply step has mostly taken by then.
    if (entry.type !== 'normal') return 0;
    // The base went past the projection: start over from it.
    if (this.projectedThrough < this.source.appliedIndex()) this.rebuild();
    this.rebuildUpTo(entry.index - 1);
    if (entry.index !== this.projectedThrough + 1) throw new RangeError(`entry ${entry.index} does not follow ${this.projectedThrough}`);
    this.projectedThrough = entry.index;
    return this.projection.project(entry.data, entry.index).filter((o) => o.kind === 'stored').length;
  }

  /** The entries from `index` on were cut (a new leader's differ): they are projected no more. */
  truncated(index: number): void {
    if (index > this.projectedThrough) return;
    this.rebuild();
    this.rebuildUpTo(index - 1);
  }

  /** The applied state was replaced (rewound to a snapshot): the next entry counted projects again from it. */
  reset(): void {
    this.projection.reset();
    this.projectedThrough = -1;
  }

  /** The applied state took every entry up to `index`: their part of the projection is the base's now. */
  appliedUpTo(index: number): void {
    this.projection.applied(index);
  }

  private rebuild(): void {
    this.projection.reset();
    this.projectedThrough = this.source.appliedIndex();
  }

  /** Projects the entries after the applied index up to `last` (they are in the log). */
  private rebuildUpTo(last: number): void {
    if (last <= this.projectedThrough) return;
    for (const entry of this.source.entries(this.projectedThrough + 1, last + 1)) {
      if (entry.type === 'normal') this.projection.project(entry.data, entry.index);
    }
    this.projectedThrough = last;
  }
}
