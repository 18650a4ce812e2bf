import type { BrokerInfo, ClusterView } from '@relaymq/sdk/protocol';
import type { BackboneHealth } from '../engine/backbone/health.js';
import type { RaftCounters } from '../core/raft/index.js';
import type { GroupStatus, ReplicaRead } from '../engine/cluster.js';
import { parsePartitionGroup } from '../engine/group-factory.js';
import type { PeerTransport } from '../net/peer-transport.js';
import { consumerLag, type ConsumerLag, type PositionSource } from './consumer-lag.js';
import type { BrowseSource } from './message-browser.js';

/** A replica move in progress, as the metadata leader drives it (engine/replica-moves.ts); null: not known yet. */
export interface MoveReport {
  topic: string;
  partition: number;
  from: string;
  to: string;
  startedAtMs: number;
  phase: string;
  /** Bytes the new replica holds of the partition, the partition's size on its leader, the recent copy rate and the time left at it. */
  copiedBytes: number | null;
  totalBytes: number | null;
  bytesPerSecond: number | null;
  timeLeftMs: number | null;
  /** The last step's failure while it is retried. */
  error: string | null;
}

/**
 * A replica whose peer link is down, or that trails the leader by more than
 * this many entries, is out of sync: its partition counts as under-replicated.
 * Pipelined writes keep followers a few hundred entries behind for a moment;
 * this bound is well above that.
 */
export const OUT_OF_SYNC_LAG_ENTRIES = 1000;

/** A topic as the metadata this broker applied assigns it. */
export interface TopicAssignment {
  topic: string;
  replicationFactor: number;
  /** Per partition, its replicas (the first is the preferred leader). */
  partitions: string[][];
}

/** What operations read from a broker (its composition root provides it). */
export interface OperationsSource {
  readonly id: string;
  /** Broker counters (`broker.stats()`); every numeric field is exported as a metric. */
  stats(): object;
  /** Membership as gossip sees it (standalone: this broker alone). */
  cluster(): ClusterView;
  /** Ids of the configured peers: one missing from the gossip view has left the cluster. */
  readonly peerIds: readonly string[];
  /** Raft groups hosted here; empty for a standalone broker. */
  groups(): GroupStatus[];
  /** The Raft core's counters summed over every group run here since start (dropped ones included); `undefined` without Raft. */
  raftCounters?(): RaftCounters | undefined;
  /** Whether a cluster runs under this broker (peers configured). */
  readonly clustered: boolean;
  /** Accepting clients: listening and not draining. */
  accepting(): boolean;
  /** Whether a metadata leader counts as known for readiness (kept through an election); absent: the group's leader now. */
  metadataLeaderKnown?(): boolean;
  /** Directory watched by the disk alert, when the broker stores data. */
  readonly dataDir: string | undefined;
  /** This broker's own replica of a partition (`undefined`: not hosted here); `/api/replica`. */
  readReplica(topic: string, partition: number, offset: number, maxCount: number, maxBytes: number): Promise<ReplicaRead | undefined>;
  /** The URL clients dial. */
  url(): string;
  /** The peer links (clustered only): the console gathers the other brokers' reports over them. */
  peerTransport(): PeerTransport | undefined;
  /** Topics as the metadata applied here assigns them (standalone: every partition on this broker). */
  topics(): TopicAssignment[];
  /** Bounds of a partition hosted here; `undefined` when not hosted here. */
  hostedBounds(topic: string, partition: number): { start: number; end: number } | undefined;
  /** Offsets of a partition in `[from, to)` that hold no message (the backbone's offset holes); absent: none. */
  holesBetween?(topic: string, partition: number, from: number, to: number): number;
  /** Whether this broker leads the partition (standalone: every partition it has). */
  leads(topic: string, partition: number): boolean;
  /** Committed consumer positions: durable names (consumer groups add a source of theirs). */
  positionSources(): readonly PositionSource[];
  /** Any partition of the cluster, for the message browser. */
  readonly browser: BrowseSource;
  /** Replica moves in progress as this broker drives them (figures known on the metadata leader only); absent: none. */
  moves?(): MoveReport[];
  /** Backbone mode: the backbone as this gateway sees it (absent for brokers that keep their own log). */
  backbone?(): BackboneHealth;
}

/** Consumer lag of the partitions this broker leads (each partition reported by its leader only), holes in the offsets not counted. */
export function consumerLagHere(source: Pick<OperationsSource, 'positionSources' | 'leads' | 'hostedBounds' | 'holesBetween'>): ConsumerLag[] {
  return consumerLag(source.positionSources(), {
    end: (topic, partition) => (source.leads(topic, partition) ? source.hostedBounds(topic, partition)?.end : undefined),
    ...(source.holesBetween === undefined ? {} : { holesBetween: source.holesBetween.bind(source) }),
  });
}

/** One partition as this broker sees it. */
export interface PartitionView {
  topic: string;
  partition: number;
  leader: string | null;
  replicas: string[];
  /** This broker's role in the partition's group. */
  role: string;
  term: number;
  commit: number;
  /**
   * The first Raft index this replica's log still holds: above 1 once it
   * recorded a snapshot (a replica added now gets the snapshot and copies
   * the segments below it, at `moveBytesPerSecond`). Absent when unknown.
   */
  firstIndex?: number;
  lastIndex: number;
  /** Entries each replica trails the leader by; known on the leader only (`null` elsewhere). */
  lag: Record<string, number> | null;
  /** Replicas out of sync; known on the leader only (`null` elsewhere). */
  outOfSync: string[] | null;
  leaderless: boolean;
  underReplicated: boolean;
}

/**
 * A cluster member. Beyond gossip's states: `left`, a configured peer seen
 * before that left the member list (it shut down); `unseen`, a configured
 * peer never seen since this broker started (not started yet, or unreachable).
 */
export interface MemberView extends Omit<BrokerInfo, 'state'> {
  state: BrokerInfo['state'] | 'left' | 'unseen';
}

/** Every member: gossip's view plus the configured peers missing from it. */
export class Membership {
  private readonly seen = new Set<string>();

  constructor(private readonly source: OperationsSource) {}

  list(): MemberView[] {
    const view: MemberView[] = this.source.cluster().brokers;
    for (const b of view) this.seen.add(b.id);
    const ids = new Set(view.map((b) => b.id));
    const missing = this.source.peerIds
      .filter((id) => !ids.has(id))
      .map((id): MemberView => ({ id, url: '', state: this.seen.has(id) ? 'left' : 'unseen' }));
    return [...view, ...missing].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
}

/** One broker as the cluster endpoint shows it. */
export interface BrokerView extends MemberView {
  /**
   * `leader` of the cluster metadata, `follower`, `standalone`, or `gateway`
   * (backbone mode: a stateless gateway over RabbitMQ streams; it leads no
   * partition, RabbitMQ's nodes lead the streams).
   */
  role: 'leader' | 'follower' | 'standalone' | 'gateway';
  /** Partitions this broker leads, as far as the reporting broker knows (a gateway: 0). */
  partitionsLed: number;
  /** Whether this entry is the broker that answered. */
  self: boolean;
}

/** Who answered, when, and its health verdict: the head of `/api/broker`'s and `/api/cluster`'s views. */
export interface ClusterVerdict {
  /** The broker that answered. */
  broker: string;
  timeMs: number;
  /** Whether the answering broker is ready (`/readyz`). */
  ready: boolean;
  healthy: boolean;
  /** Why the cluster is not healthy, one sentence each; empty when healthy. */
  problems: string[];
  metadataLeader: string | null;
}

/** One broker's first-hand view of the cluster, with a health verdict (part of `/api/broker`; `/api/cluster` combines every broker's, see `ClusterReport`). */
export interface ClusterStatus extends ClusterVerdict {
  brokers: BrokerView[];
  partitions: PartitionView[];
}

/** Partitions hosted here, with lag and replication health. */
export function partitionViews(groups: readonly GroupStatus[]): PartitionView[] {
  const views: PartitionView[] = [];
  for (const g of groups) {
    const name = parsePartitionGroup(g.group);
    if (name === undefined) continue;
    const isLeader = g.role === 'leader';
    let lag: Record<string, number> | null = null;
    let outOfSync: string[] | null = null;
    if (isLeader) {
      lag = {};
      outOfSync = [];
      for (const r of g.replicas) {
        const behind = Math.max(0, g.lastIndex - r.match);
        lag[r.id] = behind;
        if (!r.connected || behind > OUT_OF_SYNC_LAG_ENTRIES) outOfSync.push(r.id);
      }
    }
    views.push({
      ...name,
      leader: g.leader,
      replicas: g.voters,
      role: g.role,
      term: g.term,
      commit: g.commit,
      firstIndex: g.firstIndex,
      lastIndex: g.lastIndex,
      lag,
      outOfSync,
      leaderless: g.leader === null,
      underReplicated: outOfSync !== null && outOfSync.length > 0,
    });
  }
  return views.sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
}

/** The answer of `/api/cluster`. */
export function clusterStatus(source: OperationsSource, membership: Membership, nowMs: number): ClusterStatus {
  const groups = source.groups();
  const partitions = partitionViews(groups);
  const metadataLeader = groups.find((g) => g.group === 'meta')?.leader ?? null;
  const led = new Map<string, number>();
  for (const p of partitions) if (p.leader !== null) led.set(p.leader, (led.get(p.leader) ?? 0) + 1);
  const brokers = membership.list().map(
    (b): BrokerView => ({
      ...b,
      role: source.backbone !== undefined ? 'gateway' : !source.clustered ? 'standalone' : b.id === metadataLeader ? 'leader' : 'follower',
      partitionsLed: led.get(b.id) ?? 0,
      self: b.id === source.id,
    }),
  );
  const ready = isReady(source, metadataLeader);
  const problems: string[] = [];
  if (!ready) problems.push(`broker ${source.id} is not ready (${source.accepting() ? 'no metadata leader known' : 'not accepting clients'})`);
  for (const b of brokers) {
    if (b.state === 'left') problems.push(`broker ${b.id} left the cluster`);
    else if (b.state === 'unseen') problems.push(`broker ${b.id} has not joined since ${source.id} started`);
    else if (b.state !== 'alive') problems.push(`broker ${b.id} is ${b.state}`);
  }
  for (const p of partitions) {
    if (p.leaderless) problems.push(`partition ${p.topic}/${p.partition} has no leader`);
    else if (p.underReplicated) problems.push(`partition ${p.topic}/${p.partition} is under-replicated (out of sync: ${(p.outOfSync ?? []).join(', ')})`);
  }
  return { broker: source.id, timeMs: nowMs, ready, healthy: problems.length === 0, problems, metadataLeader, brokers, partitions };
}

/**
 * `/readyz`: accepting clients and, in a cluster, a metadata leader known
 * (topics can be created and looked up) — through an election, the one just
 * lost still counts when the source says so ({@link OperationsSource.metadataLeaderKnown}).
 */
export function isReady(
  source: Pick<OperationsSource, 'accepting' | 'clustered' | 'groups' | 'metadataLeaderKnown'>,
  metadataLeader = source.groups().find((g) => g.group === 'meta')?.leader ?? null,
): boolean {
  if (!source.accepting()) return false;
  return !source.clustered || (source.metadataLeaderKnown?.() ?? metadataLeader !== null);
}
