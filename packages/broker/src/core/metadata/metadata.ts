import type { Cursor } from '@relaymq/sdk/protocol';
import { DurablePositions, type CommitPositionsCommand, type CommitResult } from './positions.js';
import { ConsumerGroups, parseGroupRecords, type GroupCommand, type GroupRecord, type GroupResult } from './groups.js';
import { ReplicaMoves, parseMovesRecord, type MoveCommand, type MoveResult, type PartitionAssignment, type ReplicaMove } from './moves.js';

export type { PartitionAssignment } from './moves.js';

/** The metadata commands moves.ts applies. */
const MOVE_COMMAND_TYPES: ReadonlySet<string> = new Set<MoveCommand['type']>(['move-replica', 'finish-move', 'cancel-move', 'drain-broker', 'forget-broker', 'rebalance', 'prefer-replica']);
const isMoveCommand = (command: MetadataCommand): command is MoveCommand => MOVE_COMMAND_TYPES.has(command.type);

/**
 * Cluster metadata as a pure, replicated state machine: the topics, their
 * partition counts, which brokers replicate each partition, and the positions
 * of durable subscriptions. It is applied
 * in the same order on every voting broker (through the metadata Raft group),
 * so every broker computes the same assignment.
 */

export interface TopicMetadata {
  topic: string;
  replicationFactor: number;
  partitions: PartitionAssignment[];
  /**
   * Which creation of this name the topic is: the number of topics deleted
   * before it was created (absent: none, every topic of a cluster that never
   * deleted one). A topic deleted and created again under its name differs
   * from the old one here, so a broker still holding the old topic's replica
   * (it was down) drops it instead of serving it as the new topic's.
   */
  incarnation?: number;
}

/** Creates a topic unless it exists. */
export interface CreateTopicCommand {
  type: 'create-topic';
  topic: string;
  partitions: number;
  /** Requested copies; capped by the number of brokers. */
  replicationFactor: number;
  /**
   * The brokers replicas may be placed on, chosen by the proposer (the
   * metadata group's members when it proposed), so every broker computes the
   * same assignment even while their own broker lists differ (one joined).
   * Absent (entries from before brokers could join): the configured brokers.
   */
  brokers?: string[];
}

/**
 * Creates several topics in one entry, in order, each unless it exists:
 * what many concurrent requests for new topics become, so that thousands of
 * partitions take one commit round rather than one per topic.
 */
export interface CreateTopicsCommand {
  type: 'create-topics';
  topics: NewTopic[];
  /** The brokers every topic of the entry may be placed on: as {@link CreateTopicCommand.brokers}. */
  brokers?: string[];
}

/** One topic of a {@link CreateTopicsCommand}. */
export type NewTopic = Omit<CreateTopicCommand, 'type' | 'brokers'>;

/**
 * Deletes a topic: its partitions' assignments, replica moves in progress,
 * durable positions and consumer-group partitions and positions. Every broker
 * hosting a replica stops the partition's group and deletes its files once
 * it applies the entry (engine/cluster.ts). Deterministic like the rest.
 */
export interface DeleteTopicCommand {
  type: 'delete-topic';
  topic: string;
}

/** What deleting a topic produced: the topic as it was, or `missing` when there was none. */
export type DeleteTopicResult = { kind: 'topic-deleted'; topic: TopicMetadata } | { kind: 'missing'; topic: string };

/** Most topics in one {@link CreateTopicsCommand} (8,192 partitions of 8 topics each would be 65,536 assignments). */
export const MAX_TOPICS_PER_ENTRY = 1024;

/**
 * Commands the metadata group orders. `commit-positions` raises durable
 * positions (never lowers them); with no positions it is a linearizable read
 * of the durable's positions, since it answers only once ordered in the log.
 */
export type MetadataCommand =
  | CreateTopicCommand
  | CreateTopicsCommand
  | CommitPositionsCommand
  | GroupCommand
  | SetClusterIdCommand
  | AddPartitionsCommand
  | DeleteTopicCommand
  | MoveCommand;

/** What creating a topic produced. */
export type TopicResult = { kind: 'created'; topic: TopicMetadata } | { kind: 'exists'; topic: TopicMetadata };

/** What creating several topics produced, one result per topic in the command's order. */
export interface TopicsResult {
  kind: 'topics';
  results: TopicResult[];
}

/** What applying a command produced. */
export type MetadataResult = TopicResult | TopicsResult | CommitResult | GroupResult | ClusterIdResult | AddPartitionsResult | DeleteTopicResult | MoveResult;

/** The whole metadata state, as the metadata group's Raft snapshot. */
export interface MetadataSnapshot {
  topics: TopicMetadata[];
  durables: Array<{ durable: string; positions: Cursor[] }>;
  /** Consumer groups (absent in snapshots taken before groups existed). */
  groups?: GroupRecord[];
  /** The cluster id (absent before the cluster was named). */
  clusterId?: string;
  /** Replica moves in progress (absent in snapshots taken before moves existed, or with none). */
  moves?: ReplicaMove[];
  /** Brokers being emptied (decommissioned); absent when none. */
  draining?: string[];
  /** An operator asked for a rebalance that is not done yet; absent: no. */
  rebalance?: boolean;
  /** Topics deleted so far (absent: none): the next topic's {@link TopicMetadata.incarnation}. */
  topicsDeleted?: number;
  /** Brokers an operator let come back on an empty data directory, not admitted again yet; absent when none. */
  forgotten?: string[];
  /** The incarnation each broker that came back that way was admitted with; absent when none. */
  admitted?: Record<string, string>;
}

/**
 * Raises a topic's partition count to `partitions` (never lowers it): the
 * new partitions are placed like a new topic's, over `brokers` (the
 * proposer's metadata members), with the topic's replication factor.
 * Existing partitions keep their replicas and data.
 */
export interface AddPartitionsCommand {
  type: 'add-partitions';
  topic: string;
  partitions: number;
  brokers: string[];
}

/** What raising a partition count produced. */
export type AddPartitionsResult =
  | { kind: 'grown'; topic: TopicMetadata; before: number }
  | { kind: 'unchanged'; topic: TopicMetadata }
  | { kind: 'missing'; topic: string };

/**
 * Names the cluster, once: the first applied wins and later ones change
 * nothing. The metadata leader proposes it when the metadata has no cluster
 * id yet; every broker records the applied id in its data directory, and
 * refuses peers of another cluster (storage/identity.ts, net/peer-transport.ts).
 */
export interface SetClusterIdCommand {
  type: 'set-cluster-id';
  clusterId: string;
}

/** What naming the cluster produced: the cluster id in force (the earlier one when it was named already). */
export interface ClusterIdResult {
  kind: 'cluster-id';
  clusterId: string;
}

/** A cluster id: what `--cluster-id` accepts, and what a metadata leader generates (a UUID). */
export const CLUSTER_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export class MetadataState {
  private readonly topics = new Map<string, TopicMetadata>();
  /**
   * Replicas and preferred leaderships each broker holds, kept as topics are
   * created (and recounted on restore), so that placing a topic's partitions
   * costs its own partitions, not every partition of the cluster.
   */
  private readonly brokerLoad = new Map<string, BrokerLoad>();
  private readonly durablePositions = new DurablePositions();
  private namedAs: string | undefined;
  /** Topics deleted so far: new topics record it as their incarnation. */
  private topicsDeleted = 0;
  /** Consumer groups: members, partition owners with epochs, committed positions. */
  readonly groups = new ConsumerGroups(() => this.all().map((t) => ({ topic: t.topic, partitions: t.partitions.length })));
  /** Replica moves in progress and draining brokers (moves.ts). */
  readonly moves = new ReplicaMoves((topic) => this.topics.get(topic));

  /** @param brokers - ids of the brokers replicas may be placed on. */
  constructor(private readonly brokers: readonly string[]) {
    if (brokers.length === 0) throw new Error('metadata needs at least one broker');
  }

  get(topic: string): TopicMetadata | undefined {
    return this.topics.get(topic);
  }

  all(): TopicMetadata[] {
    return [...this.topics.values()];
  }

  /** No topic, durable position or consumer group yet. */
  isEmpty(): boolean {
    return this.topics.size === 0 && this.durablePositions.toRecords().length === 0 && this.groups.toRecords().length === 0;
  }

  /** Topics deleted so far: a topic created now gets this as its incarnation (none while 0). */
  get deletedSoFar(): number {
    return this.topicsDeleted;
  }

  /** The cluster id, once a `set-cluster-id` was applied. */
  get clusterId(): string | undefined {
    return this.namedAs;
  }

  private addPartitions(command: AddPartitionsCommand): AddPartitionsResult {
    const topic = this.topics.get(command.topic);
    if (topic === undefined) return { kind: 'missing', topic: command.topic };
    const before = topic.partitions.length;
    if (command.partitions <= before) return { kind: 'unchanged', topic };
    const brokers = command.brokers.length > 0 ? command.brokers : this.brokers;
    const replicationFactor = Math.max(1, Math.min(topic.replicationFactor, brokers.length));
    // Placed by the load of every partition so far, and counted in it, so brokers that applied this entry place
    // later topics exactly as brokers restored from a snapshot taken after it (which recount).
    const added = assignReplicas(brokers, this.brokerLoad, command.partitions - before, replicationFactor);
    topic.partitions.push(...added);
    countLoad(this.brokerLoad, added);
    // Consumer groups of the topic spread the new partitions over their members.
    this.groups.topicCreated(topic.topic);
    return { kind: 'grown', topic, before };
  }

  /** Stored positions of a durable subscription, as applied on this broker (may lag the leader). */
  positions(durable: string): Cursor[] {
    return this.durablePositions.get(durable);
  }

  /** The state, for a snapshot (a copy: later commands do not change it). */
  snapshot(): MetadataSnapshot {
    const snapshot: MetadataSnapshot = { topics: structuredClone(this.all()), durables: this.durablePositions.toRecords(), groups: this.groups.toRecords() };
    if (this.namedAs !== undefined) snapshot.clusterId = this.namedAs;
    const { moves, draining, rebalance, forgotten, admitted } = this.moves.toRecord();
    if (moves.length > 0) snapshot.moves = moves;
    if (draining.length > 0) snapshot.draining = draining;
    if (rebalance === true) snapshot.rebalance = true;
    if (this.topicsDeleted > 0) snapshot.topicsDeleted = this.topicsDeleted;
    if (forgotten !== undefined) snapshot.forgotten = forgotten;
    if (admitted !== undefined) snapshot.admitted = admitted;
    return snapshot;
  }

  /** Replaces the state with a snapshot's. */
  restore(snapshot: MetadataSnapshot): void {
    this.topics.clear();
    for (const topic of structuredClone(snapshot.topics)) this.topics.set(topic.topic, topic);
    this.recountLoad();
    this.durablePositions.restore(snapshot.durables);
    this.groups.restore(snapshot.groups ?? []);
    this.namedAs = snapshot.clusterId;
    this.moves.restore({ moves: snapshot.moves ?? [], draining: snapshot.draining ?? [], rebalance: snapshot.rebalance === true, forgotten: snapshot.forgotten ?? [], admitted: snapshot.admitted ?? {} });
    this.topicsDeleted = snapshot.topicsDeleted ?? 0;
  }

  /** Applies a committed command. Deterministic: same commands, same state, on every broker. */
  apply(command: CreateTopicCommand): TopicResult;
  apply(command: CreateTopicsCommand): TopicsResult;
  apply(command: CommitPositionsCommand): CommitResult;
  apply(command: GroupCommand): GroupResult;
  apply(command: SetClusterIdCommand): ClusterIdResult;
  apply(command: AddPartitionsCommand): AddPartitionsResult;
  apply(command: DeleteTopicCommand): DeleteTopicResult;
  apply(command: MoveCommand): MoveResult;
  apply(command: MetadataCommand): MetadataResult;
  apply(command: MetadataCommand): MetadataResult {
    if (isMoveCommand(command)) {
      // A move changes replica sets: recount, so later placements match brokers restored from a later snapshot.
      const result = this.moves.apply(command);
      this.recountLoad();
      return result;
    }
    if (command.type === 'add-partitions') return this.addPartitions(command);
    if (command.type === 'delete-topic') return this.deleteTopic(command.topic);
    if (command.type === 'set-cluster-id') {
      this.namedAs ??= command.clusterId;
      return { kind: 'cluster-id', clusterId: this.namedAs };
    }
    if (command.type === 'commit-positions') {
      // A commit checked at a broker edge before the topic's deletion may be ordered after it: its offsets are
      // the deleted topic's, and a topic created again under the name must not start from them.
      // One checked against an earlier incarnation (a broker behind) is of the deleted topic too.
      const positions = command.positions.filter((p) => {
        const topic = this.topics.get(p.topic);
        return topic !== undefined && (p.incarnation === undefined || p.incarnation === (topic.incarnation ?? 0));
      });
      return this.durablePositions.commit(command.durable, positions);
    }
    if (command.type === 'create-topic') return this.createTopic(command);
    if (command.type === 'create-topics') {
      const { brokers } = command;
      return { kind: 'topics', results: command.topics.map((topic) => this.createTopic(brokers === undefined ? topic : { ...topic, brokers })) };
    }
    return this.groups.apply(command);
  }

  private createTopic(command: Omit<CreateTopicCommand, 'type'>): TopicResult {
    const existing = this.topics.get(command.topic);
    if (existing !== undefined) return { kind: 'exists', topic: existing };
    const brokers = command.brokers !== undefined && command.brokers.length > 0 ? command.brokers : this.brokers;
    const replicationFactor = Math.max(1, Math.min(command.replicationFactor, brokers.length));
    const topic: TopicMetadata = {
      topic: command.topic,
      replicationFactor,
      partitions: assignReplicas(brokers, this.brokerLoad, command.partitions, replicationFactor),
    };
    if (this.topicsDeleted > 0) topic.incarnation = this.topicsDeleted;
    this.topics.set(topic.topic, topic);
    countLoad(this.brokerLoad, topic.partitions);
    this.groups.topicCreated(topic.topic);
    return { kind: 'created', topic };
  }

  /**
   * Removes a topic with everything recorded of it: its moves in progress,
   * the durable and consumer-group positions of its partitions, and the
   * groups' partitions (members keep their other partitions; the groups
   * rebalance what is left). Broker load is recounted, so later placements
   * match a broker restored from a snapshot taken after the deletion.
   */
  private deleteTopic(name: string): DeleteTopicResult {
    const topic = this.topics.get(name);
    if (topic === undefined) return { kind: 'missing', topic: name };
    this.topics.delete(name);
    this.topicsDeleted++;
    this.moves.forgetTopic(name);
    this.durablePositions.forgetTopic(name);
    this.groups.topicDeleted(name);
    this.recountLoad();
    return { kind: 'topic-deleted', topic };
  }

  /** Counts every broker's replicas and preferred leaderships from the topics (at start and after a restore). */
  private recountLoad(): void {
    this.brokerLoad.clear();
    for (const topic of this.topics.values()) countLoad(this.brokerLoad, topic.partitions);
  }
}

/**
 * Adds `partitions` to the replicas and preferred leaderships in `load`. Every
 * broker named is counted, configured or not: one that joined later is placed
 * on by the brokers list of later entries, with the load it holds so far.
 */
function countLoad(load: Map<string, BrokerLoad>, partitions: readonly PartitionAssignment[]): void {
  for (const partition of partitions) {
    partition.replicas.forEach((id, i) => {
      let entry = load.get(id);
      if (entry === undefined) {
        entry = { replicas: 0, leaders: 0 };
        load.set(id, entry);
      }
      entry.replicas++;
      if (i === 0) entry.leaders++;
    });
  }
}

interface BrokerLoad {
  replicas: number;
  leaders: number;
}

/**
 * Spreads replicas evenly: each partition's preferred leader is the broker
 * leading the fewest partitions, its followers the brokers holding the fewest
 * replicas; ties go to the smaller id, so the result is deterministic.
 */
export function assignReplicas(
  brokers: readonly string[],
  load: Map<string, BrokerLoad>,
  partitions: number,
  replicationFactor: number,
): PartitionAssignment[] {
  const sorted = [...brokers].sort();
  const counts = new Map(sorted.map((id) => [id, { ...(load.get(id) ?? { replicas: 0, leaders: 0 }) }]));
  const byLeast = (key: keyof BrokerLoad, exclude: Set<string>): string => {
    let best: string | undefined;
    for (const id of sorted) {
      if (exclude.has(id)) continue;
      if (best === undefined || (counts.get(id) as BrokerLoad)[key] < (counts.get(best) as BrokerLoad)[key]) best = id;
    }
    return best as string;
  };
  const result: PartitionAssignment[] = [];
  for (let p = 0; p < partitions; p++) {
    const chosen = new Set<string>();
    const leader = byLeast('leaders', chosen);
    chosen.add(leader);
    const replicas = [leader];
    while (replicas.length < replicationFactor) {
      const follower = byLeast('replicas', chosen);
      chosen.add(follower);
      replicas.push(follower);
    }
    for (const [i, id] of replicas.entries()) {
      const entry = counts.get(id) as BrokerLoad;
      entry.replicas++;
      if (i === 0) entry.leaders++;
    }
    // A copy of exactly its length: the array grown by `push` keeps room for 17 (kept for every partition of the cluster).
    result.push({ replicas: replicas.slice() });
  }
  return result;
}

/** Reads an untrusted value (a metadata log entry) as a {@link DeleteTopicCommand}, or `undefined` when it is none. */
export function parseDeleteTopicCommand(value: unknown): DeleteTopicCommand | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const o = value as Record<string, unknown>;
  if (o.type !== 'delete-topic' || typeof o.topic !== 'string' || o.topic.length === 0 || o.topic.length > 255) return undefined;
  return { type: 'delete-topic', topic: o.topic };
}

/** Reads an untrusted value (a snapshot from a peer) as a {@link MetadataSnapshot}, or `undefined`. */
export function parseMetadataSnapshot(value: unknown): MetadataSnapshot | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { topics, durables, groups, clusterId, moves, draining, rebalance, topicsDeleted, forgotten, admitted } = value as Record<string, unknown>;
  if (!Array.isArray(topics) || !Array.isArray(durables) || parseGroupRecords(groups) === undefined) return undefined;
  if (parseMovesRecord(moves, draining, rebalance, forgotten, admitted) === undefined) return undefined;
  if (clusterId !== undefined && (typeof clusterId !== 'string' || !CLUSTER_ID_PATTERN.test(clusterId))) return undefined;
  const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (topicsDeleted !== undefined && !isUint(topicsDeleted)) return undefined;
  for (const t of topics as unknown[]) {
    const topic = (typeof t === 'object' && t !== null ? t : {}) as Record<string, unknown>;
    if (typeof topic.topic !== 'string' || !isUint(topic.replicationFactor) || !Array.isArray(topic.partitions)) return undefined;
    if (topic.incarnation !== undefined && !isUint(topic.incarnation)) return undefined;
    for (const a of topic.partitions as unknown[]) {
      const replicas = (typeof a === 'object' && a !== null ? a : {}) as Record<string, unknown>;
      if (!Array.isArray(replicas.replicas) || !replicas.replicas.every((r) => typeof r === 'string')) return undefined;
      if (replicas.learners !== undefined && (!Array.isArray(replicas.learners) || !replicas.learners.every((r) => typeof r === 'string'))) return undefined;
    }
  }
  for (const d of durables as unknown[]) {
    const entry = (typeof d === 'object' && d !== null ? d : {}) as Record<string, unknown>;
    if (typeof entry.durable !== 'string' || !Array.isArray(entry.positions)) return undefined;
    for (const c of entry.positions as unknown[]) {
      const cursor = (typeof c === 'object' && c !== null ? c : {}) as Record<string, unknown>;
      if (typeof cursor.topic !== 'string' || !isUint(cursor.partition) || !isUint(cursor.offset)) return undefined;
    }
  }
  return value as MetadataSnapshot;
}
