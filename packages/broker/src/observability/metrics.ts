import type { StatsFs } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { parsePartitionGroup } from '../engine/group-factory.js';
import type { RaftCounters } from '../core/raft/index.js';
import { RAFT_COUNTER_METRICS } from '../runtime/raft-counters.js';
import { consumerLagHere, partitionViews, type Membership, type OperationsSource } from './cluster-status.js';
import type { BackboneHealth, BackboneRequestOp } from '../engine/backbone/health.js';
import type { BrokerObserver } from './observer.js';

/** Most latencies kept between two samples of the live chart; later ones overwrite a random slot. */
const MAX_LATENCY_SAMPLES = 4096;
/**
 * Most distinct `topic` label values of the traffic counters; traffic of
 * further topics is counted under `topic="_other"`, so a broker with very
 * many topics cannot grow its metrics (and every scrape) without bound.
 */
export const MAX_TOPIC_LABELS = 1000;
const OTHER_TOPICS = '_other';

/**
 * Every Prometheus metric of one broker, in its own registry (several brokers
 * may share a process). Traffic and latency are counted as they happen, via
 * the {@link BrokerObserver} hooks; everything else (Raft groups, gossip,
 * connections, the broker's counters) is read from the broker when scraped.
 */
export class BrokerMetrics implements BrokerObserver {
  readonly registry = new Registry();
  private readonly messagesIn: Counter<'topic'>;
  private readonly bytesIn: Counter<'topic'>;
  private readonly messagesOut: Counter<'topic'>;
  private readonly bytesOut: Counter<'topic'>;
  private readonly latency: Histogram;
  private readonly fsyncs: Histogram;
  private readonly leaderChanges: Counter<'topic' | 'partition'>;
  /** Backbone mode only (absent otherwise, so no embedded broker exports backbone series). */
  private readonly backboneRequests: Histogram<'op'> | undefined;
  /** Totals for the live chart (summing prom-client's labelled counters per sample would allocate). */
  readonly totals = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 };
  /** Per-topic totals for the dashboard's topic rates (labels bounded like the counters'). */
  readonly topicTotals = new Map<string, { messagesIn: number; messagesOut: number }>();
  private latencies: number[] = [];
  private readonly labelledTopics = new Set<string>();

  constructor(
    private readonly source: OperationsSource,
    private readonly membership: Membership,
  ) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ broker: source.id });
    collectDefaultMetrics({ register: this.registry, prefix: 'relaymq_process_' });
    this.messagesIn = new Counter({ name: 'relaymq_messages_in_total', help: 'Messages accepted from publishers, per topic', labelNames: ['topic'], registers });
    this.bytesIn = new Counter({ name: 'relaymq_bytes_in_total', help: 'Payload bytes accepted from publishers, per topic', labelNames: ['topic'], registers });
    this.messagesOut = new Counter({ name: 'relaymq_messages_out_total', help: 'Messages delivered to subscribers, per topic', labelNames: ['topic'], registers });
    this.bytesOut = new Counter({ name: 'relaymq_bytes_out_total', help: 'Payload bytes delivered to subscribers, per topic', labelNames: ['topic'], registers });
    this.latency = new Histogram({
      name: 'relaymq_publish_latency_seconds',
      help: 'Time from a publish frame arriving to its acks leaving',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.fsyncs = new Histogram({
      name: 'relaymq_fsync_duration_seconds',
      help: 'Duration of one Raft log write and fsync',
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.leaderChanges = new Counter({
      name: 'relaymq_leader_changes_total',
      help: 'Leader changes seen by this broker, per partition (metadata group: topic "")',
      labelNames: ['topic', 'partition'],
      registers,
    });
    this.defineCollected(registers);
    if (source.backbone !== undefined) {
      this.backboneRequests = new Histogram({
        name: 'relaymq_backbone_request_seconds',
        help: 'Round trips to the backbone (RabbitMQ): op "confirm" from sending a publish to its confirm, op "probe" a check of one node (connect, authenticate, open the vhost)',
        labelNames: ['op'],
        buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers,
      });
      defineBackboneGauges(registers, source.backbone.bind(source));
    }
  }

  // ---- BrokerObserver ------------------------------------------------------------

  published(topic: string, messages: number, bytes: number): void {
    const labels = { topic: this.topicLabel(topic) };
    this.messagesIn.inc(labels, messages);
    this.bytesIn.inc(labels, bytes);
    this.totals.messagesIn += messages;
    this.totals.bytesIn += bytes;
    this.topicTotal(labels.topic).messagesIn += messages;
  }

  delivered(topic: string, messages: number, bytes: number): void {
    const labels = { topic: this.topicLabel(topic) };
    this.messagesOut.inc(labels, messages);
    this.bytesOut.inc(labels, bytes);
    this.totals.messagesOut += messages;
    this.totals.bytesOut += bytes;
    this.topicTotal(labels.topic).messagesOut += messages;
  }

  private topicTotal(label: string): { messagesIn: number; messagesOut: number } {
    let total = this.topicTotals.get(label);
    if (total === undefined) {
      total = { messagesIn: 0, messagesOut: 0 };
      this.topicTotals.set(label, total);
    }
    return total;
  }

  publishLatency(seconds: number): void {
    this.latency.observe(seconds);
    if (this.latencies.length < MAX_LATENCY_SAMPLES) this.latencies.push(seconds);
    else this.latencies[Math.floor(Math.random() * MAX_LATENCY_SAMPLES)] = seconds;
  }

  fsync(seconds: number): void {
    this.fsyncs.observe(seconds);
  }

  /** Backbone mode: one round trip to RabbitMQ. */
  backboneRequest(op: BackboneRequestOp, seconds: number): void {
    this.backboneRequests?.observe({ op }, seconds);
  }

  leaderChanged(group: string, _leader: string | null, _term: number): void {
    const parsed = parsePartitionGroup(group);
    this.leaderChanges.inc({ topic: parsed?.topic ?? '', partition: parsed === undefined ? '' : String(parsed.partition) });
  }

  private topicLabel(topic: string): string {
    if (this.labelledTopics.has(topic)) return topic;
    if (this.labelledTopics.size >= MAX_TOPIC_LABELS) return OTHER_TOPICS;
    this.labelledTopics.add(topic);
    return topic;
  }

  /** Publish latencies (seconds) since the last call, for the live chart. */
  takeLatencies(): number[] {
    const taken = this.latencies;
    this.latencies = [];
    return taken;
  }

  /** The Prometheus text exposition. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  // ---- collected at scrape --------------------------------------------------------

  private defineCollected(registers: Registry[]): void {
    const source = this.source;
    const membership = this.membership;
    const partitionLabels = ['topic', 'partition'] as const;
    new Gauge({
      name: 'relaymq_partitions',
      help: 'Partitions hosted here',
      registers,
      collect() {
        // One pass over the groups feeds every per-partition gauge below; registered first, it is collected first.
        const views = partitionViews(source.groups());
        for (const g of [commitIndex, lastIndex, isLeader, lag]) g.reset();
        let under = 0;
        let without = 0;
        for (const p of views) {
          const labels = { topic: p.topic, partition: String(p.partition) };
          commitIndex.set(labels, p.commit);
          lastIndex.set(labels, p.lastIndex);
          isLeader.set(labels, p.role === 'leader' ? 1 : 0);
          for (const [replica, behind] of Object.entries(p.lag ?? {})) lag.set({ ...labels, replica }, behind);
          if (p.underReplicated) under++;
          if (p.leaderless) without++;
        }
        underReplicated.set(under);
        leaderless.set(without);
        this.set(views.length);
      },
    });
    const commitIndex = new Gauge({ name: 'relaymq_partition_commit_index', help: 'Raft commit index of each partition hosted here', labelNames: partitionLabels, registers });
    const lastIndex = new Gauge({ name: 'relaymq_partition_last_index', help: 'Last Raft log index of each partition hosted here', labelNames: partitionLabels, registers });
    const isLeader = new Gauge({ name: 'relaymq_partition_leader', help: '1 when this broker leads the partition, else 0', labelNames: partitionLabels, registers });
    const lag = new Gauge({
      name: 'relaymq_replication_lag_entries',
      help: "Entries a replica trails the leader's last index by (reported by the leader)",
      labelNames: [...partitionLabels, 'replica'],
      registers,
    });
    const underReplicated = new Gauge({ name: 'relaymq_under_replicated_partitions', help: 'Partitions led here with a replica out of sync or unreachable', registers });
    const leaderless = new Gauge({ name: 'relaymq_leaderless_partitions', help: 'Partitions hosted here with no known leader', registers });
    new Gauge({
      name: 'relaymq_consumer_lag_messages',
      help: "Messages committed to a partition but not yet consumed: its end minus a consumer's committed position (durable names; reported by the partition's leader)",
      labelNames: ['kind', 'consumer', 'topic', 'partition'],
      registers,
      collect() {
        this.reset();
        for (const row of consumerLagHere(source)) this.set({ kind: row.kind, consumer: row.consumer, topic: row.topic, partition: String(row.partition) }, row.lag);
      },
    });
    new Gauge({
      name: 'relaymq_metadata_leader_known',
      help: '1 when this broker knows the cluster metadata leader (always 1 standalone)',
      registers,
      collect() {
        const meta = source.groups().find((g) => g.group === 'meta');
        this.set(!source.clustered || (meta !== undefined && meta.leader !== null) ? 1 : 0);
      },
    });
    new Gauge({
      name: 'relaymq_connections',
      help: 'Client connections open',
      registers,
      collect() {
        this.set(numericStats(source).connections ?? 0);
      },
    });
    new Gauge({
      name: 'relaymq_subscriptions',
      help: 'Subscriptions open over all connections',
      registers,
      collect() {
        this.set(numericStats(source).subscriptions ?? 0);
      },
    });
    new Gauge({
      name: 'relaymq_broker_stat',
      help: 'Every numeric field of broker.stats(), by name (counters since start, and gauges)',
      labelNames: ['stat'],
      registers,
      collect() {
        this.reset();
        for (const [stat, value] of Object.entries(numericStats(source))) this.set({ stat }, value);
      },
    });
    // The file system of the data directory, as `df` counts it (the disk-full alert's figures), so
    // Prometheus rules and dashboards need no node exporter. No sample without a data directory or
    // while the directory does not exist yet. prom-client collects gauges concurrently, so each
    // reads statfs itself rather than one feeding the other.
    const diskGauge = (name: string, help: string, bytes: (s: StatsFs) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['path'],
        registers,
        async collect() {
          this.reset();
          const dir = source.dataDir;
          const s = dir === undefined ? undefined : await statfs(dir).catch(() => undefined);
          if (dir !== undefined && s !== undefined) this.set({ path: dir }, bytes(s));
        },
      });
    };
    this.defineRaftCounters(registers);
    diskGauge('relaymq_disk_size_bytes', "Size of the data directory's file system", (s) => s.blocks * s.bsize);
    diskGauge('relaymq_disk_available_bytes', "Bytes of the data directory's file system available to the broker (df's Avail)", (s) => s.bavail * s.bsize);
    new Gauge({
      name: 'relaymq_gossip_members',
      help: 'Cluster members by state: gossip (alive, suspect, dead), left (a configured peer that shut down), unseen (never joined)',
      labelNames: ['state'],
      registers,
      collect() {
        const counts: Record<string, number> = { alive: 0, suspect: 0, dead: 0, left: 0, unseen: 0 };
        for (const b of membership.list()) counts[b.state] = (counts[b.state] ?? 0) + 1;
        for (const [state, count] of Object.entries(counts)) this.set({ state }, count);
      },
    });
  }

  /**
   * `relaymq_raft_<counter>_total`: each counter of the Raft core summed over
   * the groups run here since start (runtime/raft-counters.ts). One sum per
   * scrape: the first counter, collected first, computes it for all. 0
   * without Raft (standalone in memory, a gateway).
   */
  private defineRaftCounters(registers: Registry[]): void {
    const source = this.source;
    let sums: RaftCounters | undefined;
    let first = true;
    for (const [key, { name, help }] of Object.entries(RAFT_COUNTER_METRICS) as Array<[keyof RaftCounters, { name: string; help: string }]>) {
      const computes = first;
      first = false;
      new Counter({
        name: `relaymq_raft_${name}_total`,
        help,
        registers,
        collect() {
          if (computes) sums = source.raftCounters?.();
          this.reset();
          if (sums !== undefined) this.inc(sums[key]);
        },
      });
    }
  }
}

/**
 * Gauges of the backbone as this gateway sees it, read at scrape
 * (engine/backbone/health.ts): whether it is connected, each configured
 * node's last check, its stream connections, each tailed stream's leader.
 */
function defineBackboneGauges(registers: Registry[], health: () => BackboneHealth): void {
  new Gauge({
    name: 'relaymq_backbone_connected',
    help: 'Backbone mode: 1 while this gateway has a connection to the backbone (RabbitMQ), 0 while it cannot reach any node',
    registers,
    collect() {
      this.set(health().connected ? 1 : 0);
    },
  });
  new Gauge({
    name: 'relaymq_backbone_up',
    help: "Backbone mode: 1 when this gateway's last check of a configured RabbitMQ node connected and authenticated, 0 when it failed (no series before the first check)",
    labelNames: ['node'],
    registers,
    collect() {
      this.reset();
      for (const n of health().nodes) if (n.reachable !== null) this.set({ node: n.node }, n.reachable ? 1 : 0);
    },
  });
  new Gauge({
    name: 'relaymq_backbone_connections',
    help: 'Backbone mode: stream protocol connections this gateway has open to RabbitMQ',
    registers,
    collect() {
      this.set(health().connections);
    },
  });
  new Gauge({
    name: 'relaymq_backbone_stream_leader',
    help: "Backbone mode: 1 for the RabbitMQ node leading each partition stream this gateway tails, as RabbitMQ's metadata last named it",
    labelNames: ['topic', 'partition', 'node'],
    registers,
    collect() {
      this.reset();
      for (const p of health().partitions) if (p.leader !== null) this.set({ topic: p.topic, partition: String(p.partition), node: p.leader }, 1);
    },
  });
}

function numericStats(source: OperationsSource): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(source.stats())) if (typeof value === 'number' && Number.isFinite(value)) out[key] = value;
  return out;
}
