/**
 * `npm run bench -- --engine rabbitmq` (issue 16): the cluster scenarios on
 * relaymq gateways over a 3-node RabbitMQ streams cluster (started on
 * loopback by the test harness, test/support/rabbitmq.ts), and their ratio
 * to the embedded engine's figures from the same run.
 *
 * Two gateway processes (`--backbone`, gossiping) serve the SDK; pipelined,
 * awaited and publish→deliver figures use the scenarios of scenarios.ts.
 * Failover has two parts: SIGKILL of the gateway the publisher is connected
 * to (the SDK moves to the other gateway), and SIGKILL of the RabbitMQ node
 * leading the partition's stream (RabbitMQ elects another leader; the
 * gateway reconnects). Each stall is from the kill to the ack of the first
 * publish started after it.
 */
import type { RelayClient, connect as Connect } from '@relaymq/sdk';
import { rabbitAvailable, startRabbitCluster, type RabbitCluster } from '../test/support/rabbitmq.js';
import type { Cluster3Result, ClusterSizes } from './cluster.js';
import { describe, freePorts, median, nowSeconds, payload, progress, sleep, spawnBroker, waitFor, type BrokerProcess, type LatencySummary } from './lib.js';
import { OUTBOX, pipelined, publishToDeliver, roundTo, sequentialPublish, type PublishSettings, type Throughput } from './scenarios.js';

/** The scenarios both engines run under `--engine rabbitmq`. */
export const RABBIT_SCENARIOS = ['pipelined128B', 'pipelined1KiB', 'sequentialPublish', 'publishToDeliver', 'failoverStall'] as const;
export type RabbitScenario = (typeof RABBIT_SCENARIOS)[number];

/** Stalls of one kind of kill. */
export interface RabbitStalls {
  /** What was killed each time (gateway id or RabbitMQ node name). */
  killed: string[];
  /** Per kill: from SIGKILL to the ack of the first publish started after it. */
  stallsMs: number[];
  medianMs: number;
  maxMs: number;
}

export interface RabbitFailover {
  gatewayKill?: RabbitStalls;
  rabbitNodeKill?: RabbitStalls;
  published: number;
  acknowledged: number;
  /** Publishes that rejected (outcome unknown; none expected). */
  failed: number;
  /** Read back by a subscriber from earliest: acknowledged messages missing, and messages delivered more than once. */
  lost: number;
  duplicated: number;
  error?: string;
}

export interface RabbitBenchResult {
  setup: string;
  startupMs: number;
  pipelined128B?: Throughput;
  pipelined1KiB?: Throughput;
  sequentialPublish?: LatencySummary;
  publishToDeliver?: LatencySummary;
  failoverStall?: RabbitFailover;
}

/** One figure of both engines from the same run: ratio = rabbitmq / embedded. */
export interface EngineFigure {
  embedded: number;
  rabbitmq: number;
  unit: 'msg/s' | 'µs' | 'ms';
  ratio: number;
  better: 'higher' | 'lower';
}

type Figure = { name: string; unit: EngineFigure['unit']; better: EngineFigure['better']; embedded: (r: Cluster3Result) => number | undefined; rabbitmq: (r: RabbitBenchResult) => number | undefined };

const FIGURES: readonly Figure[] = [
  { name: 'pipelined128B', unit: 'msg/s', better: 'higher', embedded: (r) => r.pipelined128B?.msgPerSec, rabbitmq: (r) => r.pipelined128B?.msgPerSec },
  { name: 'pipelined1KiB', unit: 'msg/s', better: 'higher', embedded: (r) => r.pipelined1KiB?.msgPerSec, rabbitmq: (r) => r.pipelined1KiB?.msgPerSec },
  { name: 'awaitedP50', unit: 'µs', better: 'lower', embedded: (r) => r.sequentialPublish?.p50Us, rabbitmq: (r) => r.sequentialPublish?.p50Us },
  { name: 'awaitedP99', unit: 'µs', better: 'lower', embedded: (r) => r.sequentialPublish?.p99Us, rabbitmq: (r) => r.sequentialPublish?.p99Us },
  { name: 'endToEndP50', unit: 'µs', better: 'lower', embedded: (r) => r.publishToDeliver?.p50Us, rabbitmq: (r) => r.publishToDeliver?.p50Us },
  { name: 'endToEndP99', unit: 'µs', better: 'lower', embedded: (r) => r.publishToDeliver?.p99Us, rabbitmq: (r) => r.publishToDeliver?.p99Us },
  // The embedded engine's failover kills the partition's leader broker; the backbone's, the gateway and then the stream leader's node.
  { name: 'failoverStallMedian (gateway kill)', unit: 'ms', better: 'lower', embedded: (r) => r.failoverStall?.medianMs, rabbitmq: (r) => r.failoverStall?.gatewayKill?.medianMs },
  { name: 'failoverStallMedian (RabbitMQ node kill)', unit: 'ms', better: 'lower', embedded: (r) => r.failoverStall?.medianMs, rabbitmq: (r) => r.failoverStall?.rabbitNodeKill?.medianMs },
];

/** Each figure both engines measured, with its ratio (rabbitmq / embedded). */
export function compareEngines(embedded: Cluster3Result, rabbitmq: RabbitBenchResult): Record<string, EngineFigure> {
  const out: Record<string, EngineFigure> = {};
  for (const figure of FIGURES) {
    const e = figure.embedded(embedded);
    const r = figure.rabbitmq(rabbitmq);
    if (e === undefined || r === undefined || !Number.isFinite(e) || !Number.isFinite(r) || e <= 0) continue;
    out[figure.name] = { embedded: e, rabbitmq: r, unit: figure.unit, ratio: Math.round((100 * r) / e) / 100, better: figure.better };
  }
  return out;
}

/** Two gateways over `rabbit`, gossiping; `ports` keeps each one's client port across a respawn. */
class Gateways {
  readonly processes: BrokerProcess[] = [];
  private constructor(
    private readonly args: string[][],
    private readonly ports: number[],
  ) {}

  static async start(rabbit: RabbitCluster): Promise<Gateways> {
    const hosts = rabbit.nodes.map((node) => `127.0.0.1:${node.streamPort}`).join(',');
    const url = `rabbitmq-stream://${rabbit.username}:${rabbit.password}@${hosts}`;
    const [p1, p2, c1, c2] = (await freePorts(4)) as [number, number, number, number];
    const args = [
      ['--backbone', url, '--peer-port', String(p1), '--peers', `g2@127.0.0.1:${p2}`],
      ['--backbone', url, '--peer-port', String(p2), '--peers', `g1@127.0.0.1:${p1}`],
    ];
    const gateways = new Gateways(args, [c1, c2]);
    for (let i = 0; i < 2; i++) gateways.processes[i] = await gateways.spawn(i);
    return gateways;
  }

  /** Starts gateway `i` (again, after a kill): same id, arguments and port. */
  spawn(i: number): Promise<BrokerProcess> {
    return spawnBroker(`g${i + 1}`, this.args[i] as string[], this.ports[i]);
  }

  get urls(): string[] {
    return this.processes.map((g) => g.url);
  }

  async close(): Promise<void> {
    await Promise.all(this.processes.map((g) => g.stop()));
  }
}

/** The RabbitMQ node (index) leading the stream of `topic`'s partition 0, from `rabbitmqctl list_queues`. */
export async function streamLeader(rabbit: RabbitCluster, topic: string): Promise<number> {
  const alive = rabbit.nodes.findIndex((node) => node.running);
  const out = await rabbit.ctl(alive, ['list_queues', '--quiet', '--no-table-headers', 'name', 'leader']);
  const line = out.split('\n').find((l) => l.includes(`:${topic}:`));
  const leader = line?.trim().split(/\s+/).at(-1);
  const index = rabbit.nodes.findIndex((node) => node.name === leader);
  if (index < 0) throw new Error(`no leader found for ${topic}'s stream in:\n${out}`);
  return index;
}

/**
 * Publishing by `window` loops (each awaits its publish) until stopped;
 * {@link stallAfter} measures, for a kill at time t, the ack of the first
 * publish started at or after t.
 */
class Load {
  published = 0;
  acknowledged = 0;
  failed = 0;
  private running = true;
  private readonly acks: Array<{ start: number; end: number }> = [];
  private readonly loops: Promise<void>[];
  private seq = 0;

  constructor(client: RelayClient, topic: string, window: number, settings: PublishSettings) {
    this.loops = Array.from({ length: window }, async () => {
      while (this.running) {
        const data = payload(128);
        new DataView(data.buffer).setUint32(0, this.seq++);
        const start = performance.now();
        this.published++;
        try {
          await client.publish(topic, data, { ack: settings.ack });
          this.acknowledged++;
          this.acks.push({ start, end: performance.now() });
        } catch {
          this.failed++;
        }
      }
    });
  }

  async stallAfter(killedAt: number, timeoutMs: number): Promise<number> {
    const ack = await waitFor(() => this.acks.find((a) => a.start >= killedAt), 'a publish started after the kill to be acknowledged', timeoutMs);
    return roundTo(ack.end - killedAt, 1);
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

const stalls = (killed: string[], stallsMs: number[]): RabbitStalls => ({ killed, stallsMs, medianMs: roundTo(median(stallsMs), 1), maxMs: roundTo(Math.max(...stallsMs), 1) });

async function failover(connect: typeof Connect, rabbit: RabbitCluster, gateways: Gateways, sizes: ClusterSizes, settings: PublishSettings): Promise<RabbitFailover> {
  const topic = 'bench.rabbit.failover';
  const client = await connect({ brokers: gateways.urls, poolSize: 2, discovery: false, outbox: OUTBOX, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
  const result: RabbitFailover = { published: 0, acknowledged: 0, failed: 0, lost: 0, duplicated: 0 };
  const load = new Load(client, topic, sizes.failoverWindow, settings);
  try {
    const gatewayKilled: string[] = [];
    const gatewayStalls: number[] = [];
    for (let kill = 0; kill < sizes.failoverKills; kill++) {
      await sleep(sizes.failoverSteadyMs);
      const index = gateways.processes.findIndex((g) => g.url === client.stats().activeBroker?.url);
      const victim = gateways.processes[index] as BrokerProcess;
      const killedAt = performance.now();
      await victim.kill();
      gatewayStalls.push(await load.stallAfter(killedAt, 30_000));
      gatewayKilled.push(victim.id);
      progress(`rabbitmq: failover: gateway ${victim.id} killed, stall ${gatewayStalls.at(-1)} ms`);
      gateways.processes[index] = await gateways.spawn(index);
      await waitFor(() => (client.stats().connectedBrokers.length === 2 ? true : undefined), 'the client to reconnect to the respawned gateway', 30_000);
    }
    result.gatewayKill = stalls(gatewayKilled, gatewayStalls);
    const nodeKilled: string[] = [];
    const nodeStalls: number[] = [];
    for (let kill = 0; kill < sizes.failoverKills; kill++) {
      await sleep(sizes.failoverSteadyMs);
      const node = rabbit.nodes[await streamLeader(rabbit, topic)] as RabbitCluster['nodes'][number];
      const killedAt = performance.now();
      await node.kill('SIGKILL');
      nodeStalls.push(await load.stallAfter(killedAt, 60_000));
      nodeKilled.push(node.name);
      progress(`rabbitmq: failover: RabbitMQ node ${node.name} (stream leader) killed, stall ${nodeStalls.at(-1)} ms`);
      await node.start();
    }
    result.rabbitNodeKill = stalls(nodeKilled, nodeStalls);
  } catch (err) {
    result.error = describe(err);
  }
  await load.stop();
  Object.assign(result, { published: load.published, acknowledged: load.acknowledged, failed: load.failed });
  // Read everything back: each sent seq at most once, every acknowledged one present.
  const seen = new Map<number, number>();
  const reader = await connect({ brokers: gateways.urls, poolSize: 1, discovery: false });
  try {
    let delivered = 0;
    await reader.subscribe<Uint8Array>(topic, (m) => {
      const seq = new DataView(m.data.buffer, m.data.byteOffset, m.data.byteLength).getUint32(0);
      seen.set(seq, (seen.get(seq) ?? 0) + 1);
      delivered++;
    }, { from: 'earliest' });
    await waitFor(() => (delivered >= load.acknowledged ? true : undefined), 'the failover topic read back', 60_000).catch(() => undefined);
  } finally {
    await reader.close();
    await client.close();
  }
  result.duplicated = [...seen.values()].filter((n) => n > 1).length;
  result.lost = Math.max(0, load.acknowledged - seen.size);
  return result;
}

/** The `--engine rabbitmq` figures, or why they could not be measured here. */
export async function rabbitmqBench(
  connect: typeof Connect,
  sizes: ClusterSizes,
  settings: PublishSettings,
  only: ReadonlySet<RabbitScenario>,
): Promise<RabbitBenchResult | { skipped: string }> {
  const availability = rabbitAvailable();
  if (!availability.ok) return { skipped: availability.reason };
  const started = nowSeconds();
  // The harness starts node 1 before the nodes joining it and retries a start that failed for a transient reason.
  const rabbit = await startRabbitCluster({ nodes: 3, timeoutMs: 120_000 });
  const result: RabbitBenchResult = { setup: '', startupMs: rabbit.startupMs };
  try {
    const gateways = await Gateways.start(rabbit);
    result.setup = `2 gateways over 3 RabbitMQ nodes (streams, initial-cluster-size 3), ack ${settings.ack}`;
    progress(`rabbitmq: RabbitMQ (3 nodes) and 2 gateways up in ${roundTo(nowSeconds() - started, 1)} s`);
    const open = (): Promise<RelayClient> => connect({ brokers: gateways.urls, outbox: OUTBOX, discovery: false, poolSize: 1 });
    const withClient = async <T>(run: (client: RelayClient) => Promise<T>): Promise<T> => {
      const client = await open();
      try {
        return await run(client);
      } finally {
        await client.close();
      }
    };
    try {
      if (only.has('pipelined128B')) result.pipelined128B = await withClient((c) => pipelined(c, gateways.processes, 'bench.rabbit.b128', 128, sizes.pipelined128B, sizes, settings, 'rabbitmq: '));
      if (only.has('pipelined1KiB')) result.pipelined1KiB = await withClient((c) => pipelined(c, gateways.processes, 'bench.rabbit.kib1', 1024, sizes.pipelined1KiB, sizes, settings, 'rabbitmq: '));
      if (only.has('sequentialPublish')) result.sequentialPublish = await withClient((c) => sequentialPublish(c, 'bench.rabbit.sequential', sizes, settings, 'rabbitmq: '));
      if (only.has('publishToDeliver')) result.publishToDeliver = await withClient(async (p) => withClient((s) => publishToDeliver(p, s, 'bench.rabbit.deliver', sizes, settings)));
      if (only.has('failoverStall')) result.failoverStall = await failover(connect, rabbit, gateways, sizes, settings);
    } finally {
      await gateways.close();
    }
  } finally {
    await rabbit.stop();
  }
  return result;
}
