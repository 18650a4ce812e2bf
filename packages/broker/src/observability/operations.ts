import type { ResolvedBrokerOptions } from '../options.js';
import { DASHBOARD_HTML } from '../dashboard/page.js';
import { AdminServer, json, type AdminResponse, type AdminRoutes } from './admin-server.js';
import { AlertRunner, diskUsedPercent, type AlertNotification, type AlertSnapshot } from './alerts.js';
import { Membership, clusterStatus, isReady, partitionViews, type ClusterStatus, type OperationsSource } from './cluster-status.js';
import { MAX_RECENT_EVENTS, MAX_SERIES_POINTS, Ring, quantile, type ClusterEvent, type SeriesPoint } from './history.js';
import { BrokerMetrics } from './metrics.js';
import type { BrokerObserver } from './observer.js';

/** One `/api/replica` page: at most this many messages and (beyond the first) bytes of data. */
export const REPLICA_PAGE_MAX_MESSAGES = 10_000;
const REPLICA_PAGE_MAX_BYTES = 4 * 1024 * 1024;

/** A query parameter that must be a non-negative integer; `undefined` when it is not. */
function nonNegative(value: string | null): number | undefined {
  return value !== null && /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}

/** Interval of the live charts' samples and of membership change detection. */
export const SAMPLE_INTERVAL_MS = 1000;

/** `/api/cluster`: the status plus recent events. */
export interface ClusterReport extends ClusterStatus {
  events: ClusterEvent[];
}

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
  private sampler: ReturnType<typeof setInterval> | undefined;
  private lastTotals = { messagesIn: 0, messagesOut: 0, timeMs: 0 };
  private memberStates = new Map<string, string>();

  constructor(
    private readonly options: ResolvedBrokerOptions,
    private readonly source: OperationsSource,
  ) {
    this.membership = new Membership(source);
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
    if (adminPort !== undefined) this.admin = await AdminServer.listen(adminHost, adminPort, this.routes());
    this.lastTotals = { messagesIn: 0, messagesOut: 0, timeMs: Date.now() };
    this.sampleMembers(Date.now());
    this.sampler = setInterval(() => this.sample(Date.now()), SAMPLE_INTERVAL_MS);
    this.sampler.unref();
    this.alerts?.start();
    if (this.admin !== undefined) this.options.log('info', 'admin server listening', { url: `http://${adminHost}:${this.admin.port}` });
  }

  async close(): Promise<void> {
    clearInterval(this.sampler);
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

  /** `/api/cluster`. */
  report(): ClusterReport {
    return { ...clusterStatus(this.source, this.membership, Date.now()), events: this.events.toArray().reverse() };
  }

  private routes(): AdminRoutes {
    return {
      '/': () => ({ status: 200, contentType: 'text/html; charset=utf-8', body: DASHBOARD_HTML }),
      '/metrics': async () => ({ status: 200, contentType: this.metrics.registry.contentType, body: await this.metrics.scrape() }),
      '/healthz': () => json({ status: 'ok', broker: this.source.id }),
      '/readyz': () => (isReady(this.source) ? json({ status: 'ready', broker: this.source.id }) : json({ status: 'not ready', broker: this.source.id }, 503)),
      '/api/cluster': () => json(this.report()),
      '/api/series': () => json({ broker: this.source.id, intervalMs: SAMPLE_INTERVAL_MS, points: this.series.toArray() }),
      '/api/replica': (query) => this.replica(query),
    };
  }

  // ---- sampling --------------------------------------------------------------------

  private sample(nowMs: number): void {
    const { messagesIn, messagesOut } = this.metrics.totals;
    const seconds = Math.max(0.001, (nowMs - this.lastTotals.timeMs) / 1000);
    const latencies = this.metrics.takeLatencies();
    const ms = (s: number | null): number | null => (s === null ? null : Math.round(s * 1e6) / 1000);
    this.series.push({
      timeMs: nowMs,
      inPerSec: Math.round((messagesIn - this.lastTotals.messagesIn) / seconds),
      outPerSec: Math.round((messagesOut - this.lastTotals.messagesOut) / seconds),
      p50Ms: ms(quantile(latencies, 0.5)),
      p99Ms: ms(quantile(latencies, 0.99)),
    });
    this.lastTotals = { messagesIn, messagesOut, timeMs: nowMs };
    this.sampleMembers(nowMs);
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
    const dir = this.source.dataDir;
    if (dir !== undefined) {
      // A data directory not created yet has no disk to report; the other conditions still count.
      const usedPercent = await diskUsedPercent(dir).catch(() => undefined);
      if (usedPercent !== undefined) snapshot.disk = { path: dir, usedPercent };
    }
    return snapshot;
  }
}
