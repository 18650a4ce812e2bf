/**
 * A partition replica of layout `unified` (docs/storage.md): its segment log
 * is its Raft log (`SegmentRaftStorage`), so a message is written once. The
 * state machine holds no messages: applying an entry only checks its
 * offsets against the record and updates the idempotence table; reads go to
 * the committed records (`UnifiedPartitionReader`). Its upkeep records a
 * snapshot (the idempotence table at the applied index) now and then, which
 * bounds the in-memory window of entries and the entries a restart applies
 * again, and runs retention.
 */
import { RelayError } from '@relaymq/sdk/protocol';
import { applyPublish } from '../core/partition/apply.js';
import type { PublishCommand } from '../core/partition/command.js';
import type { AppendOutcome, BatchMessage, EncodedMessages, PartitionLog, StoredMessage } from '../core/partition/partition.js';
import { ProducerTable } from '../core/partition/producers.js';
import type { Snapshot } from '../core/raft/index.js';
import type { PartitionCheckpoint } from '../storage/disk-partition.js';
import type { RecordPage, SegmentRaftStorage } from '../storage/segment-raft-storage.js';
import type { RetentionPolicy } from '../storage/segments/index.js';
import { UnifiedPartitionReader } from '../storage/unified-reader.js';
import { DamagedReplica } from './damaged-replica.js';
import { CHECKPOINT_ENTRIES, CHECKPOINT_MS, RETENTION_MS, UpkeepSteps, hasLimits, replicaNeeds, type PartitionGroup, type PartitionUpkeep, type UpkeepContext } from './hosted-partition.js';

/** The unified partition's Raft storage; its snapshots' data is a {@link PartitionCheckpoint} (the table at the index). */
export type UnifiedStorage = SegmentRaftStorage<PublishCommand, PartitionCheckpoint>;

/** What the upkeep of a unified partition needs from the engine: the split layout's, with its repair reading records instead of messages. */
export interface UnifiedUpkeepContext extends Omit<UpkeepContext, 'fetchFromLeader'> {
  /** Reads committed records of the partition from its current leader (repair). */
  fetchRecords: (fromIndex: number) => Promise<RecordPage>;
}

/**
 * The state machine of a unified partition, and its read side: the
 * idempotence table and the offset after the last applied message. `store`
 * stores nothing: it answers the offsets the entry's record already holds
 * (decided when the entry was appended, `StoredCounts`); a different count
 * is a bug, and fences the group (the apply throws).
 */
export class UnifiedPartition implements PartitionLog {
  readonly producers: ProducerTable;
  private readonly reader: UnifiedPartitionReader;
  /** The offset after the last applied message. */
  private appliedEnd: number;
  /** The entry being applied, and what its record says it stores. */
  private applying: { index: number; firstOffset: number; count: number; stored: number } | undefined;
  /** First offset still held (refreshed after retention). */
  private start: number;
  /** Message bytes applied since the last snapshot (what the in-memory window holds, about). */
  bytesSinceSnapshot = 0;

  constructor(
    private readonly storage: UnifiedStorage,
    dedupeWindow: number,
    startOffset: number,
  ) {
    this.producers = new ProducerTable(dedupeWindow);
    this.reader = new UnifiedPartitionReader(storage);
    this.start = startOffset;
    this.appliedEnd = 0;
    this.restore(storage.memory.snapshot());
  }

  /** Back to a snapshot's state (none: the empty partition). Returns its index. */
  restore(snapshot: Snapshot<PartitionCheckpoint> | undefined): number {
    this.producers.restore(snapshot?.data.producers ?? []);
    this.appliedEnd = snapshot?.data.endOffset ?? 0;
    this.applying = undefined;
    this.bytesSinceSnapshot = 0;
    return snapshot?.meta.index ?? 0;
  }

  /** Applies the committed publish at `index`: the idempotence table, and the offsets its record holds. */
  apply(command: PublishCommand, index: number): AppendOutcome[] {
    const recorded = this.storage.offsetsOf(index);
    this.applying = { index, ...recorded, stored: 0 };
    try {
      const outcomes = applyPublish(this, command);
      const stored = this.applying.stored;
      if (stored !== recorded.count) throw mismatch(index, `applying it stores ${stored} messages, its record says ${recorded.count}`);
      return outcomes;
    } finally {
      this.applying = undefined;
    }
  }

  store(messages: readonly BatchMessage[]): number {
    const entry = this.applying;
    if (entry === undefined) throw new RelayError('STORAGE_ERROR', 'a unified partition stores messages only while applying an entry');
    if (entry.firstOffset !== this.appliedEnd) throw mismatch(entry.index, `its record starts at offset ${entry.firstOffset}, the partition is at ${this.appliedEnd}`);
    entry.stored += messages.length;
    this.appliedEnd += messages.length;
    for (const m of messages) this.bytesSinceSnapshot += m.data.length;
    return entry.firstOffset;
  }

  /** The state as of the applied entry `index` (a snapshot's data). */
  capture(index: number, term: number): PartitionCheckpoint {
    return { index, term, startOffset: this.start, endOffset: this.appliedEnd, producers: this.producers.toRecords() };
  }

  get startOffset(): number {
    return this.start;
  }

  get endOffset(): number {
    return this.appliedEnd;
  }

  get sizeBytes(): number {
    return this.storage.fileBytes;
  }

  read(offset: number, maxCount: number, maxBytes: number): Promise<StoredMessage[]> {
    return this.reader.read(offset, maxCount, maxBytes);
  }

  readEncoded(offset: number, maxCount: number, maxBytes: number): Promise<EncodedMessages> {
    return this.reader.readEncoded(offset, maxCount, maxBytes);
  }

  offsetForTime(timeMs: number): Promise<number> {
    return this.reader.offsetForTime(timeMs);
  }

  /** Reads the first offset still held again (after retention deleted segments). */
  async refreshStart(): Promise<void> {
    this.start = await this.storage.firstHeldOffset();
  }
}

/**
 * Message bytes applied since the last snapshot that make the next one due
 * at once: they bound what a restart after a crash reads back and applies
 * again (and the window held in memory) by bytes, not only by entries and
 * time, which let a busy partition's window reach 2 s of its traffic
 * (issue 12: a third of a 1 GiB partition's restart after SIGKILL).
 */
export const SNAPSHOT_BYTES = 8 * 1024 * 1024;
/** A snapshot by bytes waits for this many times the idempotence table it writes (many producers: a big table). */
const SNAPSHOT_TABLE_RATIO = 4;
/** Bytes an offset of the idempotence table takes in a snapshot, at most (msgpack). */
const TABLE_BYTES_PER_OFFSET = 9;

function mismatch(index: number, what: string): RelayError {
  return new RelayError('STORAGE_ERROR', `unified partition entry ${index}: ${what}; the group is fenced`);
}

/**
 * The upkeep of a unified partition replica: a snapshot at the applied
 * index every {@link CHECKPOINT_ENTRIES} entries, {@link SNAPSHOT_BYTES} of
 * messages or {@link CHECKPOINT_MS} (it drops the entries it covers from
 * memory; the records stay, they are the messages), except on a leader
 * while a replica lags and the window is below `raftLogMaxBytes` (that
 * replica catches up from the entries, which is cheaper than a snapshot
 * install and its backfill); retention by age, bytes and message count; and
 * the repair of damage a read found, as on the split layout: a damaged
 * replica hands leadership over, and once another broker leads, copies the
 * damaged records back from it (`SegmentRaftStorage.repair`). One step at a
 * time; a failure is logged and retried on the next round.
 */
export class UnifiedUpkeep implements PartitionUpkeep {
  private readonly steps: UpkeepSteps;
  private compactedAt: number;
  private retainedAt = 0;
  private readonly damage: DamagedReplica;
  /** About the bytes of the idempotence table the last snapshot wrote. */
  private tableBytes = 0;

  constructor(
    readonly id: string,
    readonly topic: string,
    readonly state: UnifiedPartition,
    readonly group: PartitionGroup,
    readonly storage: UnifiedStorage,
    private readonly ctx: UnifiedUpkeepContext,
  ) {
    this.compactedAt = ctx.now();
    this.steps = new UpkeepSteps(id, ctx.log);
    this.damage = new DamagedReplica(id, group, ctx);
  }

  /** Starts the next upkeep step, if one is due and none is running; true when settled (see {@link PartitionUpkeep.maintain}). */
  maintain(): boolean {
    if (this.steps.running) return false;
    // Also while fenced: a repair cut short fences the group until it completes.
    if (this.storage.segments.damaged || this.storage.repairPending) {
      this.repairDamage();
      return false;
    }
    if (this.group.fenceReason !== undefined) return false;
    const now = this.ctx.now();
    const due = this.group.applied - this.snapshotIndex();
    // Kept for a lagging replica: nothing to do until it catches up (its group wakes to send it entries) or more is applied.
    const kept = due > 0 && this.keptForLagging(this.group.applied);
    const compact = !kept && (due >= CHECKPOINT_ENTRIES || (due > 0 && (this.bytesDue() || now - this.compactedAt >= CHECKPOINT_MS)));
    const policy = this.ctx.retentionFor(this.topic);
    const limited = hasLimits(policy);
    const retain = limited && now - this.retainedAt >= RETENTION_MS;
    if (!compact && !retain) return (due <= 0 || kept) && !limited;
    this.steps.run('partition maintenance failed', async () => {
      if (compact) await this.compact(now);
      if (retain) {
        this.retainedAt = now;
        const result = await this.storage.applyRetention(policy, now);
        if (result.deletedSegments > 0) {
          await this.state.refreshStart();
          this.ctx.log('debug', 'retention deleted segments', { group: this.id, ...result });
        }
      }
    });
    return false;
  }

  /** A damaged replica hands leadership over, and once another broker leads, copies the damaged records back from it. */
  private repairDamage(): void {
    const leader = this.damage.repairSource({ corruptions: this.storage.segments.health().corruptions, repairPending: this.storage.repairPending });
    if (leader === undefined) return;
    this.steps.run('partition repair failed; retrying', async () => {
      // Called, not passed: the context's callbacks are methods (UnifiedReplica), unbound when handed over.
      await this.storage.repair((fromIndex) => this.ctx.fetchRecords(fromIndex));
      await this.state.refreshStart(); // the leader's retention may have deleted records this replica held
      this.damage.repaired(leader);
    });
  }

  /**
   * After an apply: a snapshot due by bytes starts now, not at the next
   * round (a round is 250 ms, which a busy partition fills with more than
   * {@link SNAPSHOT_BYTES}). Outside the apply loop: the caller defers it.
   */
  applied(): void {
    if (!this.steps.running && this.bytesDue()) this.maintain();
  }

  /** After the group stopped: a last snapshot at the applied index, so a restart applies nothing again. */
  async finish(): Promise<void> {
    await this.steps.settled();
    const { group } = this;
    const term = group.termOf(group.applied);
    if (term === undefined || group.applied <= this.snapshotIndex() || group.fenceReason !== undefined) return;
    await this.storage.compact(group.applied, this.state.capture(group.applied, term)).catch((err: unknown) => {
      this.ctx.log('warn', 'final snapshot failed', { group: this.id, error: String(err) });
    });
  }

  /** The storage is the group's Raft log: the factory closes it. */
  async close(): Promise<void> {}

  /** A lagging replica still needs the entries up to `index` (else it gets the snapshot and copies the records below it), unless the window grew too big. */
  private keptForLagging(index: number): boolean {
    const { group } = this;
    return this.state.bytesSinceSnapshot < this.ctx.raftLogMaxBytes && replicaNeeds(group, index);
  }

  private bytesDue(): boolean {
    return this.state.bytesSinceSnapshot >= Math.max(SNAPSHOT_BYTES, SNAPSHOT_TABLE_RATIO * this.tableBytes);
  }

  private snapshotIndex(): number {
    return this.storage.memory.snapshot()?.meta.index ?? 0;
  }

  private async compact(now: number): Promise<void> {
    const { group, state, storage } = this;
    const index = group.applied;
    const term = group.termOf(index);
    if (term === undefined) return;
    if (this.keptForLagging(index)) return;
    const data = state.capture(index, term);
    const bytes = state.bytesSinceSnapshot;
    this.tableBytes = data.producers.reduce((sum, p) => sum + p.producerId.length + TABLE_BYTES_PER_OFFSET * (p.recent.length + 1), 0);
    await group.compact(async () => {
      if (index <= this.snapshotIndex()) return;
      await storage.compact(index, data);
      state.bytesSinceSnapshot = Math.max(0, state.bytesSinceSnapshot - bytes);
    });
    this.compactedAt = now;
  }
}
