/**
 * `npm run bench`: publish throughput and latency on loopback, against one
 * broker (`singleBroker`) and a 3-broker Raft cluster (R=3) in three storage
 * modes: `cluster3` (fsync always), `cluster3Interval` (fsync interval), both
 * on the brokers' default layout (unified), and `cluster3Memory` (no data
 * directory); the split layout on request (`cluster3Split`,
 * `cluster3SplitInterval`); replay from disk; and a `summary` of
 * the headline figures against their targets. The brokers run in their own
 * processes; the SDK runs here. One JSON object goes to stdout, progress to
 * stderr.
 *
 *   npm run bench                       full run (about four minutes)
 *   npm run bench -- --quick            a short run, for a smoke test
 *   npm run bench -- --out bench.json   also write the JSON to a file
 *   npm run bench -- --window 2000      publishes in flight in pipelined runs
 *   npm run bench -- --latency-warmup 5000   unmeasured publishes before each latency run (the brokers' JIT warms up)
 *   npm run bench -- --only pipelined128B,sequentialPublish   some scenarios only
 *   npm run bench -- --only cluster3    the cluster figures only (or cluster3.failoverStall, singleBroker, ...)
 *   npm run bench -- --cluster-storage memory   cluster storage modes: fsync, interval, memory (fsync and interval on the default layout, unified), split, split-interval (the split layout), a comma-separated list, or all (not split)
 *   npm run bench -- --only groups      consumer groups: the longest delivery pause on partitions that did not move while members join and leave
 *   npm run bench -- --only move        a partition of 1 GiB moved to a new broker, throttle off and on: catch-up rate, publish latency meanwhile
 *   npm run bench -- --only move --move-mib 256   the same with a smaller partition
 *   npm run bench -- --only move --move-throttle-mbps 10   the throttled run's rate (MB/s)
 *   npm run bench -- --only groupMemory heap and external memory per idle partition group (3 in-process brokers; 1,000, 2,000, 4,000 partitions, or --scale-partitions)
 *   npm run bench -- --only delivery    fan-out: 1,000 subscribers, 11,000 subscriptions; deliveries/s, latency, sessions woken per message
 *   npm run bench -- --sdk source       drive the SDK sources (through tsx) instead of its build
 *   npm run bench -- --ack leader       the ack level of every publish (default quorum)
 *   npm run bench -- --compare nats     the cluster scenarios (fsync interval and always) and the same against NATS JetStream, with ratios
 *   npm run bench -- --engine rabbitmq  the cluster scenarios (fsync interval) and the same on 2 gateways over a 3-node RabbitMQ, with ratios
 *
 * Set RELAYMQ_BENCH_BROKER_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=prof")
 * to pass flags to the brokers' node processes, RELAYMQ_BENCH_BROKER_STDOUT
 * to a directory to keep what they print (--trace-gc writes to stdout),
 * RELAYMQ_BENCH_SAMPLES_OUT to a file to get every sequential publish's start
 * and latency (bench/tail-report.ts, with bench/tail-probe.mjs, tells where
 * the slow ones' time went), and RELAYMQ_BENCH_SUBSCRIBER (leader or
 * follower; any, a default client, unless set) to pin the cluster
 * publish->deliver subscriber to the partition's leader or a follower (its
 * path differs: the result's `subscriberOn` names the broker).
 */
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import type { RelayClient, connect as Connect } from '@relaymq/sdk';
import { ALL_CLUSTER_STORAGES, CLUSTER_RESULT_KEYS, CLUSTER_SCENARIOS, CLUSTER_STORAGES, cluster3, type Cluster3Result, type ClusterScenario, type ClusterSizes, type ClusterStorage } from './cluster.js';
import {
  freePorts,
  killChildren,
  loadSdk,
  makeTempDir,
  nowSeconds,
  progress,
  removeTempDir,
  spawnBroker,
  type BrokerProcess,
  type LatencySummary,
  type SdkBuild,
} from './lib.js';
import {
  OUTBOX,
  fillTopic,
  pipelined,
  publishToDeliver,
  replayFromEarliest,
  roundTo,
  sequentialPublish,
  type PublishSettings,
  type Replay,
  type ScenarioSizes,
  type Throughput,
} from './scenarios.js';
import { scale, type ScaleResult, type ScaleSizes } from './scale.js';
import { DELIVERY_FULL, DELIVERY_QUICK, delivery, type DeliveryResult } from './delivery.js';
import { groupMemory, type GroupMemoryResult } from './group-memory.js';
import { groupRebalance, type GroupRebalanceResult } from './groups.js';
import { floors, type Floors } from './floors.js';
import { summarize, type Summary } from './summary.js';
import { MOVE_SIZES, moveBench, type MoveBenchResult } from './move.js';
import { compare, type Comparison, type LoadByScenario } from './compare.js';
import { findNatsServer } from './jetstream-cluster.js';
import { jetstream, type JetStreamResult } from './jetstream.js';
import { RABBIT_SCENARIOS, compareEngines, rabbitmqBench, type EngineFigure, type RabbitBenchResult, type RabbitScenario } from './rabbitmq.js';

/** Sizes of one run: the single-broker sizes at the top level, the cluster's under `cluster3`. */
interface RunConfig extends ScenarioSizes, PublishSettings {
  /** Messages (128 B) stored and then replayed by the single broker's `replayFromDisk`. */
  replayMessages: number;
  cluster3: ClusterSizes;
  /** Storage modes of the cluster runs: `fsync` is reported as `cluster3`, `interval` as `cluster3Interval`, `memory` as `cluster3Memory`, `split` as `cluster3Split`, `split-interval` as `cluster3SplitInterval`. */
  clusterStorage: ClusterStorage[];
}

const FULL: RunConfig = {
  pipelined128B: 200_000,
  pipelined1KiB: 100_000,
  pipelinedWarmup: 10_000,
  rounds: 3,
  window: 5_000,
  latencySamples: 5_000,
  latencyWarmup: 500,
  ack: 'quorum',
  replayMessages: 100_000,
  cluster3: {
    pipelined128B: 50_000,
    pipelined1KiB: 30_000,
    pipelinedWarmup: 5_000,
    rounds: 3,
    latencySamples: 2_000,
    // Fresh brokers compile their hot paths while they serve: after 200 publishes the leader still
    // finished 280 TurboFan compilations during the 2,000 samples, after 5,000 only 2 (docs/benchmarks.md,
    // "The awaited p99"). The latency runs measure brokers that have warmed up, as JetStream's (no JIT) are.
    latencyWarmup: 5_000,
    failoverKills: 5,
    failoverWindow: 4,
    failoverSteadyMs: 500,
    replayMessages: 100_000,
  },
  clusterStorage: ['fsync', 'interval', 'memory'],
};

const QUICK: RunConfig = {
  pipelined128B: 20_000,
  pipelined1KiB: 10_000,
  pipelinedWarmup: 2_000,
  rounds: 1,
  window: 5_000,
  latencySamples: 500,
  latencyWarmup: 100,
  ack: 'quorum',
  replayMessages: 10_000,
  cluster3: {
    pipelined128B: 10_000,
    pipelined1KiB: 5_000,
    pipelinedWarmup: 1_000,
    rounds: 1,
    latencySamples: 300,
    latencyWarmup: 50,
    failoverKills: 2,
    failoverWindow: 4,
    failoverSteadyMs: 300,
    replayMessages: 10_000,
  },
  clusterStorage: ['fsync'],
};

/** The figures for one broker. */
interface SingleBrokerResult {
  pipelined128B: Throughput;
  pipelined1KiB: Throughput;
  /** `await publish()` one at a time: publish call to ack. */
  sequentialPublish: LatencySummary;
  /** One message at a time: publish call to the subscriber's handler, on a second client. */
  publishToDeliver: LatencySummary;
  /** With `--data` (fsync always): a fresh subscriber reading a stored partition from `earliest` after a broker restart. */
  replayFromDisk: Replay;
}

interface BenchResult {
  node: string;
  cpus: number;
  cpuModel: string | undefined;
  date: string;
  quick: boolean;
  /** The SDK build that ran: `dist` (published build) or `source` (through tsx). */
  sdk: SdkBuild;
  /** The headline cluster figures against their targets (issues 4, 5, 12 and 15). */
  summary: Summary;
  /** What the machine allows (loopback round trip, fdatasync, disk bandwidth), measured before the cluster runs. */
  floors?: Floors;
  config: RunConfig;
  /** Every scenario unless `--only` picked some. */
  singleBroker: Partial<SingleBrokerResult>;
  /** Three brokers, R=3, logs on disk fsynced before the ack (`--data`, fsync always, the default layout: unified). */
  cluster3?: Cluster3Result;
  /** Three brokers, R=3, logs on disk fsynced on a timer (`--data --fsync interval`, unified). */
  cluster3Interval?: Cluster3Result;
  /** Three brokers, R=3, logs in memory only (no `--data`). */
  cluster3Memory?: Cluster3Result;
  /** As `cluster3` with `--storage-layout split` (asked for with `--cluster-storage split`). */
  cluster3Split?: Cluster3Result;
  /** As `cluster3Interval` with `--storage-layout split` (asked for with `--cluster-storage split-interval`). */
  cluster3SplitInterval?: Cluster3Result;
  /** `--only scale`: idle cost, creation time and failover at each partition count. */
  scale?: ScaleResult[];
  /** `--only delivery`: fan-out over 1,000 subscribers (issue 13): deliveries/s, latency, sessions woken per message. */
  delivery?: DeliveryResult;
  /** `--only groupMemory`: memory per idle partition group (issue 13), after a full collection. */
  groupMemory?: GroupMemoryResult;
  /** Consumer groups (issue 15): delivery pauses on unmoved partitions while members join and leave. */
  groups?: GroupRebalanceResult;
  /** `--only move` (issue 14): a large partition moved to a new broker, throttled and not. */
  move?: MoveBenchResult;
  /** `--compare nats`: the same cluster scenarios against NATS JetStream (3 servers, R3 file stream). */
  jetstream?: JetStreamResult | { skipped: string };
  /** `--compare nats`: relaymq (fsync interval and always) against JetStream, figure by figure, with issue 12's targets. */
  comparison?: Comparison & { loadAverage1m: LoadByScenario };
  /** `--engine rabbitmq`: the cluster scenarios on 2 gateways over a 3-node RabbitMQ (bench/rabbitmq.ts). */
  rabbitmq?: RabbitBenchResult | { skipped: string };
  /** `--engine rabbitmq`: each figure of the embedded cluster (`embeddedKey`) and of the gateways, ratio rabbitmq / embedded. */
  engineComparison?: { embeddedKey: string; figures: Record<string, EngineFigure>; loadAverage1m: { embedded: number; rabbitmq: number } };
}

/** Scenario names, as keys of the result; `--only` picks some. */
const SCENARIOS = ['pipelined128B', 'pipelined1KiB', 'sequentialPublish', 'publishToDeliver', 'replayFromDisk'] as const;
type Scenario = (typeof SCENARIOS)[number];

/**
 * Runs each scenario against a fresh broker process: the in-memory log keeps
 * every message, so a broker reused across scenarios would carry the heap (and
 * GC pauses) of the earlier ones into the later ones.
 */
async function singleBroker(connect: typeof Connect, config: RunConfig, only: ReadonlySet<Scenario>): Promise<Partial<SingleBrokerResult>> {
  const withBroker = async <T>(scenario: Scenario, run: (broker: BrokerProcess, open: () => Promise<RelayClient>) => Promise<T>): Promise<T> => {
    const broker = await spawnBroker('bench');
    progress(`${scenario}: broker ${broker.id} (pid ${broker.pid}) on ${broker.url}`);
    const clients: RelayClient[] = [];
    const open = async (): Promise<RelayClient> => {
      const client = await connect({ brokers: [broker.url], outbox: OUTBOX, discovery: false, poolSize: 1 });
      clients.push(client);
      return client;
    };
    try {
      return await run(broker, open);
    } finally {
      await Promise.all(clients.map((client) => client.close()));
      await broker.stop();
    }
  };
  const result: Partial<SingleBrokerResult> = {};
  if (only.has('pipelined128B')) {
    result.pipelined128B = await withBroker('pipelined128B', async (broker, open) =>
      pipelined(await open(), [broker], 'bench.pipelined.b128', 128, config.pipelined128B, config, config),
    );
  }
  if (only.has('pipelined1KiB')) {
    result.pipelined1KiB = await withBroker('pipelined1KiB', async (broker, open) =>
      pipelined(await open(), [broker], 'bench.pipelined.kib1', 1024, config.pipelined1KiB, config, config),
    );
  }
  if (only.has('sequentialPublish')) {
    result.sequentialPublish = await withBroker('sequentialPublish', async (_broker, open) => sequentialPublish(await open(), 'bench.sequential', config, config));
  }
  if (only.has('publishToDeliver')) {
    result.publishToDeliver = await withBroker('publishToDeliver', async (_broker, open) =>
      publishToDeliver(await open(), await open(), 'bench.deliver', config, config),
    );
  }
  if (only.has('replayFromDisk')) result.replayFromDisk = await singleReplay(connect, config);
  return result;
}

/**
 * One broker with `--data`: fills a partition, restarts the broker on the same
 * port and data (nothing cached in memory), and times a fresh subscriber
 * reading the partition from `earliest`.
 */
async function singleReplay(connect: typeof Connect, config: RunConfig): Promise<Replay> {
  const label = 'singleBroker: ';
  const topic = 'bench.replay';
  const dataDir = makeTempDir('relaymq-bench-single-');
  const [port] = await freePorts(1);
  const args = ['--data', dataDir];
  const open = (broker: BrokerProcess): Promise<RelayClient> =>
    connect({ brokers: [broker.url], outbox: OUTBOX, discovery: false, poolSize: 1 });
  try {
    const first = await spawnBroker('bench', args, port);
    progress(`${label}replayFromDisk: broker ${first.id} (pid ${first.pid}) on ${first.url}, data in ${dataDir}`);
    try {
      const publisher = await open(first);
      try {
        await fillTopic(publisher, topic, 128, config.replayMessages, config, label);
      } finally {
        await publisher.close();
      }
    } finally {
      await first.stop();
    }
    const broker = await spawnBroker('bench', args, port);
    try {
      const reader = await open(broker);
      try {
        return await replayFromEarliest(reader, [broker], topic, 128, config.replayMessages, label);
      } finally {
        await reader.close();
      }
    } finally {
      await broker.stop();
    }
  } finally {
    removeTempDir(dataDir);
  }
}

/** What `--only` picked: single-broker and cluster scenarios. */
interface Selection {
  single: Set<Scenario>;
  cluster: Set<ClusterScenario>;
  /** `scale`: the partition-count figures (issue 13); only when asked for, they take minutes. */
  scale: boolean;
  /** `delivery`: the fan-out figures (issue 13); only when asked for. */
  delivery: boolean;
  /** `groupMemory`: memory per idle partition group (issue 13); only when asked for. */
  groupMemory: boolean;
  groups: boolean;
  /** `move`: the replica-move figures (issue 14); only when asked for, they take minutes and gigabytes. */
  move: boolean;
}

/**
 * `--only` names: a single-broker scenario (`pipelined128B`), `singleBroker`
 * (all of them), `cluster3` (every cluster scenario), `cluster3.<scenario>`, `groups`, `scale`, `delivery`, `groupMemory` or `move`.
 */
function parseOnly(value: string | undefined, compareOnly: boolean): Selection {
  const none = { groups: false, scale: false, delivery: false, groupMemory: false, move: false };
  if (value === undefined && compareOnly) return { single: new Set(), cluster: new Set(CLUSTER_SCENARIOS), ...none };
  if (value === undefined) return { single: new Set(SCENARIOS), cluster: new Set(CLUSTER_SCENARIOS), ...none, groups: true };
  const selection: Selection = { single: new Set(), cluster: new Set(), ...none };
  const known = [...SCENARIOS, 'singleBroker', 'cluster3', ...CLUSTER_SCENARIOS.map((name) => `cluster3.${name}`), 'groups', 'scale', 'delivery', 'groupMemory', 'move'];
  for (const name of value.split(',').map((n) => n.trim())) {
    if ((SCENARIOS as readonly string[]).includes(name)) selection.single.add(name as Scenario);
    else if (name === 'singleBroker') for (const s of SCENARIOS) selection.single.add(s);
    else if (name === 'scale') selection.scale = true;
    else if (name === 'move') selection.move = true;
    else if (name === 'delivery') selection.delivery = true;
    else if (name === 'groupMemory') selection.groupMemory = true;
    else if (name === 'cluster3') for (const s of CLUSTER_SCENARIOS) selection.cluster.add(s);
    else if (name === 'groups') selection.groups = true;
    else if (name.startsWith('cluster3.') && (CLUSTER_SCENARIOS as readonly string[]).includes(name.slice(9))) selection.cluster.add(name.slice(9) as ClusterScenario);
    else throw new Error(`--only: unknown scenario "${name}"; known: ${known.join(', ')}`);
  }
  return selection;
}

/** `--cluster-storage`: `all`, `both` (fsync and memory, as before `interval` existed), or a comma-separated list of modes. */
function parseStorage(value: string | undefined, fallback: ClusterStorage[]): ClusterStorage[] {
  if (value === undefined) return fallback;
  if (value === 'all') return [...CLUSTER_STORAGES];
  if (value === 'both') return ['fsync', 'memory'];
  const modes = value.split(',').map((mode) => mode.trim());
  for (const mode of modes) {
    if (!(ALL_CLUSTER_STORAGES as readonly string[]).includes(mode)) {
      throw new Error(`--cluster-storage: unknown mode "${mode}"; known: ${ALL_CLUSTER_STORAGES.join(', ')}, all, both`);
    }
  }
  return [...new Set(modes as ClusterStorage[])];
}

/** `--scale-partitions 100,1000`: the partition counts of the `scale` run. */
function parsePartitions(value: string | undefined, quick: boolean): number[] {
  if (value === undefined) return quick ? [100] : [100, 1000];
  const counts = value.split(',').map((n) => Number(n.trim()));
  if (counts.some((n) => !Number.isInteger(n) || n < 8 || n > 20_000)) throw new Error(`--scale-partitions: integers from 8 to 20000, got "${value}"`);
  return counts;
}

/** `--move-mib` (the partition's size, MiB) and `--move-throttle-mbps` (the throttled run's rate, MB/s). */
function parseMoveSizes(mib: string | undefined, mbps: string | undefined): typeof MOVE_SIZES {
  const sizes = { ...MOVE_SIZES };
  if (mib !== undefined) {
    const n = Number(mib);
    if (!Number.isInteger(n) || n < 1 || n > 64 * 1024) throw new Error(`--move-mib: an integer from 1 to 65536, got "${mib}"`);
    sizes.bytes = n * 1024 * 1024;
  }
  if (mbps !== undefined) {
    const n = Number(mbps);
    if (!(n > 0)) throw new Error(`--move-throttle-mbps: a positive number, got "${mbps}"`);
    sizes.throttleBytesPerSecond = Math.round(n * 1e6);
  }
  return sizes;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      window: { type: 'string' },
      'latency-warmup': { type: 'string' },
      only: { type: 'string' },
      'cluster-storage': { type: 'string' },
      sdk: { type: 'string', default: 'dist' },
      'scale-partitions': { type: 'string' },
      ack: { type: 'string' },
      'move-mib': { type: 'string' },
      'move-throttle-mbps': { type: 'string' },
      compare: { type: 'string' },
      engine: { type: 'string' },
    },
    strict: true,
  });
  const quick = values.quick === true;
  if (values.compare !== undefined && values.compare !== 'nats') throw new Error(`--compare: only "nats" is known, got "${values.compare}"`);
  const compareNats = values.compare === 'nats';
  if (values.engine !== undefined && values.engine !== 'rabbitmq') throw new Error(`--engine: only "rabbitmq" is known, got "${values.engine}"`);
  const rabbit = values.engine === 'rabbitmq';
  if (rabbit && compareNats) throw new Error('--engine rabbitmq and --compare nats are separate runs');
  const base = quick ? QUICK : FULL;
  // The comparison runs relaymq with both fsync settings JetStream is compared with, unless --cluster-storage says otherwise;
  // --engine rabbitmq with fsync interval (RabbitMQ confirms once a quorum wrote a message, without an fsync).
  const storages = compareNats ? ['fsync', 'interval'] satisfies ClusterStorage[] : rabbit ? (['interval'] satisfies ClusterStorage[]) : base.clusterStorage;
  const config: RunConfig = { ...base, cluster3: { ...base.cluster3 }, clusterStorage: parseStorage(values['cluster-storage'], storages) };
  if (values.window !== undefined) {
    const window = Number(values.window);
    if (!Number.isInteger(window) || window < 1 || window > OUTBOX.maxMessages) {
      throw new Error(`--window must be an integer from 1 to ${OUTBOX.maxMessages}, got "${values.window}"`);
    }
    config.window = window;
  }
  if (values['latency-warmup'] !== undefined) {
    const warmup = Number(values['latency-warmup']);
    if (!Number.isInteger(warmup) || warmup < 0) throw new Error(`--latency-warmup must be a whole number, got "${values['latency-warmup']}"`);
    config.latencyWarmup = warmup;
    config.cluster3.latencyWarmup = warmup;
  }
  if (values.ack !== undefined) {
    if (!['none', 'leader', 'quorum', 'all'].includes(values.ack)) throw new Error(`--ack must be none, leader, quorum or all, got "${values.ack}"`);
    config.ack = values.ack as RunConfig['ack'];
  }
  const selection = parseOnly(values.only, compareNats || rabbit);
  if (rabbit) selection.cluster = new Set([...selection.cluster].filter((name) => (RABBIT_SCENARIOS as readonly string[]).includes(name)));
  if (values.sdk !== 'dist' && values.sdk !== 'source') throw new Error(`--sdk must be dist or source, got "${values.sdk}"`);
  const sdkBuild: SdkBuild = values.sdk;
  const { connect } = await loadSdk(sdkBuild);
  const natsServer = compareNats ? findNatsServer() : undefined;
  if (natsServer !== undefined && 'missing' in natsServer) progress(`--compare nats: the JetStream comparison is skipped: ${natsServer.missing}`);
  const started = nowSeconds();
  const single = await singleBroker(connect, config, selection.single);
  const clusters: Pick<BenchResult, (typeof CLUSTER_RESULT_KEYS)[ClusterStorage]> = {};
  const runClusters = async (only: ReadonlySet<ClusterScenario>): Promise<void> => {
    for (const storage of config.clusterStorage) {
      const key = CLUSTER_RESULT_KEYS[storage];
      clusters[key] = { ...clusters[key], ...(await cluster3(connect, storage, config.cluster3, config, only)) };
    }
  };
  const machineFloors = selection.cluster.size > 0 ? await floors() : undefined;
  if (machineFloors !== undefined) progress(`floors: ${JSON.stringify(machineFloors)}`);
  const loadBeforeClusters = loadavg()[0] as number;
  let nats: Pick<BenchResult, 'jetstream' | 'comparison'> = {};
  if (natsServer !== undefined && !('missing' in natsServer)) {
    // Scenario by scenario, relaymq's storage modes then JetStream, so that both sides of a ratio ran minutes apart at most on this shared machine.
    let figures: JetStreamResult | undefined;
    const load: LoadByScenario = {};
    for (const scenario of CLUSTER_SCENARIOS.filter((name) => selection.cluster.has(name))) {
      const only = new Set([scenario]);
      const relaymqLoad = loadavg()[0] as number;
      await runClusters(only);
      const jetstreamLoad = loadavg()[0] as number;
      figures = { ...figures, ...(await jetstream(natsServer, config.cluster3, config, only)) };
      load[scenario] = { relaymq: roundTo(relaymqLoad, 2), jetstream: roundTo(jetstreamLoad, 2) };
    }
    if (figures !== undefined) nats = { jetstream: figures, comparison: { ...compare(clusters, figures, config.ack), loadAverage1m: load } };
  } else {
    if (natsServer !== undefined) nats = { jetstream: { skipped: natsServer.missing } };
    if (selection.cluster.size > 0) await runClusters(selection.cluster);
  }
  let engines: Pick<BenchResult, 'rabbitmq' | 'engineComparison'> = {};
  if (rabbit) {
    const figures = await rabbitmqBench(connect, config.cluster3, config, selection.cluster as Set<RabbitScenario>);
    const [embeddedKey, embedded] = Object.entries(clusters)[0] ?? [];
    engines = { rabbitmq: figures };
    if (embedded !== undefined && embeddedKey !== undefined && !('skipped' in figures)) {
      engines.engineComparison = { embeddedKey, figures: compareEngines(embedded, figures), loadAverage1m: { embedded: roundTo(loadBeforeClusters, 2), rabbitmq: roundTo(loadavg()[0] as number, 2) } };
    }
  }
  let scaleFigures: ScaleResult[] | undefined;
  if (selection.scale) {
    const sizes: ScaleSizes = { partitions: parsePartitions(values['scale-partitions'], quick), settleSeconds: quick ? 5 : 10, idleSeconds: quick ? 5 : 10 };
    scaleFigures = await scale(connect, sizes);
  }
  const deliveryFigures = selection.delivery ? await delivery(connect, quick ? DELIVERY_QUICK : DELIVERY_FULL) : undefined;
  const memoryFigures = selection.groupMemory
    ? await groupMemory(values['scale-partitions'] === undefined ? (quick ? [500, 1000] : [1000, 2000, 4000]) : parsePartitions(values['scale-partitions'], quick))
    : undefined;
  const groups = selection.groups ? await groupRebalance(connect) : undefined;
  const move = selection.move ? await moveBench(connect, parseMoveSizes(values['move-mib'], values['move-throttle-mbps'])) : undefined;
  const result: BenchResult = {
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    date: new Date().toISOString(),
    quick,
    sdk: sdkBuild,
    summary: summarize(clusters, groups, machineFloors),
    config,
    ...(machineFloors === undefined ? {} : { floors: machineFloors }),
    singleBroker: single,
    ...clusters,
    ...(scaleFigures === undefined ? {} : { scale: scaleFigures }),
    ...(deliveryFigures === undefined ? {} : { delivery: deliveryFigures }),
    ...(memoryFigures === undefined ? {} : { groupMemory: memoryFigures }),
    ...(groups === undefined ? {} : { groups }),
    ...(move === undefined ? {} : { move }),
    ...nats,
    ...engines,
  };
  progress(`done in ${roundTo(nowSeconds() - started, 1)} s`);
  const json = `${JSON.stringify(result, null, 2)}\n`;
  // `npm run bench` also prints the build's output on stdout; --out gives a file holding only the JSON.
  if (values.out !== undefined) await writeFile(values.out, json);
  process.stdout.write(json);
}

// Whatever happens, no broker process outlives the benchmark, and no temporary directory stays behind.
process.on('exit', killChildren);
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.on(signal, () => {
    progress(`${signal}: stopping`);
    killChildren();
    process.exit(code);
  });
}

main().catch((err: unknown) => {
  progress(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  killChildren();
  process.exitCode = 1;
});
