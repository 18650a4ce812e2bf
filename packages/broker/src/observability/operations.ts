import type { BackboneRequestOp } from '../engine/backbone/health.js';
import type { ResolvedBrokerOptions } from '../options.js';
import { DASHBOARD_HTML } from '../dashboard/page.js';
import { adminMutations, adminReadRoutes, type AdminActions } from './admin-api.js';
import { AdminServer, json, type AdminResponse, type AdminRoutes } from './admin-server.js';
import { AlertRunner, diskUsedPercent, type AlertNotification, type AlertSnapshot } from './alerts.js';
import { gatewayPartitions } from './backbone-health.js';
import { statfs } from 'node:fs/promises';
import type { BrokerDisk, BrokerReport, ReplicaStore, TopicRate } from './broker-report.js';
import { Membership, consumerLagHere, isReady, partitionViews, type OperationsSource, type PartitionView } from './cluster-status.js';
import { buildClusterView, type ClusterReport, type PeerAnswer } from './cluster-view.js';
import { MAX_RECENT_EVENTS, MAX_SERIES_POINTS, Ring, closedSecond, quantile, type ClusterEvent, type SeriesPoint } from './history.js';
import { countLatencies } from './latency-histogram.js';
import { browse, parseBrowseQuery } from './message-browser.js';
import { BrokerMetrics } from './metrics.js';
import type { BrokerObserver } from './observer.js';
import { PeerReports } from './peer-reports.js';
import { CachedDiskBytes } from './storage-usage.js';

export type { ClusterReport } from './cluster-view.js';

/** One `/api/replica` page: at most this many messages and (beyond the first) bytes of data. */
export const REPLICA_PAGE_MAX_MESSAGES = 10_000;
const REPLICA_PAGE_MAX_BYTES = 4 * 1024 * 1024;

/** A query parameter that must be a non-negative integer; `undefined` when it is not. */
function nonNegative(value: string | null): number | undefined {
  return value !== null && /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}

/**
 * Routes that answer with the applications' message contents (the message
 * browser, a replica's messages): they need the admin token whenever one is
 * configured, even while the cluster's state is open to read.
 */
export const MESSAGE_ROUTES: ReadonlySet<string> = new Set(['/api/messages', '/api/replica']);

/** Interval of the live charts' samples and of membership change detection. */
export const SAMPLE_INTERVAL_MS = 1000;

/** A cluster view is gathered at most this often; requests in between share it (several dashboards, `status` runs). */
export const CLUSTER_VIEW_MAX_AGE_MS = 500;

/**
 * Everything an operator sees of one broker: metrics, the admin HTTP server
 * with health endpoints, the cluster API and the dashboard, the live chart
 * series, recent events and webhook alerts. The broker creates it only when
 * `adminPort` or `alerts` is set, and hands it to its hot paths as their
 * {@link BrokerObserver}.
 */
export class Operations implements BrokerObserver {
  readonly metrics: BrokerMetrics;
  private readonly membership: Membership;
  readonly alerts: AlertRunner | undefined;
  private readonly events = new Ring<ClusterEvent>(MAX_RECENT_EVENTS);
  private readonly series = new Ring<SeriesPoint>(MAX_SERIES_POINTS);
  private admin: AdminServer | undefined;
  private sampler: ReturnType<typeof setTimeout> | undefined;
  private lastTotals = { messagesIn: 0, messagesOut: 0, timeMs: 0 };
  private lastTopicTotals = new Map<string, { messagesIn: number; messagesOut: number }>();
  private topicRates: TopicRate[] = [];
  private memberStates = new Map<string, string>();
  private peerReports: PeerReports | undefined;
  private readonly diskBytes: CachedDiskBytes;
  private lastView: { atMs: number; view: Promise<ClusterReport> } | undefined;

  /** @param adminApi - the topic and cluster actions of the admin API (admin-api.ts); none: those endpoints are absent. */
  constructor(
    private readonly options: ResolvedBrokerOptions,
    private readonly source: OperationsSource,
    private readonly adminApi?: AdminActions,
  ) {
    this.membership = new Membership(source);
    this.diskBytes = new CachedDiskBytes(source.dataDir);
    this.metrics = new BrokerMetrics(source, this.membership);
    if (options.alerts !== undefined) {
      this.alerts = new AlertRunner({
        alerts: options.alerts,
        reporter: options.id,
        snapshot: () => this.alertSnapshot(),
        onNotification: (n) => this.alerted(n),
        log: options.log,
      });
    }
  }

  /** The admin port actually bound, when enabled. */
  get adminPort(): number | undefined {
    return this.admin?.port;
  }

  /** Starts the admin server (when `adminPort` is set), the sampler and the alert timer. */
  async start(): Promise<void> {
    const { adminPort, adminHost } = this.options;
    // Every clustered broker and gateway with peers answers peers' report requests, admin port or not: any broker's console shows the whole cluster.
    const transport = this.source.peerTransport();
    if (transport !== undefined && (this.source.clustered || this.source.backbone !== undefined)) this.peerReports = new PeerReports(transport, () => this.brokerReport());
    if (adminPort !== undefined) this.admin = await this.listenAdmin(adminHost, adminPort);
    this.lastTotals = { messagesIn: 0, messagesOut: 0, timeMs: Date.now() };
    this.sampleMembers(Date.now());
    this.scheduleSample();
    this.alerts?.start();
    // 'admin server listening' is logged by the broker, once every one of its ports is bound.
  }

  async close(): Promise<void> {
    clearTimeout(this.sampler);
    this.peerReports?.close();
    this.alerts?.stop();
    await this.admin?.close();
  }

  // ---- BrokerObserver: metrics, plus leader changes as events -----------------------

  published(topic: string, messages: number, bytes: number): void {
    this.metrics.published(topic, messages, bytes);
  }

  delivered(topic: string, messages: number, bytes: number): void {
    this.metrics.delivered(topic, messages, bytes);
  }

  publishLatency(seconds: number): void {
    this.metrics.publishLatency(seconds);
  }

  fsync(seconds: number): void {
    this.metrics.fsync(seconds);
  }

  /** Backbone mode: a round trip to RabbitMQ (`probe` of a node, `confirm` of a publish), in seconds. */
  backboneRequest(op: BackboneRequestOp, seconds: number): void {
    this.metrics.backboneRequest(op, seconds);
  }

  leaderChanged(group: string, leader: string | null, term: number): void {
    this.metrics.leaderChanged(group, leader, term);
    const what = group === 'meta' ? 'cluster metadata' : `partition ${group.replace(/^p\//, '')}`;
    this.event('leader-changed', leader === null ? `${what}: leader lost (term ${term})` : `${what}: leader ${leader} (term ${term})`);
  }

  // ---- endpoints --------------------------------------------------------------------

  /**
   * `/api/replica?topic&partition&from&max`: committed messages of this
   * broker's own copy of a partition (data base64), never another broker's,
   * so an external checker can compare replicas. 404 when not hosted here.
   */
  private async replica(query: URLSearchParams): Promise<AdminResponse> {
    const topic = query.get('topic');
    const partition = nonNegative(query.get('partition'));
    const from = nonNegative(query.get('from') ?? '0');
    const max = Math.min(nonNegative(query.get('max') ?? String(REPLICA_PAGE_MAX_MESSAGES)) ?? 0, REPLICA_PAGE_MAX_MESSAGES);
    if (topic === null || topic === '' || partition === undefined || from === undefined || max === 0) {
      return json({ error: 'expected ?topic=<name>&partition=<n>[&from=<offset>][&max=<count, 1..10000>]' }, 400);
    }
    const read = await this.source.readReplica(topic, partition, from, max, REPLICA_PAGE_MAX_BYTES);
    if (read === undefined) return json({ error: `broker ${this.source.id} hosts no replica of ${topic}/${partition}` }, 404);
    const messages = read.messages.map((m) => ({
      offset: m.offset,
      timestamp: m.timestamp,
      ...(m.key === undefined ? {} : { key: m.key }),
      ...(m.headers === undefined ? {} : { headers: m.headers }),
      encoding: m.encoding,
      data: Buffer.from(m.data).toString('base64'),
    }));
    return json({ broker: this.source.id, topic, partition, start: read.start, end: read.end, messages });
  }

  /** `/api/broker`, and this broker's answer to a peer's `console.report`: what it knows first-hand. */
  async brokerReport(): Promise<BrokerReport> {
    const nowMs = Date.now();
    const groups = this.source.groups();
    const metadataLeader = groups.find((g) => g.group === 'meta')?.leader ?? null;
    const backbone = this.source.backbone?.();
    // A gateway's topics live in RabbitMQ streams: no broker holds a replica (gatewayPartitions).
    const topics = backbone === undefined ? this.source.topics() : this.source.topics().map((t) => ({ ...t, partitions: t.partitions.map((): string[] => []) }));
    const partitions = partitionViews(groups);
    if (backbone !== undefined) partitions.push(...gatewayPartitions(topics, backbone));
    else if (!this.source.clustered && partitions.length === 0) partitions.push(...standalonePartitions(this.source.id, topics));
    const sizes = await this.diskBytes.get(nowMs);
    const stores: ReplicaStore[] = [];
    for (const p of partitions) {
      const bounds = this.source.hostedBounds(p.topic, p.partition);
      if (bounds !== undefined) stores.push({ topic: p.topic, partition: p.partition, start: bounds.start, end: bounds.end, bytes: sizes.get(`${p.topic}/${p.partition}`) ?? 0 });
    }
    const stats = this.source.stats() as { connections?: number; subscriptions?: number };
    return {
      broker: this.source.id,
      url: this.source.url(),
      timeMs: nowMs,
      ready: isReady(this.source, metadataLeader),
      metadataLeader,
      members: this.membership.list(),
      partitions,
      connections: stats.connections ?? 0,
      subscriptions: stats.subscriptions ?? 0,
      series: this.series.toArray(),
      topicRates: this.topicRates,
      stores,
      disk: await this.disk([...sizes.values()].reduce((n, b) => n + b, 0)),
      consumers: consumerLagHere(this.source),
      topics,
      events: this.events.toArray().reverse(),
      // Only the metadata leader drives the moves and knows their figures; the cluster view takes its list.
      moves: metadataLeader === this.source.id ? (this.source.moves?.() ?? []) : [],
      ...(backbone === undefined ? {} : { backbone }),
    };
  }

  /**
   * `/api/cluster`: every broker's report, gathered over the peer links and
   * combined (cluster-view.ts). Gathered at most every
   * {@link CLUSTER_VIEW_MAX_AGE_MS}; requests in between share the answer.
   */
  report(): Promise<ClusterReport> {
    const nowMs = Date.now();
    if (this.lastView === undefined || nowMs - this.lastView.atMs >= CLUSTER_VIEW_MAX_AGE_MS) {
      const view = this.gather();
      this.lastView = { atMs: nowMs, view };
      view.catch(() => {
        if (this.lastView?.view === view) this.lastView = undefined;
      });
    }
    return this.lastView.view;
  }

  private async gather(): Promise<ClusterReport> {
    const others = new Set<string>(this.source.peerIds);
    for (const b of this.membership.list()) if (b.id !== this.source.id) others.add(b.id);
    const [self, peers] = await Promise.all([
      this.brokerReport(),
      this.peerReports?.gather([...others]) ?? Promise.resolve(new Map<string, PeerAnswer>([...others].map((id) => [id, { error: 'no peer links' }]))),
    ]);
    return buildClusterView({ self, peers, clustered: this.source.clustered, intervalMs: SAMPLE_INTERVAL_MS });
  }

  /** The data directory's file system (null without one, or before it exists). */
  private async disk(dataBytes: number): Promise<BrokerDisk | null> {
    const path = this.source.dataDir;
    if (path === undefined) return null;
    const s = await statfs(path).catch(() => undefined);
    if (s === undefined) return null;
    const sizeBytes = s.blocks * s.bsize;
    const used = (s.blocks - s.bfree) * s.bsize;
    // As df counts it: used over what non-root users can have (the disk alert's figure).
    const usedPercent = used + s.bavail * s.bsize === 0 ? 0 : Math.round((used / (used + s.bavail * s.bsize)) * 1000) / 10;
    return { path, sizeBytes, availableBytes: s.bavail * s.bsize, usedPercent, dataBytes };
  }

  /** `/api/messages?topic&partition[&from][&count]`: the message browser. */
  private async messages(query: URLSearchParams): Promise<AdminResponse> {
    const request = parseBrowseQuery(query);
    if (typeof request === 'string') return json({ error: request }, 400);
    const result = await browse(this.source.browser, request);
    return typeof result === 'string' ? json({ error: result }, 404) : json(result);
  }

  /** The admin server: the read routes, and the admin API's (mutations need the admin token: security/admin-token.ts). */
  private listenAdmin(host: string, port: number): Promise<AdminServer> {
    const api = this.adminApi;
    const routes = api === undefined ? this.routes() : { ...this.routes(), ...adminReadRoutes(api) };
    const auth = { token: this.options.adminToken, protectReads: this.options.adminProtectReads, clientAuth: this.options.auth !== undefined };
    return AdminServer.listen(host, port, routes, { auth, mutations: api === undefined ? {} : adminMutations(api), messageRoutes: MESSAGE_ROUTES });
  }

  private routes(): AdminRoutes {
    return {
      '/': () => ({ status: 200, contentType: 'text/html; charset=utf-8', body: DASHBOARD_HTML }),
      '/metrics': async () => ({ status: 200, contentType: this.metrics.registry.contentType, body: await this.metrics.scrape() }),
      '/healthz': () => json({ status: 'ok', broker: this.source.id }),
      '/readyz': () => (isReady(this.source) ? json({ status: 'ready', broker: this.source.id }) : json({ status: 'not ready', broker: this.source.id }, 503)),
      '/api/cluster': async () => json(await this.report()),
      '/api/broker': async () => json(await this.brokerReport()),
      '/api/messages': (query) => this.messages(query),
      '/api/series': () => json({ broker: this.source.id, intervalMs: SAMPLE_INTERVAL_MS, points: this.series.toArray() }),
      '/api/replica': (query) => this.replica(query),
    };
  }

  // ---- sampling --------------------------------------------------------------------

  /** Samples at every whole second of the wall clock, so all brokers' points of one second line up in the cluster chart. */
  private scheduleSample(): void {
    const delay = SAMPLE_INTERVAL_MS - (Date.now() % SAMPLE_INTERVAL_MS);
    this.sampler = setTimeout(() => {
      const second = closedSecond(Date.now(), this.lastTotals.timeMs, SAMPLE_INTERVAL_MS);
      if (second !== undefined) this.sample(second);
      this.scheduleSample();
    }, delay);
    this.sampler.unref();
  }

  /** Closes the interval ending at the whole second `nowMs`: rates over the time since the last one, so the points add up to the counters. */
  private sample(nowMs: number): void {
    const { messagesIn, messagesOut } = this.metrics.totals;
    const seconds = (nowMs - this.lastTotals.timeMs) / 1000;
    const latencies = this.metrics.takeLatencies().map((s) => s * 1000);
    const ms = (v: number | null): number | null => (v === null ? null : Math.round(v * 1000) / 1000);
    this.series.push({
      timeMs: nowMs,
      inPerSec: Math.round((messagesIn - this.lastTotals.messagesIn) / seconds),
      outPerSec: Math.round((messagesOut - this.lastTotals.messagesOut) / seconds),
      p50Ms: ms(quantile(latencies, 0.5)),
      p99Ms: ms(quantile(latencies, 0.99)),
      latency: countLatencies(latencies),
    });
    const rates: TopicRate[] = [];
    for (const [topic, total] of this.metrics.topicTotals) {
      const before = this.lastTopicTotals.get(topic) ?? { messagesIn: 0, messagesOut: 0 };
      const inPerSec = Math.round((total.messagesIn - before.messagesIn) / seconds);
      const outPerSec = Math.round((total.messagesOut - before.messagesOut) / seconds);
      if (inPerSec > 0 || outPerSec > 0) rates.push({ topic, inPerSec, outPerSec });
    }
    this.topicRates = rates;
    this.lastTopicTotals = new Map([...this.metrics.topicTotals].map(([t, v]) => [t, { ...v }]));
    this.lastTotals = { messagesIn, messagesOut, timeMs: nowMs };
    this.sampleMembers(Date.now());
  }

  /** Records members joining, failing and recovering as events. */
  private sampleMembers(nowMs: number): void {
    const states = new Map(this.membership.list().map((b) => [b.id, b.state as string]));
    for (const [id, state] of states) {
      const before = this.memberStates.get(id);
      if (before === state) continue;
      if (before === undefined && (state === 'alive' || state === 'unseen')) continue; // the initial view is not news
      const message = state === 'alive' && before === 'unseen' ? `broker ${id} joined` : `broker ${id} is ${state} (was ${before ?? 'unknown'})`;
      this.event('member-state', message, nowMs);
    }
    this.memberStates = states;
  }

  private alerted(notification: AlertNotification): void {
    this.event('alert', `${notification.status}: ${notification.message}`, notification.timeMs);
  }

  private event(kind: ClusterEvent['kind'], message: string, timeMs = Date.now()): void {
    this.events.push({ timeMs, kind, message });
  }

  private async alertSnapshot(): Promise<AlertSnapshot> {
    const snapshot: AlertSnapshot = {
      nowMs: Date.now(),
      brokers: this.membership.list(),
      partitions: partitionViews(this.source.groups()).map((p) => ({ group: `p/${p.topic}/${p.partition}`, leaderless: p.leaderless, underReplicated: p.underReplicated })),
    };
    const backbone = this.source.backbone?.();
    if (backbone !== undefined) snapshot.backbone = { gateway: this.source.id, connected: backbone.connected, errors: backbone.nodes.flatMap((n) => (n.lastError === null ? [] : [`${n.node}: ${n.lastError}`])) };
    const dir = this.source.dataDir;
    if (dir !== undefined) {
      // A data directory not created yet has no disk to report; the other conditions still count.
      const usedPercent = await diskUsedPercent(dir).catch(() => undefined);
      if (usedPercent !== undefined) snapshot.disk = { path: dir, usedPercent };
    }
    return snapshot;
  }
}

/** A standalone in-memory broker has no Raft groups: it leads every partition it has, alone. */
function standalonePartitions(self: string, topics: ReturnType<OperationsSource['topics']>): PartitionView[] {
  return topics.flatMap((t) =>
    t.partitions.map((_, partition): PartitionView => ({
      topic: t.topic,
      partition,
      leader: self,
      replicas: [self],
      role: 'leader',
      term: 0,
      commit: 0,
      lastIndex: 0,
      lag: { [self]: 0 },
      outOfSync: [],
      leaderless: false,
      underReplicated: false,
    })),
  );
}
