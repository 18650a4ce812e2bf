import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'eventemitter3';
import { RelayError, topicMatches, type AckLevel, type Cursor, type TopicInfo } from '@relaymq/sdk/protocol';
import type { ConsumerGroups, GroupCommand, GroupResult } from '../../core/metadata/groups.js';
import type { AppendOutcome, ProducerBatch, StoredMessage } from '../../core/partition/partition.js';
import type { LogEngine, LogEngineEvents, PartitionBounds, TopicSettings } from '../engine.js';
import { GroupSessionTracker } from '../groups/session-tracker.js';
import { bounded } from './bounded.js';
import { openConnections } from './compat.js';
import { BackboneConnection } from './connection.js';
import { BackboneHealthMonitor, type BackboneHealth, type BackboneRequestOp } from './health.js';
import { MetaLog, type MetaLogStats } from './meta-log.js';
import type { BackboneTopic, MetaCommand, MetaResult } from './metadata.js';
import { metaStreamName, newGeneration, partitionStreamName } from './naming.js';
import { PartitionStream, type PartitionStreamStats } from './partition-stream.js';
import type { BackboneEndpoint } from './url.js';

type Log = (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

/** Where one partition stream lives: its leader node and every node holding it (`host:port`, leader first). */
export interface StreamPlacement {
  leader: string | null;
  replicas: string[];
}

/** Most streams asked about in one metadata request. */
const MAX_PLACEMENT_QUERY = 1000;

/** Settings of the backbone engine (options.ts resolves them from `backbone` and the broker's options). */
export interface BackboneEngineOptions {
  endpoint: BackboneEndpoint;
  /** First part of every stream name (naming.ts). */
  streamPrefix: string;
  defaultPartitions: number;
  /** Replicas of a new stream (`initial-cluster-size`). */
  replicationFactor: number;
  dedupeWindow: number;
  /** Bytes of the newest messages each tailed partition keeps in memory. */
  cacheBytes: number;
  /** Arguments of a new partition stream of a topic: its retention (`max-age`, `max-length-bytes`) and segment size (retention.ts). */
  streamArguments: (topic: string) => Record<string, string | number>;
  /** A backbone round trip (confirm, metadata proposal, read) not answered within this long fails `TIMEOUT`. */
  requestTimeoutMs: number;
  /** A partition's tail starts this many messages before the stream's last chunk (partition-stream.ts). */
  tailStartMessages: number;
  /** A republished seq the tail did not read is looked for this many offsets back before it is answered `too-old`. */
  republishLookbackMessages: number;
  /** Metadata compaction (meta-snapshot.ts): a snapshot after this many entries... */
  metaSnapshotEveryEntries: number;
  /** ...and the metadata stream's retention in bytes, B: segments of B/8, a snapshot after B/16 bytes. */
  metaMaxBytes: number;
  now: () => number;
  log: Log;
  /** Whether this gateway expires timed-out consumer-group members (one gateway should: the broker picks the lowest live id). */
  isGroupCoordinator?: () => boolean;
  /** Told each backbone round trip measured, in seconds (metrics): `probe` per node check, `confirm` per publish. */
  observeRequest?: (op: BackboneRequestOp, seconds: number) => void;
  /** Whether to check every configured node periodically (health.ts); off when nothing reads the health (no admin port, no alerts). Default true. */
  healthChecks?: boolean;
}

/**
 * A {@link LogEngine} over RabbitMQ streams: the broker becomes a stateless
 * gateway. Each partition is a stream (naming.ts); topics, durable
 * positions and consumer groups are commands of one metadata stream that
 * every gateway tails and applies in order (meta-log.ts); appends use
 * RabbitMQ's publisher deduplication (partition-stream.ts).
 */
export class BackboneEngine extends EventEmitter<LogEngineEvents> implements LogEngine {
  readonly offsetsSurviveRestart = true;
  readonly offsetHoles = true;
  readonly consumerGroupEvents = new EventEmitter<{ changed: (group: string | undefined) => void }>();
  private readonly topicEvents = new EventEmitter<{ deleted: (topic: string) => void }>();
  private readonly streams = new Map<string, PartitionStream>();
  private readonly creating = new Map<string, Promise<TopicInfo>>();
  private readonly appendedScheduled = new Set<string>();
  private readonly sessions: GroupSessionTracker;
  private readonly health: BackboneHealthMonitor;
  private closed = false;

  private constructor(
    private readonly connection: BackboneConnection,
    private readonly meta: MetaLog,
    private readonly options: BackboneEngineOptions,
  ) {
    super();
    meta.on('applied', (entry, result) => this.applied(entry.command, result));
    meta.on('restored', () => this.restored());
    connection.on('reconnected', (client) => {
      for (const stream of this.streams.values()) void stream.restart(client);
    });
    this.sessions = new GroupSessionTracker({
      groups: () => this.consumerGroups,
      isCoordinator: options.isGroupCoordinator ?? (() => true),
      expire: (command) => this.groupCommand(command),
      now: () => options.now(),
    });
    this.health = new BackboneHealthMonitor({
      endpoint: options.endpoint,
      client: () => {
        try {
          return connection.client();
        } catch {
          return undefined;
        }
      },
      dialled: () => connection.dialled(),
      streams: () => this.tailedStreams(),
      openConnections,
      timeoutMs: options.requestTimeoutMs,
      now: options.now,
      ...(options.observeRequest === undefined ? {} : { observe: options.observeRequest }),
    });
  }

  /** Connects to the backbone and applies its metadata stream up to now. */
  static async start(options: BackboneEngineOptions): Promise<BackboneEngine> {
    const connection = new BackboneConnection(options.endpoint, options.log);
    await connection.start();
    const meta = new MetaLog(connection, {
      stream: metaStreamName(options.streamPrefix),
      replicationFactor: options.replicationFactor,
      requestTimeoutMs: options.requestTimeoutMs,
      incarnation: randomUUID(),
      snapshotEveryEntries: options.metaSnapshotEveryEntries,
      maxBytes: options.metaMaxBytes,
      isCoordinator: () => options.isGroupCoordinator?.() ?? true,
      log: options.log,
    });
    const engine = new BackboneEngine(connection, meta, options);
    try {
      await meta.start();
    } catch (err) {
      await engine.close();
      throw err;
    }
    engine.sessions.start();
    if (options.healthChecks !== false) engine.health.start();
    return engine;
  }

  get consumerGroups(): ConsumerGroups {
    return this.meta.state.groups;
  }

  async ensureTopic(topic: string): Promise<TopicInfo> {
    const known = this.meta.state.topics.get(topic);
    if (known !== undefined) return { topic, partitions: known.partitions };
    return this.createTopic(topic, {});
  }

  partitionCount(topic: string): number | undefined {
    return this.meta.state.topics.get(topic)?.partitions;
  }

  createTopic(topic: string, settings: TopicSettings): Promise<TopicInfo> {
    const known = this.meta.state.topics.get(topic);
    if (known !== undefined) return Promise.resolve({ topic, partitions: known.partitions });
    let creating = this.creating.get(topic);
    if (creating === undefined) {
      creating = this.create(topic, settings).finally(() => this.creating.delete(topic));
      this.creating.set(topic, creating);
    }
    return creating;
  }

  async addPartitions(topic: string, partitions: number): Promise<TopicInfo> {
    const known = this.meta.state.topics.get(topic);
    if (known === undefined) throw new RelayError('INVALID_TOPIC', `no topic "${topic}"`);
    if (partitions <= known.partitions) {
      throw new RelayError('INVALID_ARGUMENT', `topic ${topic} has ${known.partitions} partitions; the count can only be raised (asked for ${partitions})`);
    }
    // New partitions get the topic's replication factor (the configured one for a topic an older gateway created).
    for (let p = known.partitions; p < partitions; p++) await this.createStream(topic, known.generation, p, this.replicationFactorOf(topic));
    const result = await this.propose({ type: 'topic-alter', topic, partitions });
    if (result.kind !== 'topic') throw new RelayError('INTERNAL', `unexpected metadata result ${result.kind}`);
    return result.info;
  }

  async deleteTopic(topic: string): Promise<TopicInfo> {
    const result = await this.propose({ type: 'topic-delete', topic });
    if (result.kind !== 'topic-deleted') throw new RelayError('INTERNAL', `unexpected metadata result ${result.kind}`);
    // Applied everywhere from now on: the streams go (a gateway still tailing one sees it deleted).
    const client = await this.connection.ready();
    for (let p = 0; p < result.topic.partitions; p++) {
      await client.deleteStream({ stream: this.streamName(topic, result.topic, p) }).catch((err: Error) => this.options.log('warn', 'could not delete a partition stream', { topic, partition: p, error: err.message }));
    }
    return result.info;
  }

  onTopicDeleted(listener: (topic: string) => void): () => void {
    this.topicEvents.on('deleted', listener);
    return () => this.topicEvents.off('deleted', listener);
  }

  topics(): Iterable<string> {
    return this.meta.state.topics.keys();
  }

  append(topic: string, partition: number, batch: ProducerBatch, ack: AckLevel): Promise<AppendOutcome[]> {
    // Handed to the partition without an await: a producer's pipelined batches keep their order.
    try {
      return this.streamOf(topic, partition).append(batch, ack);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  read(topic: string, partition: number, offset: number, maxCount: number, maxBytes: number): StoredMessage[] | Promise<StoredMessage[]> {
    const stream = this.streams.get(this.key(topic, partition));
    if (stream !== undefined && stream.isReady) return stream.read(offset, maxCount, maxBytes);
    if ((this.partitionCount(topic) ?? 0) <= partition) return [];
    return this.started(topic, partition).then((s) => s.read(offset, maxCount, maxBytes));
  }

  bounds(topic: string, partition: number): PartitionBounds {
    if ((this.partitionCount(topic) ?? 0) <= partition) return { start: 0, end: 0 };
    // Known once the tail caught up; until then what it has read (subscriptions place cursors with currentBounds).
    return this.streamOf(topic, partition).bounds();
  }

  async currentBounds(topic: string, partition: number): Promise<PartitionBounds> {
    if ((this.partitionCount(topic) ?? 0) <= partition) return { start: 0, end: 0 };
    return (await this.started(topic, partition)).currentBounds();
  }

  holesBetween(topic: string, partition: number, from: number, to: number): number {
    // Known for partitions this gateway tails; asking must not start a tail.
    return this.streams.get(this.key(topic, partition))?.cache.holesBetween(from, to) ?? 0;
  }

  async offsetForTime(topic: string, partition: number, timeMs: number): Promise<number> {
    if ((this.partitionCount(topic) ?? 0) <= partition) return 0;
    return (await this.started(topic, partition)).offsetForTime(timeMs);
  }

  async commitPositions(durable: string, positions: readonly Cursor[]): Promise<void> {
    const result = await this.propose({ type: 'positions', durable, positions: positions.map((c) => ({ ...c })) });
    if (result.kind === 'refused') throw new RelayError(result.code, result.message);
  }

  async positions(durable: string, pattern: string): Promise<Cursor[]> {
    // Commits made through other gateways are applied here before the answer.
    await this.propose({ type: 'barrier' });
    return this.meta.state.positions.get(durable).filter((c) => topicMatches(pattern, c.topic));
  }

  async groupCommand(command: GroupCommand): Promise<GroupResult> {
    const result = await this.propose({ type: 'group', command });
    if (result.kind !== 'group') throw new RelayError('INTERNAL', `unexpected metadata result ${result.kind}`);
    return result.result;
  }

  /** The backbone as this gateway sees it (the console's backbone section): nodes, connections, stream leaders, confirm round trip. */
  backboneHealth(): BackboneHealth {
    return this.health.snapshot();
  }

  /**
   * Where each partition stream of `topics` lives, as RabbitMQ's metadata says
   * now: its leader node and every node holding it (`host:port`, leader
   * first; null and empty when unknown). Topics this gateway does not know
   * are left out. One metadata request per {@link MAX_PLACEMENT_QUERY} streams;
   * what RabbitMQ does not answer in time is unknown.
   */
  async streamPlacements(topics: readonly string[]): Promise<Map<string, StreamPlacement[]>> {
    const named: Array<{ topic: string; streams: string[] }> = [];
    for (const topic of topics) {
      const known = this.meta.state.topics.get(topic);
      if (known !== undefined) named.push({ topic, streams: Array.from({ length: known.partitions }, (_, p) => this.streamName(topic, known, p)) });
    }
    const found = new Map<string, StreamPlacement>();
    const all = named.flatMap((t) => t.streams);
    try {
      const client = await bounded(this.connection.ready(), this.options.requestTimeoutMs, 'connecting to the backbone');
      for (let at = 0; at < all.length; at += MAX_PLACEMENT_QUERY) {
        const metadata = await bounded(client.queryMetadata({ streams: all.slice(at, at + MAX_PLACEMENT_QUERY) }), this.options.requestTimeoutMs, 'asking where streams live');
        for (const m of metadata) {
          const node = (n: { host: string; port: number } | undefined): string | null => (n === undefined || n.host === '' ? null : `${n.host}:${n.port}`);
          const leader = node(m.leader);
          const replicas = [...new Set([leader, ...(m.replicas ?? []).map(node)].filter((n): n is string => n !== null))];
          found.set(m.streamName, { leader, replicas });
        }
      }
    } catch (err) {
      this.options.log('debug', 'RabbitMQ did not say where streams live; shown unknown', { error: String(err) });
    }
    return new Map(named.map((t) => [t.topic, t.streams.map((s) => found.get(s) ?? { leader: null, replicas: [] })]));
  }

  /** What the metadata tail applied and which snapshots it read and wrote (meta-log.ts). */
  metadataStats(): MetaLogStats {
    return this.meta.stats();
  }

  /** Every durable name with its positions, for operators. */
  appliedPositions(): Array<{ durable: string; positions: Cursor[] }> {
    return this.meta.state.positions.toRecords();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sessions.stop();
    await this.health.stop();
    await this.meta.close();
    // The connection first: closing consumers while it is up would read as a lost backbone and reconnect.
    await this.connection.close();
    for (const stream of this.streams.values()) await stream.close();
    this.streams.clear();
    this.consumerGroupEvents.removeAllListeners();
    this.removeAllListeners();
  }

  private async create(topic: string, settings: TopicSettings): Promise<TopicInfo> {
    const partitions = settings.partitions ?? this.options.defaultPartitions;
    const generation = newGeneration();
    const replicas = settings.replicationFactor ?? this.options.replicationFactor;
    for (let p = 0; p < partitions; p++) await this.createStream(topic, generation, p, replicas);
    const result = await this.propose({ type: 'topic-create', topic, partitions, generation, replicationFactor: replicas });
    if (result.kind !== 'topic') throw new RelayError('INTERNAL', `unexpected metadata result ${result.kind}`);
    if (result.topic.generation !== generation) {
      // Another gateway created it first: its streams are the topic's, ours go.
      const client = await this.connection.ready();
      for (let p = 0; p < partitions; p++) await client.deleteStream({ stream: partitionStreamName(this.options.streamPrefix, topic, generation, p) }).catch(() => undefined);
    }
    return result.info;
  }

  private async createStream(topic: string, generation: string, partition: number, replicas: number): Promise<void> {
    const stream = partitionStreamName(this.options.streamPrefix, topic, generation, partition);
    await PartitionStream.create(this.connection, stream, { ...this.options.streamArguments(topic), 'initial-cluster-size': replicas }, this.options.requestTimeoutMs);
  }

  private async propose(command: MetaCommand): Promise<MetaResult> {
    const result = await this.meta.propose(command);
    if (result.kind === 'refused') {
      if (command.type === 'positions') return result;
      throw new RelayError(result.code, result.message);
    }
    return result;
  }

  /**
   * The partition's stream, created and started (tailing) when missing,
   * without waiting: callers chain on it in call order.
   * `INVALID_TOPIC`/`INVALID_PARTITION` when it does not exist.
   */
  private streamOf(topic: string, partition: number): PartitionStream {
    const known = this.meta.state.topics.get(topic);
    if (known === undefined) throw new RelayError('INVALID_TOPIC', `topic ${topic} does not exist`);
    if (!Number.isInteger(partition) || partition < 0 || partition >= known.partitions) {
      throw new RelayError('INVALID_PARTITION', `topic ${topic} has ${known.partitions} partitions, not ${partition + 1}`);
    }
    const key = this.key(topic, partition);
    const existing = this.streams.get(key);
    if (existing !== undefined) return existing;
    const stream = new PartitionStream(this.connection, {
      stream: this.streamName(topic, known, partition),
      cacheBytes: this.options.cacheBytes,
      dedupeWindow: this.options.dedupeWindow,
      requestTimeoutMs: this.options.requestTimeoutMs,
      tailStartMessages: this.options.tailStartMessages,
      republishLookbackMessages: this.options.republishLookbackMessages,
      now: this.options.now,
      log: this.options.log,
      appended: () => this.scheduleAppended(topic, partition),
      confirmed: (seconds) => this.health.confirmed(seconds),
    });
    stream.start(this.connection.ready()).catch(() => {
      // A failed start is tried again by the next caller.
      if (this.streams.get(key) === stream) this.streams.delete(key);
      void stream.close();
    });
    this.streams.set(key, stream);
    return stream;
  }

  /** The partition's stream once its tail has read everything stored before. */
  private async started(topic: string, partition: number): Promise<PartitionStream> {
    const stream = this.streamOf(topic, partition);
    await stream.ready();
    return stream;
  }

  private applied(command: MetaCommand, result: MetaResult): void {
    switch (command.type) {
      case 'topic-create':
        this.consumerGroupEvents.emit('changed', undefined);
        // Subscriptions matching the new topic (made through any gateway) place cursors on it; reading starts its tails.
        if (result.kind === 'topic' && result.created) for (let p = 0; p < result.info.partitions; p++) this.emit('appended', command.topic, p);
        return;
      case 'topic-alter':
        this.consumerGroupEvents.emit('changed', undefined);
        // Subscriptions matching the topic place cursors on the new partitions.
        if (result.kind === 'topic' && result.addedFrom !== undefined) for (let p = result.addedFrom; p < result.info.partitions; p++) this.emit('appended', command.topic, p);
        return;
      case 'topic-delete':
        if (result.kind !== 'topic-deleted') return;
        for (let p = 0; p < result.info.partitions; p++) {
          const key = this.key(command.topic, p);
          void this.streams.get(key)?.close();
          this.streams.delete(key);
        }
        this.consumerGroupEvents.emit('changed', undefined);
        this.topicEvents.emit('deleted', command.topic);
        return;
      case 'group':
        this.sessions.applied(command.command);
        this.consumerGroupEvents.emit('changed', command.command.group);
        return;
      default:
        return;
    }
  }

  /**
   * The metadata was restored from a snapshot (meta-log.ts): the entries it
   * covers were not applied one by one. Tails of topics gone (or created
   * again) close; subscriptions place cursors on every partition now known;
   * group members look again.
   */
  private restored(): void {
    for (const [key, stream] of this.streams) {
      const partition = Number(key.slice(0, key.indexOf(':')));
      const topic = key.slice(key.indexOf(':') + 1);
      const known = this.meta.state.topics.get(topic);
      if (known !== undefined && partition < known.partitions && this.streamName(topic, known, partition) === stream.name) continue;
      void stream.close();
      this.streams.delete(key);
      if (known === undefined) this.topicEvents.emit('deleted', topic);
    }
    for (const [topic, known] of this.meta.state.topics) for (let p = 0; p < known.partitions; p++) this.emit('appended', topic, p);
    this.consumerGroupEvents.emit('changed', undefined);
  }

  /** Coalesces the tail's reads into one `appended` per partition and turn of the event loop. */
  private scheduleAppended(topic: string, partition: number): void {
    const key = this.key(topic, partition);
    if (this.appendedScheduled.has(key)) return;
    this.appendedScheduled.add(key);
    setImmediate(() => {
      this.appendedScheduled.delete(key);
      if (!this.closed) this.emit('appended', topic, partition);
    });
  }

  /** Messages a partition's stream read from the backbone since this gateway started tailing it; `undefined` when it does not tail it. */
  partitionStats(topic: string, partition: number): PartitionStreamStats | undefined {
    const stats = this.streams.get(this.key(topic, partition))?.stats;
    return stats === undefined ? undefined : { ...stats };
  }

  /** The partition streams this gateway tails (started by a read, an append or the console). */
  private tailedStreams(): Array<{ topic: string; partition: number; stream: string }> {
    const out: Array<{ topic: string; partition: number; stream: string }> = [];
    for (const [topic, known] of this.meta.state.topics) {
      for (let p = 0; p < known.partitions; p++) if (this.streams.has(this.key(topic, p))) out.push({ topic, partition: p, stream: this.streamName(topic, known, p) });
    }
    return out;
  }

  /** Nodes the streams of `topic` are created on: as recorded at its creation, else the configured factor. */
  replicationFactorOf(topic: string): number {
    return this.meta.state.topics.get(topic)?.replicationFactor ?? this.options.replicationFactor;
  }

  private streamName(topic: string, known: BackboneTopic, partition: number): string {
    return partitionStreamName(this.options.streamPrefix, topic, known.generation, partition);
  }

  private key(topic: string, partition: number): string {
    return `${partition}:${topic}`;
  }
}
