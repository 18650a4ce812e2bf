import { GATEWAY_ROLE, backboneProblems, streamLeaders, type GatewayBackbone } from './backbone-health.js';
import type { BrokerDisk, BrokerReport, ReplicaStore } from './broker-report.js';
import { OUT_OF_SYNC_LAG_ENTRIES, type BrokerView, type ClusterVerdict, type MemberView, type MoveReport, type PartitionView } from './cluster-status.js';
import { compareLag, type ConsumerLag } from './consumer-lag.js';
import { MAX_RECENT_EVENTS, MAX_SERIES_POINTS, type ClusterEvent, type SeriesPoint } from './history.js';
import { addCounts, countsQuantile } from './latency-histogram.js';

/**
 * The cluster as one broker's admin port shows it, built from every broker's
 * own report (broker-report.ts) gathered over the peer links: partition state
 * and replica lag come from each partition's leader, rates and disk usage
 * from each broker, and a broker that did not answer is marked so, never
 * counted as fine. Pure: the same reports give the same view on every broker.
 * In backbone mode the brokers are gateways (role `gateway`): they lead no
 * partition; each partition is a RabbitMQ stream whose leader is the RabbitMQ
 * node the gateways last learned (see {@link ClusterPartition.stream}).
 */

/** A broker's state in the cluster view: gossip's states, plus `unreachable` (gossip thinks it alive, but it did not answer). */
export type ClusterMemberState = MemberView['state'] | 'unreachable';

/** One broker in the cluster view. */
export interface ClusterBroker extends Omit<BrokerView, 'state'> {
  state: ClusterMemberState;
  /** Whether it answered this view's request for its report. */
  reachable: boolean;
  /** Why it did not answer (null when it did). */
  error: string | null;
  connections: number | null;
  subscriptions: number | null;
  /** Messages per second received from publishers and delivered to subscribers in the last complete second. */
  inPerSec: number | null;
  outPerSec: number | null;
  disk: BrokerDisk | null;
}

/**
 * A replica's state as its partition's leader and the cluster see it:
 * `lagging` is more than 1,000 entries (`OUT_OF_SYNC_LAG_ENTRIES`) behind, `disconnected`
 * is not linked to the leader, `unknown` when no leader reported.
 */
export type ReplicaState = 'leader' | 'in-sync' | 'lagging' | 'disconnected' | 'unknown' | Exclude<ClusterMemberState, 'alive'>;

/** `ok`; `under-replicated` (a replica out of sync or down); `leaderless`; `unknown` (the leader its replicas name did not answer). */
export type PartitionStatus = 'ok' | 'under-replicated' | 'leaderless' | 'unknown';

/** One partition of the cluster. `lag`, `outOfSync`, `commit` and `term` are the leader's; `role` is the answering broker's. */
export interface ClusterPartition extends PartitionView {
  /**
   * Backbone mode: the RabbitMQ stream that holds the partition (null while
   * no answering gateway tails it). `leader` is then the stream's leader node
   * (`host:port`) as the gateways last learned it from RabbitMQ, not a broker
   * (null while not known: status `unknown`, which is no problem of its own);
   * `replicas` is empty (RabbitMQ replicates the stream), `start`/`end` are
   * the most advanced gateway's, and sizes are not known (null, 0). Absent
   * for partitions the brokers hold.
   */
  stream?: string | null;
  status: PartitionStatus;
  replicaStates: Record<string, ReplicaState>;
  /** Committed bounds (offsets) as the leader (else the most advanced replica that answered) stores them; null when none answered. */
  start: number | null;
  end: number | null;
  /** Bytes of one copy on disk (the leader's, else the largest that answered) and of every copy that answered. */
  sizeBytes: number | null;
  replicaBytes: number;
}

/** A topic of the cluster. */
export interface ClusterTopic {
  topic: string;
  partitions: number;
  replicationFactor: number;
  /** Messages stored (sum of `end - start` over partitions whose bounds are known). */
  messages: number;
  sizeBytes: number;
  replicaBytes: number;
  /** Messages per second in and out over every broker that answered, last complete second. */
  inPerSec: number;
  outPerSec: number;
  status: PartitionStatus;
}

/** A consumer's lag as its partition's leader reported it. */
export interface ClusterConsumerLag extends ConsumerLag {
  /** The broker that reported it: the partition's leader; in backbone mode, the gateway whose `end` the partition shows. */
  leader: string;
}

/** A recent event, with the broker that recorded it. */
export interface ClusterEventView extends ClusterEvent {
  broker: string;
}

/** Chart series of the cluster view. */
export interface ClusterSeries {
  intervalMs: number;
  /** Sums over the brokers that answered, per second; only seconds every one of them has sampled. */
  cluster: SeriesPoint[];
  /** Each answering broker's own points. */
  brokers: Record<string, SeriesPoint[]>;
}

/** `/api/cluster`: the whole cluster, as gathered by `broker`. */
export interface ClusterReport extends ClusterVerdict {
  /** Brokers whose report this view is built from, and those that did not answer. */
  reached: string[];
  unreachable: string[];
  brokers: ClusterBroker[];
  partitions: ClusterPartition[];
  topics: ClusterTopic[];
  consumers: ClusterConsumerLag[];
  series: ClusterSeries;
  events: ClusterEventView[];
  /** Replica moves in progress, as the metadata leader reported them (empty when it did not answer, or runs an older version). */
  moves: MoveReport[];
  /** The backbone as each answering gateway sees it (backbone mode; empty for brokers that keep their own log). */
  backbone: GatewayBackbone[];
}

/** A peer's answer: its report, or why there is none. */
export type PeerAnswer = { report: BrokerReport } | { error: string };

/** What {@link buildClusterView} combines. */
export interface ClusterViewInput {
  self: BrokerReport;
  /** Every other broker asked, by id. */
  peers: ReadonlyMap<string, PeerAnswer>;
  clustered: boolean;
  intervalMs: number;
}

/** Worst first: the state a broker that did not answer gets when reports disagree. */
const STATE_RANK: readonly MemberView['state'][] = ['left', 'dead', 'suspect', 'unseen', 'alive'];

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const key = (topic: string, partition: number): string => `${topic}/${partition}`;

export function buildClusterView(input: ClusterViewInput): ClusterReport {
  const { self, peers, clustered } = input;
  const reports = new Map<string, BrokerReport>([[self.broker, self]]);
  const errors = new Map<string, string>();
  for (const [id, answer] of peers) {
    if ('report' in answer) reports.set(id, answer.report);
    else errors.set(id, answer.error);
  }
  const metadataLeader = self.metadataLeader ?? mostCommon([...reports.values()].map((r) => r.metadataLeader));

  // ---- brokers
  const ids = new Set<string>([...reports.keys(), ...errors.keys()]);
  for (const r of reports.values()) for (const m of r.members) ids.add(m.id);
  const { partitions, reporters } = clusterPartitions(reports, self.broker, (id) => brokerState(id));
  const led = new Map<string, number>();
  for (const p of partitions) if (p.leader !== null && p.status !== 'unknown' && p.stream === undefined) led.set(p.leader, (led.get(p.leader) ?? 0) + 1);
  // Backbone mode: a gateway that did not answer is a gateway too (gateways peer with gateways only).
  const isGateway = (id: string): boolean => (reports.get(id) ?? self).backbone !== undefined;
  function brokerState(id: string): ClusterMemberState {
    if (reports.has(id)) return 'alive';
    const seen = [...reports.values()].flatMap((r) => r.members.filter((m) => m.id === id).map((m) => m.state));
    const worst = STATE_RANK.find((s) => seen.includes(s));
    return worst === undefined ? 'unseen' : worst === 'alive' ? 'unreachable' : worst;
  }
  const brokers = [...ids].sort(cmp).map((id): ClusterBroker => {
    const report = reports.get(id);
    const member = [...reports.values()].map((r) => r.members.find((m) => m.id === id)).find((m) => m !== undefined && m.url !== '');
    const last = report?.series[report.series.length - 1];
    const view: ClusterBroker = {
      id,
      url: report?.url ?? member?.url ?? '',
      state: brokerState(id),
      role: isGateway(id) ? GATEWAY_ROLE : !clustered ? 'standalone' : id === metadataLeader ? 'leader' : 'follower',
      partitionsLed: led.get(id) ?? 0,
      self: id === self.broker,
      reachable: report !== undefined,
      error: report === undefined ? (errors.get(id) ?? 'not asked (not a configured peer)') : null,
      connections: report?.connections ?? null,
      subscriptions: report?.subscriptions ?? null,
      inPerSec: last?.inPerSec ?? null,
      outPerSec: last?.outPerSec ?? null,
      disk: report?.disk ?? null,
    };
    if (member?.load !== undefined && member.load !== null) view.load = member.load;
    return view;
  });
  const stateOf = new Map(brokers.map((b) => [b.id, b.state]));

  // ---- topics, consumers, series, events
  const series = clusterSeries(reports, input.intervalMs);
  const topics = clusterTopics(reports, partitions);
  const consumers: ClusterConsumerLag[] = [];
  for (const r of reports.values()) {
    for (const c of r.consumers) if (reporters.get(key(c.topic, c.partition)) === r.broker) consumers.push({ ...c, leader: r.broker });
  }
  consumers.sort(compareLag);

  // ---- verdict
  const problems: string[] = [];
  if (!self.ready) problems.push(`broker ${self.broker} is not ready (${self.metadataLeader === null && clustered ? 'no metadata leader known' : 'not accepting clients'})`);
  for (const b of brokers) {
    if (b.state === 'left') problems.push(`broker ${b.id} left the cluster`);
    else if (b.state === 'unseen') problems.push(`broker ${b.id} has not joined since ${self.broker} started`);
    else if (b.state === 'unreachable') problems.push(`broker ${b.id} did not answer ${self.broker} (${b.error ?? 'no answer'})`);
    else if (b.state !== 'alive') problems.push(`broker ${b.id} is ${b.state}`);
  }
  for (const p of partitions) {
    const name = `${p.topic}/${p.partition}`;
    // A stream leader not known yet is no problem of its own: the gateways' checks of RabbitMQ judge the backbone (backboneProblems).
    if (p.stream !== undefined) continue;
    if (p.status === 'leaderless') problems.push(`partition ${name} has no leader`);
    else if (p.status === 'unknown') problems.push(`partition ${name}: its leader ${p.leader ?? '?'} did not answer (${stateOf.get(p.leader ?? '') ?? 'unknown'})`);
    else if (p.status === 'under-replicated') problems.push(`partition ${name} is under-replicated (out of sync: ${(p.outOfSync ?? []).join(', ')})`);
  }
  const backbone = [...reports.values()].flatMap((r) => (r.backbone === undefined ? [] : [{ gateway: r.broker, ...r.backbone }])).sort((a, b) => cmp(a.gateway, b.gateway));
  problems.push(...backboneProblems(backbone));
  return {
    broker: self.broker,
    timeMs: self.timeMs,
    ready: self.ready,
    healthy: problems.length === 0,
    problems,
    metadataLeader,
    reached: [...reports.keys()].sort(cmp),
    unreachable: [...errors.keys()].sort(cmp),
    brokers,
    partitions,
    topics,
    consumers,
    series,
    events: clusterEvents(reports),
    moves: (metadataLeader === null ? undefined : reports.get(metadataLeader)?.moves) ?? [],
    backbone,
  };
}

/**
 * Every partition of the metadata (and any hosted one it does not list yet),
 * judged from its leader's report; with `reporters`, the broker whose
 * consumer lag counts for each (its leader; in backbone mode the gateway whose bounds are shown).
 */
function clusterPartitions(
  reports: ReadonlyMap<string, BrokerReport>,
  selfId: string,
  stateOf: (id: string) => ClusterMemberState,
): { partitions: ClusterPartition[]; reporters: Map<string, string> } {
  const assigned = new Map<string, { topic: string; partition: number; replicas: string[] }>();
  for (const r of reports.values()) {
    for (const t of r.topics) t.partitions.forEach((replicas, partition) => assigned.has(key(t.topic, partition)) || assigned.set(key(t.topic, partition), { topic: t.topic, partition, replicas }));
    for (const p of r.partitions) if (!assigned.has(key(p.topic, p.partition))) assigned.set(key(p.topic, p.partition), { topic: p.topic, partition: p.partition, replicas: p.replicas });
  }
  const hosted = new Map<string, Array<{ broker: string; view: PartitionView }>>();
  const stores = new Map<string, Array<{ broker: string; store: ReplicaStore }>>();
  for (const r of reports.values()) {
    for (const view of r.partitions) hosted.set(key(view.topic, view.partition), [...(hosted.get(key(view.topic, view.partition)) ?? []), { broker: r.broker, view }]);
    for (const store of r.stores) stores.set(key(store.topic, store.partition), [...(stores.get(key(store.topic, store.partition)) ?? []), { broker: r.broker, store }]);
  }
  const streams = new Map(
    streamLeaders([...reports.values()].flatMap((r) => (r.backbone === undefined ? [] : [{ gateway: r.broker, ...r.backbone }]))).map((s) => [key(s.topic, s.partition), s]),
  );
  const out: ClusterPartition[] = [];
  const reporters = new Map<string, string>();
  for (const [k, a] of assigned) {
    const views = hosted.get(k) ?? [];
    if (views.some((v) => v.view.role === GATEWAY_ROLE)) {
      out.push(backbonePartition(a, views, stores.get(k) ?? [], streams.get(k), selfId, reporters));
      continue;
    }
    const leading = views.filter((v) => v.view.role === 'leader').sort((x, y) => y.view.term - x.view.term)[0];
    const selfView = views.find((v) => v.broker === selfId)?.view;
    const replicaStates: Record<string, ReplicaState> = {};
    let status: PartitionStatus;
    let leader: string | null;
    let base: PartitionView | undefined;
    const outOfSync: string[] = [];
    if (leading !== undefined) {
      base = leading.view;
      leader = leading.broker;
      for (const id of a.replicas) {
        const s = stateOf(id);
        let state: ReplicaState;
        if (id === leader) state = 'leader';
        else if (s !== 'alive') state = s;
        else if (base.outOfSync?.includes(id) === true) state = (base.lag?.[id] ?? 0) > OUT_OF_SYNC_LAG_ENTRIES ? 'lagging' : 'disconnected';
        else state = 'in-sync';
        replicaStates[id] = state;
        if (state !== 'leader' && state !== 'in-sync') outOfSync.push(id);
      }
      status = outOfSync.length > 0 ? 'under-replicated' : 'ok';
    } else {
      // No answering broker leads it: either none knows a leader, or the one they name did not answer.
      const named = views.filter((v) => v.view.leader !== null).sort((x, y) => y.view.term - x.view.term)[0];
      base = named?.view ?? views[0]?.view;
      leader = named?.view.leader ?? null;
      status = leader === null ? 'leaderless' : 'unknown';
      for (const id of a.replicas) {
        const s = stateOf(id);
        replicaStates[id] = s === 'alive' ? 'unknown' : s;
        if (s !== 'alive') outOfSync.push(id);
      }
    }
    const copies = stores.get(k) ?? [];
    const best = copies.find((c) => c.broker === leader) ?? [...copies].sort((x, y) => y.store.end - x.store.end)[0];
    if (leading !== undefined) reporters.set(k, leading.broker);
    out.push({
      topic: a.topic,
      partition: a.partition,
      leader,
      replicas: a.replicas,
      role: selfView?.role ?? 'none',
      term: base?.term ?? 0,
      commit: base?.commit ?? 0,
      lastIndex: base?.lastIndex ?? 0,
      lag: leading === undefined ? null : (leading.view.lag ?? null),
      outOfSync,
      leaderless: status === 'leaderless',
      underReplicated: status === 'under-replicated' || (status === 'unknown' && outOfSync.length > 0),
      status,
      replicaStates,
      start: best?.store.start ?? null,
      end: best?.store.end ?? null,
      sizeBytes: copies.length === 0 ? null : (copies.find((c) => c.broker === leader)?.store.bytes ?? Math.max(...copies.map((c) => c.store.bytes))),
      replicaBytes: copies.reduce((n, c) => n + c.store.bytes, 0),
    });
  }
  return { partitions: out.sort((x, y) => (x.topic === y.topic ? x.partition - y.partition : cmp(x.topic, y.topic))), reporters };
}

/**
 * A partition the gateways serve from a RabbitMQ stream: led by the stream's
 * leader node as the gateways know it (`ok` when one does, `unknown` until
 * then), no broker replica; bounds (and consumer lag) from the gateway whose
 * tail is furthest, the answering one first on a tie.
 */
function backbonePartition(
  a: { topic: string; partition: number },
  views: ReadonlyArray<{ broker: string; view: PartitionView }>,
  copies: ReadonlyArray<{ broker: string; store: ReplicaStore }>,
  stream: { stream: string; leader: string | null } | undefined,
  selfId: string,
  reporters: Map<string, string>,
): ClusterPartition {
  const best = [...copies].sort((x, y) => y.store.end - x.store.end || Number(y.broker === selfId) - Number(x.broker === selfId) || cmp(x.broker, y.broker))[0];
  if (best !== undefined) reporters.set(key(a.topic, a.partition), best.broker);
  const leader = stream?.leader ?? null;
  return {
    topic: a.topic,
    partition: a.partition,
    stream: stream?.stream ?? null,
    leader,
    replicas: [],
    role: views.find((v) => v.broker === selfId)?.view.role ?? 'none',
    term: 0,
    commit: 0,
    lastIndex: 0,
    lag: null,
    outOfSync: [],
    leaderless: false,
    underReplicated: false,
    status: leader === null ? 'unknown' : 'ok',
    replicaStates: {},
    start: best?.store.start ?? null,
    end: best?.store.end ?? null,
    sizeBytes: null,
    replicaBytes: 0,
  };
}

const STATUS_RANK: readonly PartitionStatus[] = ['leaderless', 'unknown', 'under-replicated', 'ok'];

function clusterTopics(reports: ReadonlyMap<string, BrokerReport>, partitions: readonly ClusterPartition[]): ClusterTopic[] {
  const topics = new Map<string, ClusterTopic>();
  const rf = new Map<string, number>();
  for (const r of reports.values()) for (const t of r.topics) if (!rf.has(t.topic)) rf.set(t.topic, t.replicationFactor);
  for (const p of partitions) {
    const t = topics.get(p.topic) ?? { topic: p.topic, partitions: 0, replicationFactor: rf.get(p.topic) ?? p.replicas.length, messages: 0, sizeBytes: 0, replicaBytes: 0, inPerSec: 0, outPerSec: 0, status: 'ok' };
    t.partitions++;
    if (p.start !== null && p.end !== null) t.messages += p.end - p.start;
    t.sizeBytes += p.sizeBytes ?? 0;
    t.replicaBytes += p.replicaBytes;
    if (STATUS_RANK.indexOf(p.status) < STATUS_RANK.indexOf(t.status)) t.status = p.status;
    topics.set(p.topic, t);
  }
  for (const r of reports.values()) {
    for (const rate of r.topicRates) {
      const t = topics.get(rate.topic);
      if (t === undefined) continue;
      t.inPerSec += rate.inPerSec;
      t.outPerSec += rate.outPerSec;
    }
  }
  return [...topics.values()].sort((a, b) => cmp(a.topic, b.topic));
}

/**
 * Per second, the sum of every answering broker's rates and the percentiles
 * of their latencies added together. Seconds after the oldest "latest point"
 * among the brokers are left out: some broker has not sampled them yet, and
 * a sum without it would dip.
 */
export function clusterSeries(reports: ReadonlyMap<string, BrokerReport>, intervalMs: number): ClusterSeries {
  const brokers: Record<string, SeriesPoint[]> = {};
  let cutoff = Number.POSITIVE_INFINITY;
  const bySecond = new Map<number, SeriesPoint[]>();
  for (const r of reports.values()) {
    brokers[r.broker] = r.series;
    const last = r.series[r.series.length - 1];
    if (last === undefined) continue;
    cutoff = Math.min(cutoff, last.timeMs);
    for (const [timeMs, p] of bySecondCovered(r.series, intervalMs)) bySecond.set(timeMs, [...(bySecond.get(timeMs) ?? []), p]);
  }
  const cluster = [...bySecond]
    .filter(([t]) => t <= cutoff)
    .sort((a, b) => a[0] - b[0])
    .map(([timeMs, points]): SeriesPoint => {
      const latency = addCounts(points.map((p) => p.latency));
      return {
        timeMs,
        inPerSec: points.reduce((n, p) => n + p.inPerSec, 0),
        outPerSec: points.reduce((n, p) => n + p.outPerSec, 0),
        p50Ms: countsQuantile(latency, 0.5),
        p99Ms: countsQuantile(latency, 0.99),
        latency,
      };
    });
  return { intervalMs, cluster, brokers };
}

/**
 * A broker's points by each second they cover. A sampler that fired late
 * closes an interval of several seconds with one point at its last second, its
 * rates averaged over the interval; counted at that second alone, the cluster
 * sum would lose the other seconds' messages. So the point's rates are counted
 * at every second of its interval (their sum over the seconds is the
 * interval's messages), its latencies once, at its own second.
 */
function bySecondCovered(series: readonly SeriesPoint[], intervalMs: number): Array<[number, SeriesPoint]> {
  const covered: Array<[number, SeriesPoint]> = [];
  let previousMs: number | undefined;
  for (const p of series) {
    // Bounded by the chart's length: a gap longer than it (a stopped broker's) is not filled.
    const firstMs = previousMs === undefined ? p.timeMs : Math.max(previousMs + intervalMs, p.timeMs - (MAX_SERIES_POINTS - 1) * intervalMs);
    for (let t = firstMs; t < p.timeMs; t += intervalMs) covered.push([t, { ...p, timeMs: t, latency: {} }]);
    covered.push([p.timeMs, p]);
    previousMs = p.timeMs;
  }
  return covered;
}

/** Events of every broker, newest first; the same message recorded by several brokers within 10 s is shown once. */
function clusterEvents(reports: ReadonlyMap<string, BrokerReport>): ClusterEventView[] {
  const all = [...reports.values()].flatMap((r) => r.events.map((e) => ({ ...e, broker: r.broker }))).sort((a, b) => b.timeMs - a.timeMs);
  const seen = new Map<string, number>();
  const out: ClusterEventView[] = [];
  for (const e of all) {
    const at = seen.get(e.message);
    if (at !== undefined && at - e.timeMs <= 10_000) continue;
    seen.set(e.message, e.timeMs);
    out.push(e);
    if (out.length >= MAX_RECENT_EVENTS) break;
  }
  return out;
}

function mostCommon(values: ReadonlyArray<string | null>): string | null {
  const counts = new Map<string, number>();
  for (const v of values) if (v !== null) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || cmp(a[0], b[0]))[0]?.[0] ?? null;
}
