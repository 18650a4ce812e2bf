/**
 * One replica of a unified partition (docs/storage.md) as its Raft group, its
 * upkeep and its segment log see it: the group's options, the upkeep's
 * context and the log's entry counter in one object whose callbacks are
 * methods. A broker hosting thousands of idle replicas kept, for each, an
 * options object (with properties added past its shape's room), an upkeep
 * context, a counter object and a closure per callback with their contexts:
 * about 1 KiB per replica in a heap snapshot, where methods on a prototype
 * cost nothing per replica.
 */
import { parsePublishCommand, type PublishCommand } from '../core/partition/command.js';
import type { AppendOutcome } from '../core/partition/partition.js';
import { PartitionProjection } from '../core/partition/projection.js';
import type { ConfState, Entry, NodeId, RaftConfigOptions, Snapshot } from '../core/raft/index.js';
import type { PeerTransport } from '../net/peer-transport.js';
import type { LogFunction } from '../observability/logger.js';
import type { BrokerObserver } from '../observability/observer.js';
import type { GroupClock } from '../runtime/group-clock.js';
import type { HeartbeatCoalescer } from '../runtime/heartbeat-coalescer.js';
import type { RaftGroupOptions } from '../runtime/raft-group.js';
import { parseCheckpoint, type PartitionCheckpoint } from '../storage/disk-partition.js';
import type { EntryCounter, RecordPage } from '../storage/segment-raft-storage.js';
import type { CountsSource, StoredCounts } from '../storage/stored-counts.js';
import type { RetentionPolicy } from '../storage/segments/index.js';
import type { PartitionHooks } from './partition-hooks.js';
import type { PartitionGroup } from './hosted-partition.js';
import type { UnifiedPartition, UnifiedStorage, UnifiedUpkeep, UnifiedUpkeepContext } from './unified-partition.js';

/** The broker's part of every replica (one object for all, see `GroupFactory`): the fields each replica copies. */
export type ReplicaBroker = Pick<UnifiedReplica, 'self' | 'transport' | 'config' | 'clock' | 'heartbeats' | 'log' | 'observer' | 'now' | 'raftLogMaxBytes'>;

/**
 * A unified partition replica's callbacks. Created before its storage opens
 * (the storage counts entries through it, once {@link open} gave it its
 * counts: nothing is appended before); {@link bind} gives it its group and
 * upkeep, which call it only once they exist.
 */
export class UnifiedReplica
  implements RaftGroupOptions<PublishCommand, AppendOutcome[], PartitionCheckpoint>, UnifiedUpkeepContext, EntryCounter<PublishCommand>, CountsSource
{
  readonly self: NodeId;
  readonly transport: PeerTransport;
  readonly config: RaftConfigOptions;
  readonly clock: GroupClock;
  readonly heartbeats: HeartbeatCoalescer | undefined;
  readonly log: LogFunction;
  readonly observer: BrokerObserver | undefined;
  readonly now: () => number;
  readonly raftLogMaxBytes: number;
  readonly parseData = parsePublishCommand;
  readonly parseSnapshot = parseCheckpoint;
  /** Set by {@link bind}. */
  storage!: UnifiedStorage;
  joining = false;
  /** The index the group resumes after: the recorded snapshot's, whose idempotence table the state holds. */
  applied = 0;
  /** The leader's view of its uncommitted tail, for ack `leader` (see RaftGroup.propose). */
  projection: PartitionProjection | undefined;
  private state: UnifiedPartition | undefined;
  private counts: StoredCounts | undefined;
  private group: PartitionGroup | undefined;
  private hosted: UnifiedUpkeep | undefined;

  constructor(
    broker: ReplicaBroker,
    readonly id: string,
    readonly channel: string,
    private readonly hooks: PartitionHooks,
  ) {
    this.self = broker.self;
    this.transport = broker.transport;
    this.config = broker.config;
    this.clock = broker.clock;
    this.heartbeats = broker.heartbeats;
    this.log = broker.log;
    this.observer = broker.observer;
    this.now = broker.now;
    this.raftLogMaxBytes = broker.raftLogMaxBytes;
  }

  /** The replica's storage opened and its state built: what the group's options need. */
  open(storage: UnifiedStorage, state: UnifiedPartition, counts: StoredCounts, dedupeWindow: number, joining: boolean): void {
    this.storage = storage;
    this.state = state;
    this.counts = counts;
    this.joining = joining;
    this.applied = storage.memory.snapshot()?.meta.index ?? 0;
    this.projection = new PartitionProjection(state, dedupeWindow);
  }

  /** The group and the upkeep, once created. */
  bind(group: PartitionGroup, hosted: UnifiedUpkeep): void {
    this.group = group;
    this.hosted = hosted;
  }

  // The group's callbacks (RaftGroupOptions).

  /** Fenced with a state it cannot vouch for: back to the recorded snapshot; the entries after it are applied again. */
  async recover(): Promise<number> {
    this.counts?.reset();
    return (this.state as UnifiedPartition).restore(this.storage.memory.snapshot());
  }

  /** The leader's records up to the snapshot are copied first (this replica serves them too), then its state is the snapshot's. */
  async installSnapshot(snapshot: Snapshot<PartitionCheckpoint>): Promise<void> {
    const state = this.state as UnifiedPartition;
    await this.storage.backfill(snapshot, snapshot.data.endOffset, (fromIndex) => this.fetchRecords(fromIndex));
    this.counts?.reset();
    state.restore(snapshot);
    await state.refreshStart();
    this.log('info', 'installed a leader snapshot: records below it copied', { group: this.id, index: snapshot.meta.index, start: state.startOffset, end: state.endOffset });
    this.hooks.appended(); // subscribers waiting here have new messages to read
    this.hooks.applied();
  }

  apply(command: PublishCommand, index: number): AppendOutcome[] {
    const outcomes = (this.state as UnifiedPartition).apply(command, index);
    this.counts?.appliedUpTo(index);
    if (outcomes.some((o) => o.kind === 'stored')) this.hooks.appended();
    this.hooks.applied();
    // A snapshot due by bytes starts at once, out of the apply loop (it bounds what a restart after a crash reads back).
    const hosted = this.hosted;
    if (hosted !== undefined) queueMicrotask(() => hosted.applied());
    return outcomes;
  }

  // A leader, transfer or configuration change, told to the engine (a request refused during a transfer waits for its end, which only `onTransferChange` tells).
  onLeaderChange(): void {
    this.hooks.leaderChanged();
  }

  onTransferChange(): void {
    this.hooks.leaderChanged();
  }

  onConfChange(conf: ConfState, index: number): void {
    this.hooks.confChanged(conf, index);
  }

  // The upkeep's context (UnifiedUpkeepContext).

  retentionFor(topic: string): RetentionPolicy {
    return this.hooks.retentionFor(topic);
  }

  connectedPeers(): readonly string[] {
    return this.transport.connectedPeers();
  }

  /** Committed records from `fromIndex`, from the group's leader (a backfill below its snapshot, or a repair). */
  fetchRecords(fromIndex: number): Promise<RecordPage> {
    return this.hooks.fetchRecords(this.group as PartitionGroup, fromIndex);
  }

  // The segment log's entry counter (EntryCounter): the counts project entries over the applied state; nothing is appended before they exist.

  count(entry: Entry<PublishCommand>): number {
    return (this.counts as StoredCounts).count(entry);
  }

  truncated(index: number): void {
    this.counts?.truncated(index);
  }

  // What the counts read (CountsSource).

  appliedIndex(): number {
    return this.group?.applied ?? this.applied;
  }

  entries(lo: number, hi: number): readonly Entry<PublishCommand>[] {
    return this.storage.memory.entries(lo, hi, Number.MAX_SAFE_INTEGER);
  }
}
