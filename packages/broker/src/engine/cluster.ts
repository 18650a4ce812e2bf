import { join } from 'node:path';
import { EventEmitter } from 'eventemitter3';
import { RelayError, type AckLevel, type TopicInfo } from '@relaymq/sdk/protocol';
import { MetadataState, type MetadataCommand, type TopicMetadata } from '../core/metadata/metadata.js';
import { applyPublish, parsePublishCommand, type PublishCommand } from '../core/partition/command.js';
import { Partition, type AppendOutcome, type AppendRequest, type StoredMessage } from '../core/partition/partition.js';
import type { NodeId, RaftConfigOptions } from '../core/raft/index.js';
import { PeerRpc } from '../net/peer-rpc.js';
import type { PeerTransport } from '../net/peer-transport.js';
import type { BrokerObserver } from '../observability/observer.js';
import { RaftGroup } from '../runtime/raft-group.js';
import { DurableRaftStorage } from '../storage/raft-storage.js';
import type { LogEngine, LogEngineEvents, PartitionBounds } from './engine.js';

/** Settings of the replicated engine. */
export interface ClusterEngineOptions {
  self: NodeId;
  /** Every voting broker, this one included. */
  brokers: readonly NodeId[];
  transport: PeerTransport;
  /** Where Raft logs live; undefined keeps them in memory (tests only: a restart then forgets votes). */
  dataDir: string | undefined;
  defaultPartitions: number;
  replicationFactor: number;
  dedupeWindow: number;
  retentionBytes: number;
  /** How long a publish or topic creation may wait for a leader and a commit. */
  requestTimeoutMs: number;
  now: () => number;
  /** Told of fsync durations and leader changes, when operations are enabled. */
  observer?: BrokerObserver;
  log: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
}

/** Ticks of the Raft groups: elections after 0.5–1 s without a leader, heartbeats every 50 ms. */
export const RAFT_RUNTIME_TICK_MS = 50;
const RAFT_CONFIG: RaftConfigOptions = { electionTicks: 10, heartbeatTicks: 1 };
const META_GROUP = 'meta';

const partitionGroupId = (topic: string, partition: number): string => `p/${topic}/${partition}`;

/** One Raft group as {@link ClusterEngine.groupStatus} reports it. */
export interface GroupStatus {
  /** `meta` or `p/<topic>/<partition>`. */
  group: string;
  /** This broker's role in the group. */
  role: string;
  leader: string | null;
  term: number;
  commit: number;
  lastIndex: number;
  /** The group's replicas (voters). */
  voters: string[];
  /** Leader only: each replica's match index and whether this broker is connected to it. */
  replicas: Array<{ id: string; match: number; connected: boolean }>;
}

/** What a forwarded publish carries. */
interface ForwardedPublish {
  topic: string;
  partition: number;
  ack: AckLevel;
  command: PublishCommand;
}

/**
 * The embedded, replicated engine: cluster metadata in one Raft group over
 * every broker, each partition in its own Raft group over its replicas. A
 * publish is proposed by the partition's leader (brokers that do not lead
 * forward it there) and acknowledged once committed on a quorum; every
 * replica applies committed batches to its copy of the partition, so any of
 * them serves subscribers.
 */
export class ClusterEngine extends EventEmitter<LogEngineEvents> implements LogEngine {
  readonly offsetsSurviveRestart = true;
  private readonly metadata: MetadataState;
  private readonly groups = new Map<string, RaftGroup<unknown, unknown>>();
  private readonly partitions = new Map<string, Partition>();
  private readonly creating = new Map<string, Promise<RaftGroup<PublishCommand, AppendOutcome[]>>>();
  private readonly rpc: PeerRpc;
  private readonly metaEvents = new EventEmitter<{ applied: () => void; leader: () => void }>();
  private ticker: ReturnType<typeof setInterval> | undefined;
  private meta!: RaftGroup<MetadataCommand, unknown>;
  private readonly onPeerMessage = (from: string, channel: string, payload: unknown): void => {
    if (!channel.startsWith('raft/')) return;
    this.groups.get(channel.slice(5))?.receive(from, payload);
  };

  private constructor(private readonly options: ClusterEngineOptions) {
    super();
    this.metadata = new MetadataState(options.brokers);
    this.rpc = new PeerRpc(options.transport);
  }

  static async start(options: ClusterEngineOptions): Promise<ClusterEngine> {
    const engine = new ClusterEngine(options);
    await engine.open();
    return engine;
  }

  private async open(): Promise<void> {
    const { transport, brokers } = this.options;
    this.meta = new RaftGroup<MetadataCommand, unknown>({
      ...this.groupBase(META_GROUP, brokers),
      storage: await this.storage(META_GROUP, brokers),
      parseData: parseMetadataCommand,
      apply: (command) => this.applyMetadata(command),
      onLeaderChange: () => this.metaEvents.emit('leader'),
    });
    this.groups.set(META_GROUP, this.meta as RaftGroup<unknown, unknown>);
    transport.on('message', this.onPeerMessage);
    this.rpc.handle('meta.create', async (_from, body) => this.createTopicHere(parseTopic(body)));
    this.rpc.handle('publish', async (_from, body) => this.publishHere(parseForwarded(body)));
    this.ticker = setInterval(() => {
      for (const group of this.groups.values()) group.tick();
    }, RAFT_RUNTIME_TICK_MS);
    this.ticker.unref();
  }

  // ---- LogEngine ----------------------------------------------------------------

  async ensureTopic(topic: string): Promise<TopicInfo> {
    const known = this.metadata.get(topic);
    if (known !== undefined) return { topic, partitions: known.partitions.length };
    await this.viaLeader(this.meta, () => this.createTopicHere(topic), 'meta.create', topic);
    // The leader applied it; wait until this broker did too.
    const created = await this.until(() => this.metadata.get(topic), `topic ${topic} to reach this broker's metadata`);
    return { topic, partitions: created.partitions.length };
  }

  partitionCount(topic: string): number | undefined {
    return this.metadata.get(topic)?.partitions.length;
  }

  topics(): Iterable<string> {
    return this.metadata.all().map((t) => t.topic);
  }

  async append(topic: string, partition: number, requests: AppendRequest[], ack: AckLevel): Promise<AppendOutcome[]> {
    const first = requests[0];
    if (first === undefined) return [];
    const forwarded: ForwardedPublish = {
      topic,
      partition,
      ack,
      command: {
        producerId: first.producerId,
        timestampMs: this.options.now(),
        dedupe: ack !== 'none',
        firstSeq: first.seq,
        messages: requests.map((r) => {
          const message: PublishCommand['messages'][number] = { data: r.data, encoding: r.encoding };
          if (r.key !== undefined) message.key = r.key;
          if (r.headers !== undefined) message.headers = r.headers;
          return message;
        }),
      },
    };
    const group = await this.partitionGroup(topic, partition);
    return this.viaLeader(group, () => this.publishHere(forwarded), 'publish', forwarded) as Promise<AppendOutcome[]>;
  }

  read(topic: string, partition: number, offset: number, maxCount: number, maxBytes: number): StoredMessage[] {
    return this.partitions.get(partitionGroupId(topic, partition))?.read(offset, maxCount, maxBytes) ?? [];
  }

  bounds(topic: string, partition: number): PartitionBounds {
    const log = this.partitions.get(partitionGroupId(topic, partition));
    return log === undefined ? { start: 0, end: 0 } : { start: log.startOffset, end: log.endOffset };
  }

  offsetForTime(topic: string, partition: number, timeMs: number): number {
    return this.partitions.get(partitionGroupId(topic, partition))?.offsetForTime(timeMs) ?? 0;
  }

  /** The leader of a partition as this broker knows it. */
  leaderOf(topic: string, partition: number): string | undefined {
    return this.groups.get(partitionGroupId(topic, partition))?.node.leader ?? undefined;
  }

  /** How many groups this broker leads (advertised as load). */
  partitionsLed(): number {
    let led = 0;
    for (const [id, group] of this.groups) if (id !== META_GROUP && group.isLeader()) led++;
    return led;
  }

  /**
   * Raft status of every group hosted here, for tests and operators.
   * `replicas` has every voter's match index (known on the leader only,
   * empty elsewhere) and whether this broker's peer link to it is up.
   */
  groupStatus(): GroupStatus[] {
    const connected = new Set(this.options.transport.connectedPeers());
    return [...this.groups.values()].map((g) => {
      const s = g.status();
      const replicas = s.progress.map((p) => ({ id: p.id, match: p.match, connected: p.id === this.options.self || connected.has(p.id) }));
      return { group: g.id, role: s.role, leader: s.leader, term: s.term, commit: s.commit, lastIndex: s.lastIndex, voters: [...s.voters], replicas };
    });
  }

  /**
   * Before shutdown: hands every group this broker leads to another voter,
   * so publishing stalls for a heartbeat, not an election timeout.
   */
  async transferLeadership(timeoutMs: number): Promise<void> {
    const others = this.options.brokers.filter((b) => b !== this.options.self && this.options.transport.connectedPeers().includes(b));
    for (const group of this.groups.values()) {
      const candidates = group.status().voters.filter((v) => others.includes(v));
      const target = candidates[Math.floor(Math.random() * candidates.length)];
      if (group.isLeader() && target !== undefined) group.transferLeadership(target);
    }
    await this.until(() => ([...this.groups.values()].some((g) => g.isLeader()) ? undefined : true), 'leadership to move', timeoutMs).catch(() => {
      this.options.log('warn', 'some groups kept their leader at shutdown');
    });
  }

  async close(): Promise<void> {
    clearInterval(this.ticker);
    this.options.transport.off('message', this.onPeerMessage);
    this.rpc.close();
    for (const group of this.groups.values()) group.stop();
    await Promise.all([...this.storages].map((s) => s.close()));
    this.removeAllListeners();
  }

  // ---- internals -------------------------------------------------------------------

  private readonly storages = new Set<DurableRaftStorage<unknown, never>>();

  private async storage<T>(group: string, voters: readonly NodeId[]): Promise<DurableRaftStorage<T, never>> {
    const path = this.options.dataDir === undefined ? undefined : join(this.options.dataDir, 'raft', `${group.replace(/\//g, '~')}.log`);
    const storage = await DurableRaftStorage.open<T, never>(path, voters);
    this.storages.add(storage as DurableRaftStorage<unknown, never>);
    return storage;
  }

  private groupBase(
    id: string,
    voters: readonly NodeId[],
  ): { id: string; self: NodeId; voters: readonly NodeId[]; transport: PeerTransport; config: RaftConfigOptions; log: ClusterEngineOptions['log']; observer?: BrokerObserver } {
    const base = { id, self: this.options.self, voters, transport: this.options.transport, config: RAFT_CONFIG, log: this.options.log };
    return this.options.observer === undefined ? base : { ...base, observer: this.options.observer };
  }

  private applyMetadata(command: MetadataCommand): unknown {
    const result = this.metadata.apply(command);
    if (result.kind === 'created') this.hostPartitions(result.topic);
    this.metaEvents.emit('applied');
    return result.kind;
  }

  /** Starts the partition groups of a new topic that have a replica here. */
  private hostPartitions(topic: TopicMetadata): void {
    topic.partitions.forEach((assignment, partition) => {
      if (assignment.replicas.includes(this.options.self)) void this.partitionGroup(topic.topic, partition);
    });
  }

  /** The local group of a partition, created (with its storage) on first need. */
  private partitionGroup(topic: string, partition: number): Promise<RaftGroup<PublishCommand, AppendOutcome[]>> {
    const id = partitionGroupId(topic, partition);
    let creating = this.creating.get(id);
    if (creating !== undefined) return creating;
    creating = (async () => {
      const assignment = this.metadata.get(topic)?.partitions[partition];
      if (assignment === undefined) throw new RelayError('INVALID_PARTITION', `topic ${topic} has no partition ${partition}`);
      if (!assignment.replicas.includes(this.options.self)) {
        throw new RelayError('NOT_LEADER', `broker ${this.options.self} holds no replica of ${id}`, { leader: assignment.replicas[0] as string });
      }
      const log = new Partition({ dedupeWindow: this.options.dedupeWindow, retentionBytes: this.options.retentionBytes });
      this.partitions.set(id, log);
      const group = new RaftGroup<PublishCommand, AppendOutcome[]>({
        ...this.groupBase(id, assignment.replicas),
        storage: await this.storage(id, assignment.replicas),
        parseData: parsePublishCommand,
        apply: (command) => {
          const outcomes = applyPublish(log, command);
          if (outcomes.some((o) => o.kind === 'stored')) this.emit('appended', topic, partition);
          return outcomes;
        },
      });
      this.groups.set(id, group as RaftGroup<unknown, unknown>);
      return group;
    })();
    this.creating.set(id, creating);
    return creating;
  }

  private createTopicHere(topic: string): Promise<unknown> {
    if (this.metadata.get(topic) !== undefined) return Promise.resolve('exists');
    const { defaultPartitions, replicationFactor } = this.options;
    return this.meta.propose({ type: 'create-topic', topic, partitions: defaultPartitions, replicationFactor }, this.options.requestTimeoutMs);
  }

  private async publishHere(forwarded: ForwardedPublish): Promise<AppendOutcome[]> {
    const group = await this.partitionGroup(forwarded.topic, forwarded.partition);
    const proposal = group.propose(forwarded.command, this.options.requestTimeoutMs, forwarded.ack === 'all');
    if (forwarded.ack === 'none') {
      proposal.catch(() => {}); // fire and forget
      return [];
    }
    return proposal;
  }

  /**
   * Runs `local` when this broker leads `group`, otherwise forwards to the
   * leader. When the leader is unknown, unreachable or just lost its role, it
   * waits for the next one (bounded by `requestTimeoutMs`) instead of
   * bouncing the client: only when no leader can be reached in time does it
   * answer `NO_QUORUM`, which sends the client to another broker.
   */
  private async viaLeader<R>(group: { readonly id: string; readonly node: { readonly leader: NodeId | null } }, local: () => Promise<R>, method: string, body: unknown): Promise<R> {
    const deadline = this.options.now() + this.options.requestTimeoutMs;
    let avoid: NodeId | undefined;
    for (let attempt = 0; this.options.now() < deadline && attempt < 100; attempt++) {
      const leader = await this.until(
        () => (group.node.leader !== null && group.node.leader !== avoid ? group.node.leader : undefined),
        `a leader of ${group.id}`,
        Math.max(1, deadline - this.options.now()),
      ).catch(() => undefined);
      if (leader === undefined) break;
      try {
        if (leader === this.options.self) return await local();
        // A little longer than the leader's own commit timeout, so its answer (even TIMEOUT) gets back.
        return (await this.rpc.call(leader, method, body, this.options.requestTimeoutMs + 1000)) as R;
      } catch (err) {
        const code = err instanceof RelayError ? err.code : 'INTERNAL';
        // The leader went away or stepped down between our look and our request: find the next one.
        if (code !== 'NOT_CONNECTED' && code !== 'NOT_LEADER' && code !== 'SHUTTING_DOWN') throw err;
        avoid = leader;
      }
    }
    throw new RelayError('NO_QUORUM', `no reachable leader for ${group.id}: this broker cannot reach a quorum of its replicas`);
  }

  /** Resolves with the first defined value of `check`, re-checked on every tick; rejects after `timeoutMs`. */
  private until<V>(check: () => V | undefined, what: string, timeoutMs = this.options.requestTimeoutMs): Promise<V> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const started = this.options.now();
      const timer = setInterval(() => {
        const value = check();
        if (value !== undefined) {
          clearInterval(timer);
          resolve(value);
        } else if (this.options.now() - started > timeoutMs) {
          clearInterval(timer);
          reject(new RelayError('TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${what}`));
        }
      }, RAFT_RUNTIME_TICK_MS / 5);
    });
  }
}

function parseMetadataCommand(value: unknown): MetadataCommand | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const o = value as Record<string, unknown>;
  if (o.type !== 'create-topic' || typeof o.topic !== 'string' || o.topic.length > 255) return undefined;
  if (!Number.isSafeInteger(o.partitions) || (o.partitions as number) < 1 || (o.partitions as number) > 1024) return undefined;
  if (!Number.isSafeInteger(o.replicationFactor) || (o.replicationFactor as number) < 1) return undefined;
  return { type: 'create-topic', topic: o.topic, partitions: o.partitions as number, replicationFactor: o.replicationFactor as number };
}

function parseTopic(body: unknown): string {
  if (typeof body !== 'string' || body.length === 0 || body.length > 255) throw new RelayError('INVALID_ARGUMENT', 'meta.create wants a topic name');
  return body;
}

function parseForwarded(body: unknown): ForwardedPublish {
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const command = parsePublishCommand(o.command);
  const ack = o.ack;
  if (
    command === undefined ||
    typeof o.topic !== 'string' ||
    !Number.isSafeInteger(o.partition) ||
    (ack !== 'none' && ack !== 'leader' && ack !== 'quorum' && ack !== 'all')
  ) {
    throw new RelayError('INVALID_ARGUMENT', 'malformed forwarded publish');
  }
  return { topic: o.topic, partition: o.partition as number, ack, command };
}
