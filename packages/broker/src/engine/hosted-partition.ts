import type { AppendOutcome } from '../core/partition/partition.js';
import type { PublishCommand } from '../core/partition/command.js';
import type { NodeId } from '../core/raft/index.js';
import type { RaftGroup } from '../runtime/raft-group.js';
import type { DiskPartition, Fetch, PartitionCheckpoint } from '../storage/disk-partition.js';
import type { DurableRaftStorage } from '../storage/raft-storage.js';
import type { RetentionPolicy } from '../storage/segments/index.js';
import { DamagedReplica } from './damaged-replica.js';

/** A partition's Raft group on this broker. */
export type PartitionGroup = RaftGroup<PublishCommand, AppendOutcome[], PartitionCheckpoint>;

/** A partition is checkpointed once this many entries were applied since the last checkpoint, or after CHECKPOINT_MS. */
export const CHECKPOINT_ENTRIES = 2000;
export const CHECKPOINT_MS = 2000;
/** Retention runs at most this often per partition. */
export const RETENTION_MS = 1000;

/**
 * Whether `group` leads and a replica it sends entries to still needs those up
 * to `index`: a voter behind, or a learner (the new replica of a move, which
 * may take longer to install a snapshot than the leader takes to make the
 * next one: compacting then would send it yet another).
 */
export function replicaNeeds(group: Pick<PartitionGroup, 'isLeader' | 'status'>, index: number): boolean {
  if (!group.isLeader()) return false;
  const { progress, learnerProgress } = group.status();
  return progress.some((p) => p.match < index) || (learnerProgress ?? []).some((p) => p.match < index);
}

/** Whether `policy` sets any limit (without one, retention has nothing to do, now or later). */
export function hasLimits(policy: RetentionPolicy): boolean {
  return Object.values(policy).some((limit) => limit !== undefined);
}

/** What the engine drives of a partition replica kept on disk (either layout): its upkeep, and closing its log. */
export interface PartitionUpkeep {
  /**
   * Starts the next upkeep step, if one is due and none is running. True
   * when settled: nothing is due until the partition changes (no entry
   * applied since the last checkpoint, no retention limits to apply as time
   * passes, no step running, not damaged or fenced).
   */
  maintain(): boolean;
  /** After the group stopped: waits for the running step, then records where a restart resumes. */
  finish(): Promise<void>;
  /** Closes the partition's log (what the group's Raft log does not close). */
  close(): Promise<void>;
}

/** What the upkeep of a partition needs from the engine. */
export interface UpkeepContext {
  self: NodeId;
  now: () => number;
  log: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
  /** Raft log bytes a leader keeps for a lagging replica before compacting anyway. */
  raftLogMaxBytes: number;
  retentionFor: (topic: string) => RetentionPolicy;
  connectedPeers: () => readonly string[];
  /** Reads the partition from its current leader (repair). */
  fetchFromLeader: (offset: number) => ReturnType<Fetch>;
}

/** An upkeep's steps, one at a time: a failure is logged, and the next round tries again. */
export class UpkeepSteps {
  /** The step running now (resolved when none). */
  private current: Promise<void> = Promise.resolve();
  private active = false;

  constructor(
    private readonly id: string,
    private readonly log: UpkeepContext['log'],
  ) {}

  /** Whether a step runs now. */
  get running(): boolean {
    return this.active;
  }

  /** Starts `step`; a failure is logged as `failure`. */
  run(failure: string, step: () => Promise<void>): void {
    this.active = true;
    this.current = step()
      .catch((err: unknown) => this.log('warn', failure, { group: this.id, error: String(err) }))
      .finally(() => {
        this.active = false;
      });
  }

  /** Resolves once the running step (if any) ended. */
  settled(): Promise<void> {
    return this.current;
  }
}

/**
 * One partition replica kept on disk by this broker, and its upkeep:
 * checkpoints (then the Raft entries they cover are dropped), retention, and
 * the repair of a damaged log. One step at a time; a failure is logged and
 * retried on the next round.
 */
export class HostedPartition implements PartitionUpkeep {
  private readonly steps: UpkeepSteps;
  private checkpointedAt: number;
  private retainedAt = 0;
  private readonly damage: DamagedReplica;

  constructor(
    readonly id: string,
    readonly topic: string,
    readonly partition: DiskPartition,
    readonly group: PartitionGroup,
    readonly storage: DurableRaftStorage<PublishCommand, PartitionCheckpoint>,
    private readonly ctx: UpkeepContext,
  ) {
    this.checkpointedAt = ctx.now();
    this.steps = new UpkeepSteps(id, ctx.log);
    this.damage = new DamagedReplica(id, group, ctx);
  }

  /** Starts the next upkeep step, if one is due and none is running; true when settled (see {@link PartitionUpkeep.maintain}). */
  maintain(): boolean {
    // Fenced: the state is being rewound to what is durable; a checkpoint now could record a state never durable.
    if (this.steps.running || this.group.fenceReason !== undefined) return false;
    if (this.partition.damaged) {
      this.repairDamage();
      return false;
    }
    const now = this.ctx.now();
    const due = this.group.applied - (this.partition.checkpointed?.index ?? 0);
    const checkpoint = due >= CHECKPOINT_ENTRIES || (due > 0 && now - this.checkpointedAt >= CHECKPOINT_MS);
    const policy = this.ctx.retentionFor(this.topic);
    // Without limits there is nothing to look at (and no segment lock to take).
    const limited = hasLimits(policy);
    const retain = limited && now - this.retainedAt >= RETENTION_MS;
    if (!checkpoint && !retain) return due <= 0 && !limited;
    this.steps.run('partition maintenance failed', async () => {
      if (checkpoint) await this.checkpoint();
      if (retain) {
        this.retainedAt = now;
        const result = await this.partition.applyRetention(policy, now);
        if (result.deletedSegments > 0) this.ctx.log('debug', 'retention deleted segments', { group: this.id, ...result });
      }
    });
    return false;
  }

  /**
   * After the group stopped: waits for the running step, then writes a last
   * checkpoint, so the next start resumes from here instead of applying the
   * Raft log again.
   */
  async finish(): Promise<void> {
    await this.steps.settled();
    const { group, partition } = this;
    const term = group.termOf(group.applied);
    if (term === undefined || group.applied <= (partition.checkpointed?.index ?? 0) || !partition.capturable || group.fenceReason !== undefined) return;
    await partition.writeCheckpoint(partition.capture(group.applied, term, this.storage.memory.confAt(group.applied))).catch((err: unknown) => {
      this.ctx.log('warn', 'final checkpoint failed', { group: this.id, error: String(err) });
    });
  }

  close(): Promise<void> {
    return this.partition.close();
  }

  /** A damaged replica hands leadership over, and once another broker leads, repairs itself from it (see {@link DamagedReplica}). */
  private repairDamage(): void {
    const leader = this.damage.repairSource({ corruptions: this.partition.log.health().corruptions });
    if (leader === undefined) return;
    this.steps.run('partition repair failed; retrying', async () => {
      await this.partition.repair(this.ctx.fetchFromLeader);
      this.damage.repaired(leader);
    });
  }

  /** Checkpoints the partition at its last applied entry, then compacts its Raft log up to it. */
  private async checkpoint(): Promise<void> {
    const { group, partition, storage } = this;
    const index = group.applied;
    const term = group.termOf(index);
    // A leader's snapshot being installed (or a rewind): `applied` is still the old index while the messages are
    // already (part of) the snapshot's, so no checkpoint now; the install records its own.
    if (term === undefined || !partition.capturable) return;
    const checkpoint = partition.capture(index, term, storage.memory.confAt(index));
    // Refused when an install or rewind replaced the state since the capture: nothing was recorded, nothing to compact.
    if (!(await partition.writeCheckpoint(checkpoint))) return;
    this.checkpointedAt = this.ctx.now();
    const covered = (): boolean => index <= (storage.memory.snapshot()?.meta.index ?? 0);
    if (covered()) return;
    // A leader keeps what a lagging replica still needs, unless the log grew too big: that replica then gets the snapshot.
    const lagging = replicaNeeds(group, index);
    if (lagging && storage.fileBytes < this.ctx.raftLogMaxBytes) return;
    // Asked again between two Readys: a leader's snapshot installed meanwhile may already cover `index`. And never
    // beyond what the segment log has made durable: only up to the checkpoint written and still in force (a rewind
    // since may have brought back an older one).
    await group.compact(async () => {
      if (!covered() && (partition.checkpointed?.index ?? 0) >= index) await storage.compact(index, checkpoint);
    });
  }
}
