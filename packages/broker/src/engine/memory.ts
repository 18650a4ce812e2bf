import { EventEmitter } from 'eventemitter3';
import { RelayError, topicMatches, type AckLevel, type Cursor, type TopicInfo } from '@relaymq/sdk/protocol';
import { ConsumerGroups, type GroupCommand, type GroupResult } from '../core/metadata/groups.js';
import { DurablePositions } from '../core/metadata/positions.js';
import { applyPublish } from '../core/partition/apply.js';
import { Partition, type AppendOutcome, type ProducerBatch, type StoredMessage } from '../core/partition/partition.js';
import type { LogEngine, LogEngineEvents, PartitionBounds, TopicSettings } from './engine.js';
import { GroupSessionTracker } from './groups/session-tracker.js';

/** Settings of the in-memory engine. */
export interface MemoryEngineOptions {
  defaultPartitions: number;
  dedupeWindow: number;
  /** Data bytes kept per partition; the oldest messages go first. */
  retentionBytes: number;
  /** Clock for message timestamps; injected so tests control time. */
  now: () => number;
}

/**
 * A single-node engine holding every partition, and every durable position,
 * in memory. Nothing survives a restart; it is the reference the replicated
 * engines are measured against.
 */
export class MemoryEngine extends EventEmitter<LogEngineEvents> implements LogEngine {
  readonly offsetsSurviveRestart = false;
  /** A new one at each start: every log, group and epoch counter here starts over with it. */
  readonly logId: string;
  private readonly partitionsByTopic = new Map<string, Partition[]>();
  private readonly durablePositions = new DurablePositions();
  private readonly topicEvents = new EventEmitter<{ deleted: (topic: string) => void }>();
  readonly consumerGroupEvents = new EventEmitter<{ changed: (group: string | undefined) => void }>();
  readonly consumerGroups = new ConsumerGroups(() => [...this.partitionsByTopic].map(([topic, partitions]) => ({ topic, partitions: partitions.length })));
  /** A standalone broker coordinates its groups itself. */
  private readonly sessions = new GroupSessionTracker({
    groups: () => this.consumerGroups,
    isCoordinator: () => true,
    expire: (command) => this.groupCommand(command),
    now: () => this.options.now(),
  });

  constructor(private readonly options: MemoryEngineOptions) {
    super();
    this.logId = `${options.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
    this.sessions.start();
  }

  async ensureTopic(topic: string): Promise<TopicInfo> {
    let partitions = this.partitionsByTopic.get(topic);
    if (partitions === undefined) {
      partitions = Array.from({ length: this.options.defaultPartitions }, () => new Partition(this.options));
      this.partitionsByTopic.set(topic, partitions);
      this.consumerGroups.topicCreated(topic);
      this.consumerGroupEvents.emit('changed', undefined);
    }
    return { topic, partitions: partitions.length };
  }

  partitionCount(topic: string): number | undefined {
    return this.partitionsByTopic.get(topic)?.length;
  }

  async createTopic(topic: string, settings: TopicSettings): Promise<TopicInfo> {
    if (this.partitionsByTopic.has(topic)) return this.ensureTopic(topic);
    // One copy whatever the replication factor: this engine does not replicate.
    const partitions = Array.from({ length: settings.partitions ?? this.options.defaultPartitions }, () => new Partition(this.options));
    this.partitionsByTopic.set(topic, partitions);
    this.consumerGroups.topicCreated(topic);
    this.consumerGroupEvents.emit('changed', undefined);
    return { topic, partitions: partitions.length };
  }

  async addPartitions(topic: string, count: number): Promise<TopicInfo> {
    const partitions = this.partitionsByTopic.get(topic);
    if (partitions === undefined) throw new RelayError('INVALID_TOPIC', `no topic "${topic}"`);
    if (count <= partitions.length) throw new RelayError('INVALID_ARGUMENT', `topic ${topic} has ${partitions.length} partitions; the count can only be raised (asked for ${count})`);
    const before = partitions.length;
    while (partitions.length < count) partitions.push(new Partition(this.options));
    this.consumerGroups.topicCreated(topic);
    this.consumerGroupEvents.emit('changed', undefined);
    // Subscriptions matching the topic place cursors on the new partitions.
    for (let p = before; p < count; p++) this.emit('appended', topic, p);
    return { topic, partitions: partitions.length };
  }

  /** Deletes `topic` with its messages and positions, as the replicated engine does (one node: at once). */
  async deleteTopic(topic: string): Promise<TopicInfo> {
    const partitions = this.partitionsByTopic.get(topic);
    if (partitions === undefined) throw new RelayError('INVALID_TOPIC', `no topic "${topic}"`);
    this.partitionsByTopic.delete(topic);
    this.durablePositions.forgetTopic(topic);
    this.consumerGroups.topicDeleted(topic);
    this.consumerGroupEvents.emit('changed', undefined);
    this.topicEvents.emit('deleted', topic);
    return { topic, partitions: partitions.length };
  }

  onTopicDeleted(listener: (topic: string) => void): () => void {
    this.topicEvents.on('deleted', listener);
    return () => this.topicEvents.off('deleted', listener);
  }

  topics(): Iterable<string> {
    return this.partitionsByTopic.keys();
  }

  async append(topic: string, partition: number, batch: ProducerBatch, ack: AckLevel): Promise<AppendOutcome[]> {
    const log = this.partition(topic, partition);
    // Applied as every replica of a replicated partition applies it (one node: every ack level is met at once).
    const outcomes = applyPublish(log, { ...batch, timestampMs: this.options.now(), dedupe: ack !== 'none' });
    if (outcomes.some((o) => o.kind === 'stored')) this.emit('appended', topic, partition);
    return outcomes;
  }

  read(topic: string, partition: number, offset: number, maxCount: number, maxBytes: number): StoredMessage[] {
    return this.partitionsByTopic.get(topic)?.[partition]?.read(offset, maxCount, maxBytes) ?? [];
  }

  bounds(topic: string, partition: number): PartitionBounds {
    const log = this.partitionsByTopic.get(topic)?.[partition];
    return log === undefined ? { start: 0, end: 0 } : { start: log.startOffset, end: log.endOffset };
  }

  async currentBounds(topic: string, partition: number): Promise<PartitionBounds> {
    return this.bounds(topic, partition);
  }

  async offsetForTime(topic: string, partition: number, timeMs: number): Promise<number> {
    return this.partitionsByTopic.get(topic)?.[partition]?.offsetForTime(timeMs) ?? 0;
  }

  async commitPositions(durable: string, positions: readonly Cursor[]): Promise<void> {
    const result = this.durablePositions.commit(durable, positions);
    if (result.kind === 'limit') throw new RelayError('LIMIT_EXCEEDED', result.message);
  }

  async positions(durable: string, pattern: string): Promise<Cursor[]> {
    return this.durablePositions.get(durable).filter((c) => topicMatches(pattern, c.topic));
  }

  async groupCommand(command: GroupCommand): Promise<GroupResult> {
    const result = this.consumerGroups.apply(command);
    this.sessions.applied(command);
    this.consumerGroupEvents.emit('changed', command.group);
    return result;
  }

  /** Every durable name with its positions, for operators. */
  appliedPositions(): Array<{ durable: string; positions: Cursor[] }> {
    return this.durablePositions.toRecords();
  }

  async close(): Promise<void> {
    this.sessions.stop();
    this.consumerGroupEvents.removeAllListeners();
    this.removeAllListeners();
  }

  private partition(topic: string, partition: number): Partition {
    const partitions = this.partitionsByTopic.get(topic);
    if (partitions === undefined) throw new RelayError('INVALID_TOPIC', `topic ${topic} does not exist`);
    const log = partitions[partition];
    if (log === undefined) {
      throw new RelayError('INVALID_PARTITION', `topic ${topic} has ${partitions.length} partitions, not ${partition + 1}`);
    }
    return log;
  }
}
