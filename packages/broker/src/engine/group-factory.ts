/**
 * Creates the Raft groups of a broker with their storage: the metadata group
 * and each hosted partition's (its log in memory or on disk, its Raft log,
 * the group, and on disk its maintenance). Owns every group's Raft log.
 */
import { join } from 'node:path';
import { RelayError } from '@relaymq/sdk/protocol';
import type { MetadataCommand, MetadataSnapshot } from '../core/metadata/metadata.js';
import { applyPublish } from '../core/partition/apply.js';
import { parsePublishCommand, type PublishCommand } from '../core/partition/command.js';
import { Partition, type AppendOutcome, type PartitionLog } from '../core/partition/partition.js';
import { PartitionProjection } from '../core/partition/projection.js';
import { isMember, type ConfState, type Entry, type NodeId, type RaftConfigOptions, type Snapshot, type Storage } from '../core/raft/index.js';
import type { PeerTransport } from '../net/peer-transport.js';
import type { LogFunction } from '../observability/logger.js';
import type { BrokerObserver } from '../observability/observer.js';
import type { GroupClock } from '../runtime/group-clock.js';
import type { HeartbeatCoalescer } from '../runtime/heartbeat-coalescer.js';
import { RaftGroup, type RaftGroupOptions } from '../runtime/raft-group.js';
import { DiskPartition, parseCheckpoint, type PartitionCheckpoint } from '../storage/disk-partition.js';
import type { OpenSync } from '../storage/clean-shutdown.js';
import type { StorageLayout } from '../storage/data-layout.js';
import { nodeFileSystem, type FileSystem } from '../storage/fs.js';
import { HardStateJournal } from '../storage/hard-state-journal.js';
import { OpenFileCache } from '../storage/open-files.js';
import { deleteReplicaFiles } from '../storage/replica-files.js';
import { DurableRaftStorage, type RaftLogStorage, type RaftStorageOptions } from '../storage/raft-storage.js';
import { SegmentRaftStorage, type RecordPage } from '../storage/segment-raft-storage.js';
import { StoredCounts } from '../storage/stored-counts.js';
import type { RetentionPolicy } from '../storage/segments/index.js';
import { HostedPartition, type PartitionGroup, type PartitionUpkeep, type UpkeepContext } from './hosted-partition.js';
import { UnifiedPartition, UnifiedUpkeep, type UnifiedStorage } from './unified-partition.js';
import type { PartitionHooks } from './partition-hooks.js';
import { UnifiedReplica, type ReplicaBroker } from './unified-replica.js';
import type { LedGroup } from './leader-forwarding.js';
import type { FetchResponse } from './peer-messages.js';

/** The metadata group's id. */
export const META_GROUP = 'meta';

/** A partition group's id. */
export const partitionGroupId = (topic: string, partition: number): string => `p/${topic}/${partition}`;
/** Splits a partition group's id (see {@link partitionGroupId}); undefined for other groups (`meta`). */
export function parsePartitionGroup(group: string): { topic: string; partition: number } | undefined {
  const match = /^p\/(.+)\/(\d+)$/.exec(group);
  if (match === null) return undefined;
  return { topic: match[1] as string, partition: Number(match[2]) };
}

/**
 * The peer-transport channel of a partition group: `raft/<id>`, with the
 * topic's incarnation (see TopicMetadata.incarnation) when it has one, so
 * the Raft messages of a deleted topic's group never reach the group of the
 * topic created again under its name (a broker that was down may still run
 * the old one until its metadata catches up). Topic names have no `#`.
 */
export const partitionChannel = (topic: string, partition: number, incarnation: number | undefined): string =>
  incarnation === undefined ? `raft/${partitionGroupId(topic, partition)}` : `raft/${partitionGroupId(topic, partition)}#${incarnation}`;

/** A group id as a file name: `/` is not allowed in one. */
const fileName = (group: string): string => group.replace(/\//g, '~');

/** The part of a group's options that is the broker's (see `GroupFactory.groupOptions`). */
type GroupBase = Pick<RaftGroupOptions<unknown, unknown, unknown>, 'id' | 'self' | 'transport' | 'config' | 'clock' | 'heartbeats' | 'log' | 'observer'>;

/** What the factory needs of the engine's settings. */
export interface GroupFactoryOptions {
  self: NodeId;
  transport: PeerTransport;
  dataDir: string | undefined;
  dedupeWindow: number;
  retentionBytes: number;
  fsync: RaftStorageOptions['fsync'];
  fsyncIntervalMs: number;
  segmentBytes: number;
  /** Segment files open at most over every partition log (see {@link OpenFileCache}). */
  maxOpenSegmentFiles: number;
  /** Raft log files open at most over every group (see {@link OpenFileCache}). */
  maxOpenRaftLogFiles: number;
  raftLogMaxBytes: number;
  /** How partitions are stored on disk (docs/storage.md), with `dataDir`. */
  storage: { layout: StorageLayout };
  fileSystem: FileSystem | undefined;
  /** Whether the logs opened fsync what they take as durable (after an unclean stop: storage/clean-shutdown.ts). @defaultValue they do */
  openSync?: OpenSync;
  raftConfig: RaftConfigOptions;
  /** Ticks the groups that are awake, and counts their Raft traffic. */
  clock: GroupClock;
  /** The broker's heartbeat coalescer, handed to every group. */
  heartbeats?: HeartbeatCoalescer;
  now: () => number;
  observer?: BrokerObserver;
  log: LogFunction;
}

/** A partition group as created: its log, and on disk the maintenance that keeps it bounded. */
export interface OpenedPartition {
  group: PartitionGroup;
  log: PartitionLog;
  hosted: PartitionUpkeep | undefined;
}

export type MetadataGroup = RaftGroup<MetadataCommand, unknown, MetadataSnapshot>;

export class GroupFactory {
  /** The Raft log of every group, by group id. */
  private readonly storages = new Map<string, RaftLogStorage<unknown, unknown>>();
  /** Groups whose checkpoint was found behind their Raft snapshot (logged once each). */
  private readonly behindReported = new Set<string>();
  /** The bound on open segment files, shared by every partition log of this broker. */
  readonly openSegmentFiles: OpenFileCache;
  /** The bound on open Raft log files, shared by every group of this broker (a quiesced group writes nothing for long). */
  readonly openRaftLogFiles: OpenFileCache;
  /** Every group's Raft settings (one object for all). */
  private readonly raftConfig: RaftConfigOptions;
  /** The hard states of the unified partition groups (opened with the first of them): their votes share fsyncs. */
  private hardStates: Promise<HardStateJournal> | undefined;
  /** The broker's part of every unified partition replica (one object for all). */
  private readonly replicaBroker: ReplicaBroker;

  constructor(private readonly options: GroupFactoryOptions) {
    // Idle groups quiesce unless the settings say otherwise; the broker's failure detector wakes their followers (ClusterEngine.peerDown).
    // Under fsync `interval` a replica acknowledges entries before their fsync: a power cut may lose some (RaftConfig.unsyncedAcks).
    // Under `always` the data directory may still come from an `interval` run that lost some: the directory does not say
    // (RaftConfig.unsyncedAcksBeforeStart; without it such a follower's first heartbeat throws, and the broker crash-loops).
    const fsync = options.fsync === 'interval' ? { unsyncedAcks: true } : { unsyncedAcksBeforeStart: true };
    this.raftConfig = { quiesce: true, ...options.raftConfig, ...fsync };
    this.openSegmentFiles = new OpenFileCache(options.maxOpenSegmentFiles);
    this.openRaftLogFiles = new OpenFileCache(options.maxOpenRaftLogFiles);
    const { self, transport, clock, heartbeats, log, observer, now, raftLogMaxBytes } = options;
    this.replicaBroker = { self, transport, config: this.raftConfig, clock, heartbeats, log, observer, now, raftLogMaxBytes };
  }

  /** Opens the metadata log (on disk, or in memory without `dataDir`). */
  openMetadataStorage(brokers: readonly NodeId[]): Promise<DurableRaftStorage<MetadataCommand, MetadataSnapshot>> {
    return this.storage<MetadataCommand, MetadataSnapshot>(META_GROUP, brokers);
  }

  /** The metadata group on `storage` (whose configuration says who votes), resuming after `applied`. */
  metadataGroup(
    storage: DurableRaftStorage<MetadataCommand, MetadataSnapshot>,
    state: Pick<RaftGroupOptions<MetadataCommand, unknown, MetadataSnapshot>, 'applied' | 'parseData' | 'parseSnapshot' | 'installSnapshot' | 'apply' | 'onLeaderChange' | 'onTransferChange' | 'onConfChange' | 'joining'>,
  ): MetadataGroup {
    return new RaftGroup<MetadataCommand, unknown, MetadataSnapshot>(this.groupOptions<MetadataCommand, unknown, MetadataSnapshot>(META_GROUP, { storage, ...state }));
  }

  /**
   * Opens a partition's log and Raft log and creates its group; on failure,
   * leaves nothing open. `replicas` bootstrap a new Raft log; a broker its
   * stored configuration does not name (a move's new replica, or one removed)
   * starts the group joining: it never campaigns, and waits to be added.
   */
  async partition(topic: string, partition: number, replicas: readonly NodeId[], hooks: PartitionHooks, incarnation?: number): Promise<OpenedPartition> {
    const id = partitionGroupId(topic, partition);
    const { dataDir, dedupeWindow, retentionBytes, segmentBytes } = this.options;
    if (dataDir !== undefined && this.options.storage.layout === 'unified') return this.unifiedPartition(dataDir, topic, partition, replicas, hooks, incarnation);
    const disk =
      dataDir === undefined
        ? undefined
        : await DiskPartition.open(join(dataDir, 'partitions', fileName(id)), this.options.fileSystem ?? nodeFileSystem, {
            dedupeWindow,
            segments: { segmentBytes, tailCacheBytes: 4 * 1024 * 1024, openFiles: this.openSegmentFiles, ...this.openSyncOption() },
            report: (message, fields) => this.options.log('error', message, { group: id, ...fields }),
          });
    const log: PartitionLog = disk ?? new Partition({ dedupeWindow, retentionBytes });
    let storage: DurableRaftStorage<PublishCommand, PartitionCheckpoint> | undefined;
    try {
      storage = await this.storage<PublishCommand, PartitionCheckpoint>(id, replicas);
      if (disk !== undefined) await this.catchUpToSnapshot(id, disk, storage, hooks);
      const checkpoint = disk?.checkpointed;
      if (checkpoint !== undefined) storage.resumeAt(checkpoint.index, checkpoint.term, checkpoint, checkpoint.conf);
    } catch (err) {
      // Leave nothing half open: the next attempt opens both again.
      if (storage !== undefined) this.storages.delete(id);
      await Promise.allSettled([storage?.close(), disk?.close()]);
      throw err;
    }
    const checkpoint = disk?.checkpointed;
    const group: PartitionGroup = new RaftGroup<PublishCommand, AppendOutcome[], PartitionCheckpoint>(this.groupOptions<PublishCommand, AppendOutcome[], PartitionCheckpoint>(id, {
      channel: partitionChannel(topic, partition, incarnation),
      storage,
      joining: !isMember(storage.confState, this.options.self),
      applied: checkpoint?.index ?? 0,
      parseData: parsePublishCommand,
      parseSnapshot: parseCheckpoint,
      stateFailure: () => disk?.failure(),
      // Fenced after a storage failure with a state it cannot vouch for: back to the last durable checkpoint, as a restart would.
      recover:
        disk === undefined
          ? undefined
          : async () => {
              const rewound = await disk.rewind();
              if (rewound !== undefined) storage.resumeAt(rewound.index, rewound.term, rewound, rewound.conf);
              return rewound?.index ?? 0;
            },
      installSnapshot:
        disk === undefined
          ? undefined
          : async (snapshot) => {
              await disk.install(snapshot.data, (offset) => hooks.fetchFromLeader(group, offset));
              hooks.appended(); // subscribers waiting here have new messages to read
              hooks.applied();
            },
      apply: (command) => {
        const outcomes = applyPublish(log, command);
        if (outcomes.some((o) => o.kind === 'stored')) hooks.appended();
        hooks.applied();
        return outcomes;
      },
      // The leader's view of its uncommitted tail, for ack `leader` (see RaftGroup.propose).
      projection: new PartitionProjection(log, dedupeWindow),
      ...this.partitionEvents(hooks),
    }));
    const hosted =
      disk === undefined
        ? undefined
        : new HostedPartition(id, topic, disk, group, storage, Object.assign(this.upkeepContext(hooks), { fetchFromLeader: (offset: number) => hooks.fetchFromLeader(group, offset) }));
    return { group, log, hosted };
  }

  /**
   * A partition of layout `unified` (docs/storage.md): one segment log that
   * is its Raft log, the state machine only its idempotence table (a
   * {@link UnifiedPartition}). Opening applies nothing: the group resumes
   * after the recorded snapshot and applies the entries after it again up
   * to the commit, which rebuilds the idempotence table. Installing a
   * leader's snapshot first copies the leader's records below it (a
   * backfill), so this replica holds every committed message too.
   */
  private async unifiedPartition(
    dataDir: string,
    topic: string,
    partition: number,
    replicas: readonly NodeId[],
    hooks: PartitionHooks,
    incarnation: number | undefined,
  ): Promise<OpenedPartition> {
    const id = partitionGroupId(topic, partition);
    const { dedupeWindow, segmentBytes, fsync, fsyncIntervalMs } = this.options;
    // The replica counts entries for the storage; its counts project them over the applied state, built once the storage is open (nothing is appended before).
    const replica = new UnifiedReplica(this.replicaBroker, id, partitionChannel(topic, partition, incarnation), hooks);
    const storage: UnifiedStorage = await SegmentRaftStorage.open<PublishCommand, PartitionCheckpoint>(join(dataDir, 'partitions', fileName(id)), replicas, {
      fsync,
      fsyncIntervalMs,
      hardStates: { journal: await this.hardStateJournal(dataDir), key: fileName(id) },
      fs: this.options.fileSystem ?? nodeFileSystem,
      openFiles: this.openSegmentFiles,
      ...this.openSyncOption(),
      // Only the active segment is read whole on open: a restart does not rescan the partition.
      segments: { segmentBytes, tailCacheBytes: 4 * 1024 * 1024, verifyOnOpen: 'active' },
      timestampOf: entryTimestamp,
      snapshotEndOffset: checkpointEndOffset,
      counts: replica,
      report: (message, fields) => this.options.log('error', message, { group: id, ...fields }),
      onFailure: (failure) =>
        failure === undefined
          ? this.options.log('info', 'partition log writes work again', { group: id })
          : this.options.log('error', 'partition log write failed; retrying', { group: id, code: failure.code, error: failure.message }),
    });
    let log: UnifiedPartition;
    try {
      log = new UnifiedPartition(storage, dedupeWindow, await storage.firstHeldOffset());
    } catch (err) {
      await storage.close().catch(() => {});
      throw err;
    }
    this.storages.set(id, storage as RaftLogStorage<unknown, unknown>);
    replica.open(storage, log, new StoredCounts(log, dedupeWindow, replica), dedupeWindow, !isMember(storage.confState, this.options.self));
    const group: PartitionGroup = new RaftGroup<PublishCommand, AppendOutcome[], PartitionCheckpoint>(replica);
    const hosted = new UnifiedUpkeep(id, topic, log, group, storage, replica);
    replica.bind(group, hosted);
    return { group, log, hosted };
  }

  /**
   * A data dir whose segment-log checkpoint is behind its Raft snapshot (the
   * Raft log was compacted past what the messages made durable: a stale
   * checkpoint written over a leader's snapshot by a broker before the fix,
   * see DiskPartition.writeCheckpoint) cannot resume: the entries between
   * the two are gone from the Raft log, and they cannot be applied again.
   * The snapshot's data says what the state is at its index, so it is
   * installed as a follower installs a leader's: the missing messages are
   * copied from another replica (each holds every committed message), then
   * the checkpoint is the snapshot's. Until then no group exists here: this
   * replica neither votes, leads nor serves (the others, a quorum, go on),
   * and its Raft log — term, vote and entries — is left as it is. If no
   * other replica can serve yet, this throws and hosting is retried.
   */
  private async catchUpToSnapshot(
    id: string,
    disk: DiskPartition,
    storage: DurableRaftStorage<PublishCommand, PartitionCheckpoint>,
    hooks: PartitionHooks,
  ): Promise<void> {
    const snapshot = storage.memory.snapshot();
    const checkpointIndex = disk.checkpointed?.index ?? 0;
    if (snapshot === undefined || snapshot.meta.index <= checkpointIndex) return;
    const data = parseCheckpoint(snapshot.data);
    if (data === undefined || data.index < snapshot.meta.index) {
      throw new RelayError('STORAGE_ERROR', `${id}: Raft snapshot ${snapshot.meta.index} holds no usable partition state`);
    }
    if (!this.behindReported.has(id)) {
      this.behindReported.add(id);
      this.options.log('warn', 'partition checkpoint is behind its Raft snapshot; catching up from another replica before hosting it', {
        group: id,
        checkpointIndex,
        snapshotIndex: snapshot.meta.index,
      });
    }
    const conf = storage.confState;
    const others = [...conf.voters, ...(conf.learners ?? [])].filter((replica) => replica !== this.options.self);
    const failures: string[] = [];
    for (const replica of others) {
      try {
        await disk.install(data, (offset) => hooks.fetchFromLeader({ id, leader: replica, confState: conf }, offset));
        this.behindReported.delete(id);
        this.options.log('info', 'partition caught up to its Raft snapshot', { group: id, from: replica, index: data.index });
        return;
      } catch (err) {
        failures.push(`${replica}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    throw new RelayError('STORAGE_ERROR', `state machine at ${checkpointIndex} is behind its Raft snapshot ${snapshot.meta.index}; no replica could serve the messages yet (${failures.join('; ') || 'no other replica'})`);
  }

  /**
   * The index a restarted group must have applied to hold again what it had
   * committed: the last entry up to `commit` that changes the state machine.
   * The entries after it (a new leader's empty entry) change nothing, and
   * applying them announces nothing, so waiting for them could only time out.
   */
  recoveryTarget(group: { readonly id: string; readonly applied: number; status(): { commit: number } }): number {
    const commit = group.status().commit;
    return lastStateEntry(this.storages.get(group.id)?.reader, group.applied, commit);
  }

  /**
   * Deletes a partition replica this broker no longer holds (moved away):
   * closes its Raft log and its partition log, then removes their files.
   * The group must be stopped first.
   */
  async dropPartition(topic: string, partition: number, log: { close(): Promise<void> } | undefined): Promise<void> {
    const id = partitionGroupId(topic, partition);
    const storage = this.storages.get(id);
    this.storages.delete(id);
    await Promise.allSettled([storage?.close(), log?.close()]);
    const { dataDir } = this.options;
    if (dataDir === undefined) return;
    await deleteReplicaFiles(join(dataDir, 'partitions', fileName(id)), join(dataDir, 'raft', `${fileName(id)}.log`));
    // Its term and vote go once its files are gone (a replica created again under this name also resets them),
    // unless one was opened again meanwhile: it may have voted already.
    const journal = storage instanceof SegmentRaftStorage ? await this.hardStates : undefined;
    if (!this.storages.has(id)) journal?.release(fileName(id));
  }

  /** The log of a unified partition hosted here (it serves records to replicas backfilling), if it is one. */
  unifiedStorage(group: string): UnifiedStorage | undefined {
    const storage = this.storages.get(group);
    return storage instanceof SegmentRaftStorage ? (storage as UnifiedStorage) : undefined;
  }

  /** The broker's decision on fsyncs at open, for a log's options (none given: each log fsyncs at open). */
  private openSyncOption(): { openSync?: OpenSync } {
    return this.options.openSync === undefined ? {} : { openSync: this.options.openSync };
  }

  /**
   * Closes every Raft log. Resolves to whether each made everything it wrote
   * durable (a clean stop: the broker may leave its marker, storage/clean-shutdown.ts).
   */
  async close(): Promise<boolean> {
    const storages = [...this.storages.values()];
    await Promise.all(storages.map((s) => s.close()));
    const opening = this.hardStates;
    const journal = await opening?.catch(() => undefined);
    await journal?.close().catch(() => {});
    return storages.every((s) => s.closedDurably) && (opening === undefined || journal?.closedDurably === true);
  }

  /** The journal of the unified partitions' hard states, `hardstate.journal` in the data directory (opened once; a failed open is tried again). */
  private hardStateJournal(dataDir: string): Promise<HardStateJournal> {
    const opening = (this.hardStates ??= HardStateJournal.open(join(dataDir, 'hardstate.journal'), { fs: this.options.fileSystem ?? nodeFileSystem, ...this.openSyncOption() }));
    opening.catch(() => {
      if (this.hardStates === opening) this.hardStates = undefined;
    });
    return opening;
  }

  private async storage<T, S = never>(group: string, voters: readonly NodeId[]): Promise<DurableRaftStorage<T, S>> {
    const path = this.options.dataDir === undefined ? undefined : join(this.options.dataDir, 'raft', `${fileName(group)}.log`);
    const { fsync, fsyncIntervalMs, fileSystem: fs } = this.options;
    const storage = await DurableRaftStorage.open<T, S>(path, voters, {
      fsync,
      fsyncIntervalMs,
      fs,
      openFiles: this.openRaftLogFiles,
      ...this.openSyncOption(),
      onFailure: (failure) =>
        failure === undefined
          ? this.options.log('info', 'Raft log writes work again', { group })
          : this.options.log('error', 'Raft log write failed; retrying', { group, code: failure.code, error: failure.message }),
    });
    this.storages.set(group, storage as DurableRaftStorage<unknown, unknown>);
    return storage;
  }

  /**
   * A partition group's leader, transfer and configuration changes, told to the engine: the same for both layouts
   * (a request refused during a transfer waits for its end, which only `onTransferChange` tells).
   */
  private partitionEvents(hooks: PartitionHooks): Pick<RaftGroupOptions<PublishCommand, AppendOutcome[], PartitionCheckpoint>, 'onLeaderChange' | 'onTransferChange' | 'onConfChange'> {
    return {
      onLeaderChange: () => hooks.leaderChanged(),
      onTransferChange: () => hooks.leaderChanged(),
      onConfChange: (conf, index) => hooks.confChanged(conf, index),
    };
  }

  /** What the upkeep of a partition of either layout needs from the engine, but for how it reads from the leader. */
  private upkeepContext(hooks: PartitionHooks): Omit<UpkeepContext, 'fetchFromLeader'> {
    return {
      self: this.options.self,
      now: this.options.now,
      log: this.options.log,
      raftLogMaxBytes: this.options.raftLogMaxBytes,
      retentionFor: (topic) => hooks.retentionFor(topic),
      connectedPeers: () => this.options.transport.connectedPeers(),
    };
  }

  /**
   * A group's options: the broker's part, then `own`. Built by adding `own`'s properties to an object literal, not
   * by a spread: a broker adds properties to empty objects in so many ways that V8 stops sharing their shapes, so an
   * object built by spreading gets a shape of its own (a hidden class and a descriptor array, about 1 KiB per group,
   * measured in a heap snapshot); one built from a literal shares its shape with every other group's.
   */
  private groupOptions<T, R, S>(id: string, own: Omit<RaftGroupOptions<T, R, S>, keyof GroupBase>): RaftGroupOptions<T, R, S> {
    const base: GroupBase = { id, self: this.options.self, transport: this.options.transport, config: this.raftConfig, clock: this.options.clock, heartbeats: this.options.heartbeats, log: this.options.log, observer: this.options.observer };
    return Object.assign(base, own);
  }
}

/** A unified partition entry's timestamp in its record (see `SegmentRaftStorageOptions.timestampOf`). */
const entryTimestamp = (entry: Entry<PublishCommand>): number => (entry.type === 'normal' ? entry.data.timestampMs : 0);
/** The offset after a unified partition snapshot's last message. */
const checkpointEndOffset = (snapshot: Snapshot<PartitionCheckpoint>): number => snapshot.data.endOffset;

/** The last `normal` entry in `(applied, commit]`, or `applied` when there is none. */
export function lastStateEntry(log: Storage<unknown, unknown> | undefined, applied: number, commit: number): number {
  if (log === undefined || commit > log.lastIndex()) return commit;
  for (let index = commit; index > applied; index--) {
    if (index < log.firstIndex()) return commit; // compacted past what is applied: wait for all of it
    const entry = log.entries(index, index + 1, 1)[0];
    if (entry === undefined || entry.type === 'normal') return index;
  }
  return applied;
}
