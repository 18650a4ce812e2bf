import { BrokerProcess } from './broker-process.js';
import { getJson } from './admin.js';
import { freePorts } from './ports.js';

/** A partition as one broker's `/api/broker` reports it. */
export interface PartitionRow {
  topic: string;
  partition: number;
  leader: string | null;
  replicas: string[];
  /** This broker's role in the partition's group (a broker lists only partitions it hosts). */
  role: string;
  /** The first Raft index its log holds (above 1 once it recorded a snapshot). */
  firstIndex?: number;
}

/**
 * N real broker processes peered with each other, each with an admin port;
 * `args(id)` adds flags per broker. Stop them with `BrokerProcess.stopAll()`.
 */
export class ProcessCluster {
  readonly brokers = new Map<string, BrokerProcess>();

  private constructor(
    readonly ids: string[],
    private readonly peerPorts: number[],
    private readonly args: (id: string) => string[],
  ) {}

  static async start(ids: string[], args: (id: string) => string[] = () => [], timeoutMs = 20_000): Promise<ProcessCluster> {
    // A port free when picked can be taken by another test's process before a broker binds it (EADDRINUSE): the
    // cluster then starts again on new ports, three times at most.
    for (let attempt = 1; ; attempt++) {
      const cluster = new ProcessCluster(ids, await freePorts(ids.length), args);
      const started = await Promise.allSettled(ids.map((id) => cluster.startOne(id, timeoutMs)));
      const failure = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failure === undefined) return cluster;
      await Promise.all([...cluster.brokers.values()].map((b) => b.signal('SIGKILL')));
      if (attempt >= 3 || !String(failure.reason).includes('EADDRINUSE')) throw failure.reason;
    }
  }

  /** Starts (or restarts, on the same peer port) broker `id`. */
  async startOne(id: string, timeoutMs = 20_000): Promise<BrokerProcess> {
    const i = this.ids.indexOf(id);
    const peers = this.ids.map((other, j) => `${other}@127.0.0.1:${this.peerPorts[j]}`).filter((_, j) => j !== i);
    const broker = await BrokerProcess.start(
      id,
      ['--peer-port', String(this.peerPorts[i]), '--peers', peers.join(','), '--admin-port', '0', ...this.args(id)],
      timeoutMs,
    );
    this.brokers.set(id, broker);
    return broker;
  }

  /** The peer port of broker `id` (for a broker that joins the cluster). */
  peerPortOf(id: string): number {
    const port = this.peerPorts[this.ids.indexOf(id)];
    if (port === undefined) throw new Error(`no broker ${id}`);
    return port;
  }

  get(id: string): BrokerProcess {
    const broker = this.brokers.get(id);
    if (broker === undefined) throw new Error(`no broker ${id}`);
    return broker;
  }

  /** The partitions broker `id` hosts, as its admin port reports them. */
  async partitions(id: string): Promise<PartitionRow[]> {
    const report = await getJson<{ partitions: PartitionRow[] }>(`${this.get(id).adminUrl}/api/broker`, 3000);
    return report.partitions;
  }

  /** Every partition of `topic` with the leader its replicas among `ids` agree on (null when they do not, or know none). */
  async leaders(topic: string, ids: readonly string[] = this.ids): Promise<Map<string, { leader: string | null; replicas: string[] }>> {
    const seen = new Map<string, { leaders: Set<string | null>; replicas: string[] }>();
    const reports = await Promise.all(ids.map((id) => this.partitions(id)));
    for (const rows of reports) {
      for (const row of rows) {
        if (row.topic !== topic) continue;
        const key = `p/${row.topic}/${row.partition}`;
        const entry = seen.get(key) ?? { leaders: new Set(), replicas: row.replicas };
        entry.leaders.add(row.leader);
        seen.set(key, entry);
      }
    }
    return new Map(
      [...seen].map(([key, { leaders, replicas }]) => [key, { leader: leaders.size === 1 ? ([...leaders][0] as string | null) : null, replicas }]),
    );
  }
}
