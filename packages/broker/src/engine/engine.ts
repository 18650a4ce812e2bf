import type { AckLevel, Cursor, TopicInfo } from '@relaymq/sdk/protocol';
import type { ConsumerGroups, GroupCommand, GroupResult } from '../core/metadata/groups.js';
import type { AppendOutcome, EncodedMessages, ProducerBatch, StoredMessage } from '../core/partition/partition.js';

/**
 * First and next offset of a partition.
 *
 * @internal Exported for tests and tools in this repository; not a stable API.
 */
export interface PartitionBounds {
  /** First offset still stored. */
  start: number;
  /** Offset the next message will get; messages below it are committed. */
  end: number;
}

/**
 * Events of a {@link LogEngine}.
 *
 * @internal Exported for tests and tools in this repository; not a stable API.
 */
export interface LogEngineEvents {
  /** New committed messages are readable in this partition. */
  appended: (topic: string, partition: number) => void;
}

/**
 * Where consumer groups live: members, partition owners with epochs, and
 * committed positions (see core/metadata/groups.ts), ordered like durable
 * positions (in a cluster: through the metadata Raft group).
 */
export interface GroupStore {
  /** Orders a group command and resolves with its result, as applied by the coordinator. */
  groupCommand(command: GroupCommand): Promise<GroupResult>;
  /** The groups as applied on this broker (may lag the coordinator; {@link GroupStore.consumerGroupEvents} say when it moves). */
  readonly consumerGroups: ConsumerGroups;
  /** `changed(group)`: group state changed here (a group command or a new topic applied); `undefined`: any group may have. */
  readonly consumerGroupEvents: GroupEvents;
}

/** Where a {@link GroupStore} says its groups changed. */
export interface GroupEvents {
  on(event: 'changed', listener: (group: string | undefined) => void): unknown;
  off(event: 'changed', listener: (group: string | undefined) => void): unknown;
}

/**
 * Where the positions of durable subscriptions live: per durable name and
 * partition, the next offset to deliver.
 */
export interface PositionStore {
  /**
   * Raises the stored positions of `durable` to `positions` and resolves once
   * they are stored (in a cluster: committed on a quorum of the metadata
   * group). Positions never go back: an offset lower than the stored one is
   * ignored. Rejects with `LIMIT_EXCEEDED` when the table is full.
   */
  commitPositions(durable: string, positions: readonly Cursor[]): Promise<void>;
  /** The stored positions of `durable` in partitions whose topic matches `pattern`; reads what every earlier commit stored. */
  positions(durable: string, pattern: string): Promise<Cursor[]>;
}

/** An operator's settings of a new topic (`relaymq topic create`); unset fields take the broker's defaults. */
export interface TopicSettings {
  partitions?: number;
  replicationFactor?: number;
}

/**
 * The seam between the broker's client-facing side and where partition logs
 * live. `embedded` engines keep logs on the brokers themselves; a `backbone`
 * engine would map them onto an external replicated log. Client sessions see
 * only this interface.
 *
 * @internal Exported for tests and tools in this repository; not a stable API.
 */
export interface LogEngine extends PositionStore, GroupStore {
  /**
   * Whether offsets are never reused. True for replicated logs: a resumed
   * position beyond a partition's end means this replica is catching up.
   * False for the in-memory engine, whose restart starts every log over.
   */
  readonly offsetsSurviveRestart: boolean;
  /**
   * With `offsetsSurviveRestart` false: names this engine's log, a new one at
   * each start, told to clients in `welcome` (a group member's grants from
   * another log are of a group that is gone, epochs and all). Absent where
   * offsets are never reused.
   */
  readonly logId?: string;
  /**
   * Whether a partition's offsets may have holes: unique and rising, but
   * some never hold a message (the RabbitMQ backbone: each stream segment
   * starts with a tracking chunk that takes an offset). Absent or false:
   * dense, every offset from a partition's start to its end holds one.
   */
  readonly offsetHoles?: boolean;
  /**
   * With {@link LogEngine.offsetHoles}: how many offsets in `[from, to)` of a
   * partition hold no message, as far as this broker knows without a round
   * trip (consumer lag subtracts them). Absent: none.
   */
  holesBetween?(topic: string, partition: number, from: number, to: number): number;
  /** Partition count of `topic`, creating the topic with the default count when missing. */
  ensureTopic(topic: string): Promise<TopicInfo>;
  /** Partition count of `topic`, or `undefined` when it does not exist. */
  partitionCount(topic: string): number | undefined;
  /**
   * Which life of `topic` this broker knows (0 for a topic created before any
   * deletion; each topic created after a deletion has another number), or
   * `undefined` when it does not exist here. Absent on engines that track no
   * incarnations (memory, backbone): resume positions are taken as they are.
   */
  topicIncarnation?(topic: string): number | undefined;
  /**
   * What this broker knows of `incarnation` of `topic` (a client's resume
   * positions name it): `current`, `gone` (deleted: another incarnation
   * exists, or the topic is missing and was deleted after that incarnation
   * was created), or `ahead` (this broker has not applied that incarnation's
   * creation yet). Absent with {@link topicIncarnation}.
   */
  incarnationStatus?(topic: string, incarnation: number): 'current' | 'gone' | 'ahead';
  /**
   * Creates `topic` with an operator's settings unless it exists (then it is
   * answered as it is, settings aside): `relaymq topic create`.
   */
  createTopic?(topic: string, settings: TopicSettings): Promise<TopicInfo>;
  /**
   * Raises `topic`'s partition count to `partitions` (`relaymq topic
   * alter`); `INVALID_TOPIC` when it does not exist, `INVALID_ARGUMENT` when
   * the count is not higher. Keyed messages may map to other partitions from
   * then on (the key's hash modulo the count).
   */
  addPartitions?(topic: string, partitions: number): Promise<TopicInfo>;
  /**
   * Deletes `topic` with its data, positions and consumer-group state
   * (`relaymq topic delete`); resolves with what it was once this broker
   * applied the deletion. `INVALID_TOPIC` when it does not exist. A publish
   * afterwards creates it again, empty, from offset 0 (as any unknown topic).
   */
  deleteTopic?(topic: string): Promise<TopicInfo>;
  /**
   * Calls `listener` with each topic this broker learns was deleted (applied
   * the deletion): subscriptions to it end, wildcard ones drop its cursors.
   * Returns a function that stops the calls.
   */
  onTopicDeleted?(listener: (topic: string) => void): () => void;
  /** Names of all topics. */
  topics(): Iterable<string>;
  /**
   * Appends one producer's `batch` to one partition and resolves with an
   * outcome per message once it is stored as `ack` demands. The batch is
   * handed on as it is (it is what the replicated log carries) and applied
   * by `applyPublish` (core/partition/apply.ts), which deduplicates it unless
   * `ack` is `none`. With `none` the engine may resolve at once, with no
   * outcomes: the caller does not wait.
   */
  append(topic: string, partition: number, batch: ProducerBatch, ack: AckLevel): Promise<AppendOutcome[]>;
  /**
   * Committed messages from `offset`: at most `maxCount`, and at most
   * `maxBytes` of data unless the first alone exceeds it. Synchronous when
   * they are in memory (live subscribers at the tail), a promise when they
   * must be read from disk.
   */
  read(topic: string, partition: number, offset: number, maxCount: number, maxBytes: number): StoredMessage[] | Promise<StoredMessage[]>;
  /**
   * Like {@link read}, when this broker's own replica stores the messages
   * encoded (layout `unified`): the messages as a delivery frame carries
   * them, copied from the stored bytes without decoding them. `undefined`
   * when it cannot (no such replica here): the caller uses {@link read}; a
   * promise that rejects when the read failed (the caller may then {@link read},
   * which tries another replica).
   */
  readEncoded?(topic: string, partition: number, offset: number, maxCount: number, maxBytes: number): Promise<EncodedMessages> | undefined;
  /** Bounds as this broker knows them now, without waiting (a partition read from another broker: as last reported). */
  bounds(topic: string, partition: number): PartitionBounds;
  /**
   * Bounds as they are: this broker's own where it hosts the partition,
   * otherwise asked from a replica. Subscriptions place their cursors with it,
   * so a partition hosted elsewhere starts where it really does.
   */
  currentBounds(topic: string, partition: number): Promise<PartitionBounds>;
  /**
   * Whether {@link bounds} knows the partition's bounds: `false` for a
   * partition hosted elsewhere that this broker never read (it answers
   * `0..0` for it); {@link currentBounds} learns them. Engines without it
   * always know.
   */
  boundsKnown?(topic: string, partition: number): boolean;
  /** The broker leading a partition, when the engine replicates and knows it. */
  leaderOf?(topic: string, partition: number): string | undefined;
  /**
   * The leader of each partition of each topic (`partitions` each), for a
   * client's metadata request (`""` where unknown): asked of other brokers
   * where this one hosts no replica (bounded in time). Engines that
   * replicate provide it.
   */
  leadersOf?(topics: ReadonlyArray<{ topic: string; partitions: number }>): Promise<string[][]>;
  /**
   * Whether `topic`, missing here, is missing for the cluster too (asked of
   * the metadata leader: this broker's metadata may lag). Engines whose
   * metadata may lag provide it; without it, missing here is missing.
   */
  topicMissing?(topic: string): Promise<boolean>;
  /**
   * What of `topic`'s partition `partition` is missing for the cluster, asked
   * when this broker lacks it (its metadata may lag): `'topic'`, `'partition'`,
   * or `undefined` when the metadata leader has it (this broker is behind;
   * answer `NOT_READY`). The leader says "missing" only after a read barrier.
   * Rejects when the leader cannot tell (callers answer `NOT_READY`). Engines
   * whose metadata may lag provide it; without it, missing here is missing.
   */
  partitionMissing?(topic: string, partition: number): Promise<'topic' | 'partition' | undefined>;
  /**
   * Resolves once this broker applied `topic`, for an operator's change of
   * a topic missing here that the metadata leader has (this broker behind);
   * `INVALID_TOPIC` when the leader confirms it missing, `NOT_READY` when it
   * cannot be told or this broker does not catch up in time.
   */
  awaitTopic?(topic: string): Promise<void>;
  /** First offset stored at or after `timeMs`. */
  offsetForTime(topic: string, partition: number, timeMs: number): Promise<number>;
  on<E extends keyof LogEngineEvents>(event: E, listener: LogEngineEvents[E]): void;
  off<E extends keyof LogEngineEvents>(event: E, listener: LogEngineEvents[E]): void;
  close(): Promise<void>;
}
