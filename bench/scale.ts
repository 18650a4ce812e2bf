/**
 * The `scale` figures (issue 13): what a 3-broker cluster (R=3, `--data`,
 * fsync always) costs as its partition count grows, with nothing published.
 * For each size: the time to create the partitions (topics of 8 partitions,
 * created through `metadata` requests, a few in flight), then each broker's
 * idle CPU (share of one core, from /proc) and RSS over a quiet window, the
 * brokers' own Raft counters over that window (ticks, peer messages; read
 * from `/metrics` when the brokers export them), and the failover: SIGKILL
 * of the broker leading the most partitions, timed until a surviving broker
 * names a surviving leader for every partition. Before the failover, the
 * awaited publish latency on one partition (128 B, ack quorum, one in flight),
 * which issue 13 wants within 20% of the smallest size's.
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { connect as Connect } from '@relaymq/sdk';
import { brokerStats, rssMiB } from './broker-stats.js';
import { LeaderProbe } from './cluster.js';
import { freePorts, makeTempDir, nowSeconds, processCpuSeconds, progress, removeTempDir, spawnBroker, summarizeLatency, type BrokerProcess, type LatencySummary } from './lib.js';
import { roundTo } from './scenarios.js';

const BROKER_IDS = ['s1', 's2', 's3'] as const;
/** Partitions per topic, as in the issue's measurements. */
const PARTITIONS_PER_TOPIC = 8;
/** Topics per `metadata` request, and requests in flight while creating. */
const TOPICS_PER_REQUEST = 8;
const REQUESTS_IN_FLIGHT = 4;
/** How long `ledSeconds` waits for every partition to have a leader before leaving the figure out. */
const LED_TIMEOUT_MS = 180_000;

/** Samples (and warm-up publishes) of {@link ScaleResult.awaitedPublish}. */
const AWAITED_SAMPLES = 1_000;
const AWAITED_WARMUP = 100;

/** Sizes of one `scale` run. */
export interface ScaleSizes {
  /** Partition counts to measure, each on a fresh cluster. */
  partitions: number[];
  /** Seconds the cluster is left alone after creation before the idle window (elections settle, groups go quiet). */
  settleSeconds: number;
  /** Length of the idle window, in seconds. */
  idleSeconds: number;
}

/** One broker over the idle window. */
export interface IdleBroker {
  id: string;
  /** CPU time over wall time, 100 = one core. */
  cpuPercent: number;
  rssMiB: number;
  /** V8 heap in use (live and garbage not yet collected) and reserved, and memory outside it, at the end of the window, when exported. */
  heapUsedMiB?: number;
  heapTotalMiB?: number;
  externalMiB?: number;
  /** Raft group ticks per second over the window (the broker's `raftTicks` counter), when exported. */
  raftTicksPerSec?: number;
  /** Raft messages sent per second over the window (`raftMessagesSent`), when exported. */
  raftMessagesPerSec?: number;
  /** Peer messages and frames sent per second over the window (`peerMessagesSent`, `peerFramesSent`), when exported. */
  peerMessagesPerSec?: number;
  peerFramesPerSec?: number;
  /** Partition groups hosted here that are quiesced at the end of the window, when exported. */
  raftGroupsQuiesced?: number;
  /** Segment files and Raft log files open at the end of the window (`openSegmentFiles`, `openRaftLogFiles`), when exported. */
  openSegmentFiles?: number;
  openRaftLogFiles?: number;
  /** Heap collections the broker ran after bursts of group creations (`heapSettles`), where it exports them. */
  heapSettles?: number;
}

/** The figures at one partition count. */
export interface ScaleResult {
  partitions: number;
  topics: number;
  /** From the first `metadata` request to the last answer (every topic committed and assigned in the metadata). */
  createSeconds: number;
  /** From the first `metadata` request until the first broker names a leader for every partition (absent: not within {@link LED_TIMEOUT_MS}). */
  ledSeconds?: number;
  idle: IdleBroker[];
  /**
   * `await publish()` of 128 B to one partition of one topic (a key pins it),
   * one at a time, after the idle window: the latency a busy partition gets
   * among this many idle ones.
   */
  awaitedPublish?: LatencySummary;
  /**
   * SIGKILL of the broker leading the most partitions, to a surviving leader
   * named for every partition (`seconds`); when that takes over 60 s, `seconds`
   * is absent and `unled` says how many partitions were still without one.
   * `unledEvery5s`: how many were without one 5, 10, 15 s... after the kill.
   * `load1`: the machine's one-minute load average at the kill;
   * `survivorCpuSeconds`: CPU time each surviving broker spent from the kill
   * until the end (a cost the machine's load does not inflate the way it
   * does `seconds`).
   */
  failover?: {
    killed: string;
    partitionsLed: number;
    seconds?: number;
    unled?: number;
    unledEvery5s: number[];
    load1: number;
    survivorCpuSeconds: number[];
    /** Peer messages and frames each survivor sent from the kill until the end (`peerMessagesSent`, `peerFramesSent`), when exported. */
    survivorPeerMessages?: number[];
    survivorPeerFrames?: number[];
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface ScaleNode {
  id: string;
  clientPort: number;
  peerPort: number;
  adminPort: number;
  process: BrokerProcess;
}

async function startCluster(root: string): Promise<ScaleNode[]> {
  const ports = await freePorts(3 * BROKER_IDS.length);
  const specs = BROKER_IDS.map((id, i) => ({
    id,
    clientPort: ports[i] as number,
    peerPort: ports[BROKER_IDS.length + i] as number,
    adminPort: ports[2 * BROKER_IDS.length + i] as number,
  }));
  return Promise.all(
    specs.map(async (spec) => {
      const peers = specs.filter((other) => other !== spec).map((other) => `${other.id}@127.0.0.1:${other.peerPort}`);
      const args = ['--peer-port', String(spec.peerPort), '--peers', peers.join(','), '--data', join(root, spec.id)];
      args.push('--partitions', String(PARTITIONS_PER_TOPIC), '--admin-port', String(spec.adminPort));
      return { ...spec, process: await spawnBroker(spec.id, args, spec.clientPort) };
    }),
  );
}

async function openProbe(url: string): Promise<LeaderProbe> {
  const deadline = performance.now() + 30_000;
  for (;;) {
    const probe = await LeaderProbe.open(url);
    if (probe !== undefined) return probe;
    if (performance.now() > deadline) throw new Error(`cannot reach ${url}`);
    await sleep(200);
  }
}

/** Creates `topics` (retrying a refused request: the metadata group may still be electing). */
async function createTopics(probe: LeaderProbe, topics: readonly string[]): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < topics.length) {
      const batch = topics.slice(next, next + TOPICS_PER_REQUEST);
      next += TOPICS_PER_REQUEST;
      const deadline = performance.now() + 60_000;
      while ((await probe.topics(batch)) === undefined) {
        if (performance.now() > deadline) throw new Error(`could not create ${batch.join(', ')}`);
        await sleep(100);
      }
    }
  };
  await Promise.all(Array.from({ length: REQUESTS_IN_FLIGHT }, worker));
}

/** Every partition's leader as `probe`'s broker names it ('' when none). */
async function leaders(probe: LeaderProbe, topics: readonly string[]): Promise<string[] | undefined> {
  const out: string[] = [];
  for (let i = 0; i < topics.length; i += 200) {
    const answer = await probe.topics(topics.slice(i, i + 200), 10_000);
    if (answer === undefined) return undefined;
    for (const topic of answer) out.push(...(topic.leaders ?? []));
  }
  return out;
}

/** Seconds from `started` until `probe`'s broker names a leader for every partition; `undefined` after {@link LED_TIMEOUT_MS}. */
async function everyPartitionLed(probe: LeaderProbe, topics: readonly string[], started: number): Promise<number | undefined> {
  const deadline = performance.now() + LED_TIMEOUT_MS;
  for (;;) {
    const now = await leaders(probe, topics);
    if (now !== undefined && now.every((leader) => leader !== '')) return roundTo(nowSeconds() - started, 2);
    if (performance.now() > deadline) return undefined;
    await sleep(100);
  }
}

/** How long the settle may wait, beyond `settleSeconds`, for every group to quiesce. */
const QUIESCE_TIMEOUT_MS = 120_000;

/**
 * Waits until every broker says all its groups are quiesced (the elections
 * after creation are over), at most {@link QUIESCE_TIMEOUT_MS}; true when
 * they are, or when the brokers do not export the counters. The idle window
 * and the failover then start from a quiet cluster, not one still electing.
 */
async function allQuiesced(nodes: readonly ScaleNode[]): Promise<boolean> {
  const deadline = performance.now() + QUIESCE_TIMEOUT_MS;
  for (;;) {
    const stats = await Promise.all(nodes.map((n) => brokerStats(n.adminPort)));
    const quiet = stats.every((s) => s.get('raftGroups') === undefined || s.get('raftGroups') === s.get('raftGroupsQuiesced'));
    if (quiet) return true;
    if (performance.now() > deadline) return false;
    await sleep(1000);
  }
}

async function measureIdle(nodes: readonly ScaleNode[], seconds: number): Promise<IdleBroker[]> {
  const before = await Promise.all(nodes.map((n) => brokerStats(n.adminPort)));
  const cpuBefore = nodes.map((n) => processCpuSeconds(n.process.pid) ?? Number.NaN);
  const started = nowSeconds();
  await sleep(seconds * 1000);
  const wall = nowSeconds() - started;
  const cpuAfter = nodes.map((n) => processCpuSeconds(n.process.pid) ?? Number.NaN);
  const after = await Promise.all(nodes.map((n) => brokerStats(n.adminPort)));
  return nodes.map((node, i) => {
    const figure: IdleBroker = {
      id: node.id,
      cpuPercent: roundTo((100 * ((cpuAfter[i] as number) - (cpuBefore[i] as number))) / wall, 1),
      rssMiB: rssMiB(node.process.pid),
    };
    const rate = (name: string): number | undefined => {
      const a = after[i]?.get(name);
      const b = before[i]?.get(name);
      return a === undefined || b === undefined ? undefined : roundTo((a - b) / wall, 1);
    };
    const ticks = rate('raftTicks');
    const messages = rate('raftMessagesSent');
    const quiesced = after[i]?.get('raftGroupsQuiesced');
    if (ticks !== undefined) figure.raftTicksPerSec = ticks;
    if (messages !== undefined) figure.raftMessagesPerSec = messages;
    const [peerMessages, peerFrames] = [rate('peerMessagesSent'), rate('peerFramesSent')];
    if (peerMessages !== undefined) figure.peerMessagesPerSec = peerMessages;
    if (peerFrames !== undefined) figure.peerFramesPerSec = peerFrames;
    if (quiesced !== undefined) figure.raftGroupsQuiesced = quiesced;
    for (const [stat, key] of [['heapUsedBytes', 'heapUsedMiB'], ['heapTotalBytes', 'heapTotalMiB'], ['externalBytes', 'externalMiB']] as const) {
      const bytes = after[i]?.get(stat);
      if (bytes !== undefined) figure[key] = roundTo(bytes / 2 ** 20, 1);
    }
    const segments = after[i]?.get('openSegmentFiles');
    const raftLogs = after[i]?.get('openRaftLogFiles');
    if (segments !== undefined) figure.openSegmentFiles = segments;
    if (raftLogs !== undefined) figure.openRaftLogFiles = raftLogs;
    const settles = after[i]?.get('heapSettles');
    if (settles !== undefined) figure.heapSettles = settles;
    return figure;
  });
}

async function failover(nodes: readonly ScaleNode[], topics: readonly string[]): Promise<ScaleResult['failover']> {
  const probes = await Promise.all(nodes.map((n) => openProbe(`ws://127.0.0.1:${n.clientPort}`)));
  try {
    const current = await leaders(probes[0] as LeaderProbe, topics);
    if (current === undefined) throw new Error('no leaders to start the failover from');
    const counts = new Map<string, number>();
    for (const leader of current) counts.set(leader, (counts.get(leader) ?? 0) + 1);
    const [killed, partitionsLed] = [...counts.entries()].filter(([id]) => id !== '').sort((a, b) => b[1] - a[1])[0] ?? ['', 0];
    const victim = nodes.find((n) => n.id === killed);
    if (victim === undefined) throw new Error(`no broker leads anything (${JSON.stringify([...counts])})`);
    const surviving = probes[nodes.indexOf(victim) === 0 ? 1 : 0] as LeaderProbe;
    const load1 = roundTo(loadavg()[0] ?? Number.NaN, 1);
    const survivors = nodes.filter((n) => n !== victim);
    const cpuBefore = survivors.map((n) => processCpuSeconds(n.process.pid) ?? Number.NaN);
    const survivorCpu = (): number[] => survivors.map((n, i) => roundTo((processCpuSeconds(n.process.pid) ?? Number.NaN) - (cpuBefore[i] as number), 2));
    const peerBefore = await Promise.all(survivors.map((n) => brokerStats(n.adminPort)));
    /** The survivors' peer traffic since the kill, when they export it. */
    const peerTraffic = async (): Promise<Pick<NonNullable<ScaleResult['failover']>, 'survivorPeerMessages' | 'survivorPeerFrames'>> => {
      const after = await Promise.all(survivors.map((n) => brokerStats(n.adminPort)));
      const delta = (stat: string): number[] | undefined => {
        const values = after.map((a, i) => (a.get(stat) ?? Number.NaN) - (peerBefore[i]?.get(stat) ?? Number.NaN));
        return values.every(Number.isFinite) ? values : undefined;
      };
      const [messages, frames] = [delta('peerMessagesSent'), delta('peerFramesSent')];
      return { ...(messages === undefined ? {} : { survivorPeerMessages: messages }), ...(frames === undefined ? {} : { survivorPeerFrames: frames }) };
    };
    const started = nowSeconds();
    await victim.process.kill();
    const deadline = performance.now() + 60_000;
    const unledEvery5s: number[] = [];
    for (;;) {
      const now = await leaders(surviving, topics);
      const unled = now === undefined ? topics.length * PARTITIONS_PER_TOPIC : now.filter((leader) => leader === '' || leader === killed).length;
      if (unled === 0) break;
      const elapsed = nowSeconds() - started;
      while (elapsed >= 5 * (unledEvery5s.length + 1)) unledEvery5s.push(unled);
      if (performance.now() > deadline) return { killed, partitionsLed, unled, unledEvery5s, load1, survivorCpuSeconds: survivorCpu(), ...(await peerTraffic()) };
      await sleep(50);
    }
    const seconds = roundTo(nowSeconds() - started, 2);
    return { killed, partitionsLed, seconds, unledEvery5s, load1, survivorCpuSeconds: survivorCpu(), ...(await peerTraffic()) };
  } finally {
    for (const probe of probes) probe.close();
  }
}

/** Measures one partition count on a fresh cluster. */
/** {@link ScaleResult.awaitedPublish}: a client of every broker publishes to one partition of `topic`, awaiting each ack. */
async function awaitedPublish(connect: typeof Connect, nodes: readonly ScaleNode[], topic: string): Promise<LatencySummary> {
  const client = await connect({ brokers: nodes.map((n) => `ws://127.0.0.1:${n.clientPort}`) });
  try {
    const data = new Uint8Array(128);
    const options = { key: 'scale-latency', ack: 'quorum' } as const;
    for (let i = 0; i < AWAITED_WARMUP; i++) await client.publish(topic, data, options);
    const samplesMs: number[] = [];
    for (let i = 0; i < AWAITED_SAMPLES; i++) {
      const start = performance.now();
      await client.publish(topic, data, options);
      samplesMs.push(performance.now() - start);
    }
    return summarizeLatency(samplesMs);
  } finally {
    await client.close();
  }
}

async function scaleOnce(connect: typeof Connect, partitions: number, sizes: ScaleSizes, withFailover: boolean): Promise<ScaleResult> {
  const label = `scale/${partitions}: `;
  const root = makeTempDir('relaymq-bench-scale-');
  const nodes = await startCluster(root);
  try {
    progress(`${label}brokers ${nodes.map((n) => `${n.id} (pid ${n.process.pid})`).join(', ')}`);
    const topicCount = Math.ceil(partitions / PARTITIONS_PER_TOPIC);
    const topics = Array.from({ length: topicCount }, (_, i) => `scale.t${i}`);
    const probe = await openProbe(`ws://127.0.0.1:${nodes[0]?.clientPort}`);
    let createSeconds: number;
    let ledSeconds: number | undefined;
    try {
      // The first request waits for the metadata group's first leader: not counted.
      await createTopics(probe, ['scale.warmup']);
      const started = nowSeconds();
      await createTopics(probe, topics);
      createSeconds = roundTo(nowSeconds() - started, 2);
      progress(`${label}created ${topicCount} topics × ${PARTITIONS_PER_TOPIC} in ${createSeconds} s (metadata answered); waiting for every leader`);
      ledSeconds = await everyPartitionLed(probe, topics, started);
    } finally {
      probe.close();
    }
    progress(`${label}every partition led after ${ledSeconds ?? `more than ${LED_TIMEOUT_MS / 1000}`} s; settling ${sizes.settleSeconds} s`);
    await sleep(sizes.settleSeconds * 1000);
    const quiet = await allQuiesced(nodes);
    progress(`${label}${quiet ? 'every group quiesced on every broker' : `not every group quiesced within ${QUIESCE_TIMEOUT_MS / 1000} s more`}`);
    const idle = await measureIdle(nodes, sizes.idleSeconds);
    progress(`${label}idle ${JSON.stringify(idle)}`);
    const result: ScaleResult = { partitions: topicCount * PARTITIONS_PER_TOPIC, topics: topicCount, createSeconds, idle };
    if (ledSeconds !== undefined) result.ledSeconds = ledSeconds;
    result.awaitedPublish = await awaitedPublish(connect, nodes, topics[0] as string);
    progress(`${label}awaited publish on one partition: p50 ${result.awaitedPublish.p50Us} µs, p99 ${result.awaitedPublish.p99Us} µs`);
    if (withFailover) {
      result.failover = await failover(nodes, topics);
      progress(`${label}failover ${JSON.stringify(result.failover)}`);
    }
    return result;
  } finally {
    await Promise.all(nodes.map((n) => n.process.stop()));
    removeTempDir(root);
  }
}

/** The `scale` figures at every size of `sizes.partitions`. */
export async function scale(connect: typeof Connect, sizes: ScaleSizes): Promise<ScaleResult[]> {
  const results: ScaleResult[] = [];
  for (const partitions of sizes.partitions) results.push(await scaleOnce(connect, partitions, sizes, true));
  return results;
}
