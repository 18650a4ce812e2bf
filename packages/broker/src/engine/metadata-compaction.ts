/**
 * Keeps the metadata group's Raft log bounded: compacts it to a snapshot of
 * the metadata once enough entries (topic creations, durable position
 * commits) were applied since the last time, as a partition log is.
 */
import type { MetadataCommand, MetadataSnapshot } from '../core/metadata/metadata.js';
import type { LogFunction } from '../observability/logger.js';
import type { RaftGroup } from '../runtime/raft-group.js';
import type { DurableRaftStorage } from '../storage/raft-storage.js';
import { CHECKPOINT_ENTRIES } from './hosted-partition.js';

export interface MetadataCompactionContext {
  group: () => RaftGroup<MetadataCommand, unknown, MetadataSnapshot>;
  storage: () => DurableRaftStorage<MetadataCommand, MetadataSnapshot>;
  /** The metadata as of the last applied entry. */
  snapshot: () => MetadataSnapshot;
  /** Log bytes a leader keeps for a lagging follower before it compacts anyway. */
  raftLogMaxBytes: number;
  log: LogFunction;
}

export class MetadataCompaction {
  /** The metadata log's last compaction point. */
  private compactedAt = 0;
  private compacting = false;

  constructor(private readonly ctx: MetadataCompactionContext) {}

  /** Compacts when due; a leader waits for its followers unless the log grew too big. */
  maybeCompact(): void {
    const meta = this.ctx.group();
    const storage = this.ctx.storage();
    const applied = meta.applied;
    if (this.compacting || applied - this.compactedAt < CHECKPOINT_ENTRIES) return;
    const lagging = meta.isLeader() && meta.status().progress.some((p) => p.match < applied);
    if (lagging && storage.fileBytes < this.ctx.raftLogMaxBytes) return;
    this.compacting = true;
    meta
      // Between two Readys: the state is exactly that of the last applied entry.
      .compact(async () => {
        const index = meta.applied;
        if (index <= (storage.memory.snapshot()?.meta.index ?? 0)) return;
        await storage.compact(index, this.ctx.snapshot());
        this.compactedAt = index;
      })
      .catch((err: unknown) => this.ctx.log('warn', 'metadata compaction failed', { error: String(err) }))
      .finally(() => {
        this.compacting = false;
      });
  }
}
