import { RelayError } from '@relaymq/sdk/protocol';
import type { MemberView, MoveReport, PartitionView, TopicAssignment } from './cluster-status.js';
import { parseBackboneHealth, type BackboneHealth } from './backbone-health.js';
import type { ConsumerLag } from './consumer-lag.js';
import type { ClusterEvent, SeriesPoint } from './history.js';
import { parseCounts } from './latency-histogram.js';

export type { TopicAssignment } from './cluster-status.js';

/** The file system of a broker's data directory, as `df` counts it. */
export interface BrokerDisk {
  path: string;
  sizeBytes: number;
  availableBytes: number;
  usedPercent: number;
  /** Bytes the partitions hosted here take (segments and Raft logs). */
  dataBytes: number;
}

/** Messages per second of one topic through one broker over the last sample interval. */
export interface TopicRate {
  topic: string;
  inPerSec: number;
  outPerSec: number;
}

/** One partition's replica on one broker: its committed bounds and size on disk. */
export interface ReplicaStore {
  topic: string;
  partition: number;
  /** First offset still stored. */
  start: number;
  /** Offset the next message will get. */
  end: number;
  /** Bytes on disk (segments and Raft log); 0 without a data directory. */
  bytes: number;
}

/**
 * What one broker knows first-hand: `/api/broker`, and the answer to a
 * peer's `console.report` from which every broker builds the cluster view
 * (cluster-view.ts). Values are null rather than absent, because the peer
 * codec (msgpack) keeps null and drops undefined.
 */
export interface BrokerReport {
  broker: string;
  /** Client URL. */
  url: string;
  timeMs: number;
  ready: boolean;
  metadataLeader: string | null;
  /** Membership as this broker's gossip sees it. */
  members: MemberView[];
  /** Partitions hosted here; lag and out-of-sync replicas filled where this broker leads. */
  partitions: PartitionView[];
  connections: number;
  subscriptions: number;
  /** Live chart points, oldest first, one per second. */
  series: SeriesPoint[];
  /** Per-topic rates over the last sample interval (publishes received and deliveries made here). */
  topicRates: TopicRate[];
  /** Replicas hosted here: bounds and size on disk. */
  stores: ReplicaStore[];
  disk: BrokerDisk | null;
  /** Consumer lag of partitions led here. */
  consumers: ConsumerLag[];
  /** Topics in the metadata as applied here. */
  topics: TopicAssignment[];
  /** Recent events, newest first. */
  events: ClusterEvent[];
  /** Replica moves in progress, reported by the metadata leader (the one that drives them; others report none). Absent from older brokers. */
  moves?: MoveReport[];
  /** The backbone as this gateway sees it; absent from brokers that keep their own log (and from older gateways). */
  backbone?: BackboneHealth;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const isNullable = <T>(v: unknown, check: (x: unknown) => x is T): boolean => v === null || check(v);
const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every(isStr);
const numberRecord = (v: unknown): boolean => isObj(v) && Object.values(v).every(isNum);

function list<T>(value: unknown, what: string, check: (item: Obj) => boolean): T[] {
  if (!Array.isArray(value) || !value.every((item) => isObj(item) && check(item))) throw malformed(what);
  return value as T[];
}

function malformed(what: string): RelayError {
  return new RelayError('PROTOCOL_ERROR', `malformed broker report (${what})`);
}

/**
 * Checks a report received from a peer. Peers are brokers, but a bug or a
 * different version must not break this broker's console: anything the
 * cluster view reads is checked, and a malformed report counts as no answer.
 */
export function parseBrokerReport(value: unknown): BrokerReport {
  if (!isObj(value)) throw malformed('not a map');
  const o = value;
  if (!isStr(o.broker) || !isStr(o.url) || !isNum(o.timeMs) || typeof o.ready !== 'boolean' || !isNullable(o.metadataLeader, isStr)) throw malformed('header');
  if (!isCount(o.connections) || !isCount(o.subscriptions)) throw malformed('counts');
  const members = list<MemberView>(o.members, 'members', (m) => isStr(m.id) && isStr(m.url) && isStr(m.state));
  const partitions = list<PartitionView>(
    o.partitions,
    'partitions',
    (p) =>
      isStr(p.topic) &&
      isCount(p.partition) &&
      isNullable(p.leader, isStr) &&
      strings(p.replicas) &&
      isStr(p.role) &&
      isCount(p.term) &&
      isCount(p.commit) &&
      isCount(p.lastIndex) &&
      (p.lag === null || numberRecord(p.lag)) &&
      (p.outOfSync === null || strings(p.outOfSync)) &&
      typeof p.leaderless === 'boolean' &&
      typeof p.underReplicated === 'boolean',
  );
  const series = list<SeriesPoint>(
    o.series,
    'series',
    (s) => isNum(s.timeMs) && isNum(s.inPerSec) && isNum(s.outPerSec) && isNullable(s.p50Ms, isNum) && isNullable(s.p99Ms, isNum) && parseCounts(s.latency) !== undefined,
  );
  for (const s of series) s.latency = parseCounts(s.latency) ?? {};
  const topicRates = list<TopicRate>(o.topicRates, 'topic rates', (t) => isStr(t.topic) && isNum(t.inPerSec) && isNum(t.outPerSec));
  const stores = list<ReplicaStore>(o.stores, 'stores', (s) => isStr(s.topic) && isCount(s.partition) && isCount(s.start) && isCount(s.end) && isCount(s.bytes));
  const d = o.disk;
  if (d !== null && !(isObj(d) && isStr(d.path) && isCount(d.sizeBytes) && isCount(d.availableBytes) && isNum(d.usedPercent) && isCount(d.dataBytes))) throw malformed('disk');
  const consumers = list<ConsumerLag>(
    o.consumers,
    'consumers',
    (c) => (c.kind === 'durable' || c.kind === 'group') && isStr(c.consumer) && isStr(c.topic) && isCount(c.partition) && isCount(c.offset) && isCount(c.end) && isCount(c.lag),
  );
  const topics = list<TopicAssignment>(o.topics, 'topics', (t) => isStr(t.topic) && isCount(t.replicationFactor) && Array.isArray(t.partitions) && t.partitions.every(strings));
  const events = list<ClusterEvent>(o.events, 'events', (e) => isNum(e.timeMs) && isStr(e.kind) && isStr(e.message));
  const counted = (v: unknown): boolean => isNullable(v, isCount);
  const moves =
    o.moves === undefined
      ? undefined
      : list<MoveReport>(
          o.moves,
          'moves',
          (m) =>
            isStr(m.topic) &&
            isCount(m.partition) &&
            isStr(m.from) &&
            isStr(m.to) &&
            isNum(m.startedAtMs) &&
            isStr(m.phase) &&
            counted(m.copiedBytes) &&
            counted(m.totalBytes) &&
            counted(m.bytesPerSecond) &&
            counted(m.timeLeftMs) &&
            isNullable(m.error, isStr),
        );
  const backbone = o.backbone === undefined ? undefined : parseBackboneHealth(o.backbone);
  if (o.backbone !== undefined && backbone === undefined) throw malformed('backbone');
  return {
    broker: o.broker,
    url: o.url,
    timeMs: o.timeMs,
    ready: o.ready,
    metadataLeader: o.metadataLeader as string | null,
    members,
    partitions,
    connections: o.connections,
    subscriptions: o.subscriptions,
    series,
    topicRates,
    stores,
    disk: d as BrokerDisk | null,
    consumers,
    topics,
    events,
    ...(moves === undefined ? {} : { moves }),
    ...(backbone === undefined ? {} : { backbone }),
  };
}
