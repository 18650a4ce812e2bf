/**
 * The `cluster3` figures: three broker processes on loopback replicating
 * each partition with Raft (R=3), driven by one SDK client connected to all
 * three (poolSize 2). Quorum-acknowledged throughput and latency, and the
 * failover stall: SIGKILL of the partition leader under a steady publisher,
 * timed to the first acknowledged publish after it, over repeated kills.
 *
 * Storage: `fsync` gives every broker `--data` on the default layout,
 * `unified` (the segment log is the Raft log: each message written once,
 * docs/storage.md), written and fsynced before the ack with group commit
 * (`--fsync always`, the production default); `interval` adds `--fsync
 * interval` (written before the ack, fsynced on a timer); `split` and
 * `split-interval` are the same on `--storage-layout split` (Raft and
 * partition logs written separately); `memory` gives no `--data` (logs in
 * memory only). The failover run restarts each killed broker, which in memory
 * would come back with amnesia (no log, no vote), which Raft forbids: the
 * broker stops on a RaftInvariantError. So `failoverStall` runs in the disk
 * modes only.
 *
 * `replayFromDisk` (disk modes only) fills a partition, restarts every broker
 * so nothing is cached in memory, and times a fresh subscriber reading the
 * partition from `earliest`.
 */
import { join } from 'node:path';
import type { Message, RelayClient, connect as Connect } from '@relaymq/sdk';
import { PROTOCOL_VERSION, decodeBrokerFrame, encodeFrame, type BrokerFrame, type ClientFrame } from '@relaymq/sdk/protocol';
import WebSocket from 'ws';
import {
  describe,
  freePorts,
  makeTempDir,
  median,
  nowSeconds,
  progress,
  removeTempDir,
  sleep,
  spawnBroker,
  summarizeLatency,
  waitFor,
  type BrokerProcess,
  type LatencySummary,
} from './lib.js';
import { AckTimeline, type Sent as TimelineEntry } from './steady.js';
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

/**
 * Where the brokers keep their logs: on disk fsynced before the ack, on disk
 * fsynced on a timer (both on the default `unified` layout, or on `split`),
 * or in memory.
 */
export type ClusterStorage = 'fsync' | 'interval' | 'memory' | 'split' | 'split-interval';
/** Every storage mode, by name. */
export const ALL_CLUSTER_STORAGES: readonly ClusterStorage[] = ['fsync', 'interval', 'memory', 'split', 'split-interval'];
/** What `--cluster-storage all` runs (the `split` layout's modes only when asked for by name). */
export const CLUSTER_STORAGES: readonly ClusterStorage[] = ['fsync', 'interval', 'memory'];
/** The result key of each storage mode. */
export const CLUSTER_RESULT_KEYS = {
  fsync: 'cluster3',
  interval: 'cluster3Interval',
  memory: 'cluster3Memory',
  split: 'cluster3Split',
  'split-interval': 'cluster3SplitInterval',
} as const satisfies Record<ClusterStorage, string>;

/** Scenario names of the cluster, as keys of its result. */
export const CLUSTER_SCENARIOS = ['pipelined128B', 'pipelined1KiB', 'sequentialPublish', 'publishToDeliver', 'followerSeeded', 'failoverStall', 'replayFromDisk'] as const;
export type ClusterScenario = (typeof CLUSTER_SCENARIOS)[number];

/** Sizes of the cluster runs. */
export interface ClusterSizes extends ScenarioSizes {
  /** Messages (128 B) stored and then replayed by `replayFromDisk`. */
  replayMessages: number;
  /** Leader kills of the failover run. */
  failoverKills: number;
  /** Publishes in flight (each awaited by its own loop) during the failover run. */
  failoverWindow: number;
  /** Steady publishing before each kill, and after the killed broker rejoined. */
  failoverSteadyMs: number;
}

/** A pipelined run on the cluster: which broker led, and where the client was connected. */
export interface ClusterThroughput extends Throughput {
  /** The partition leader during the run (`brokerCpuPercent` is its CPU). */
  leader: string;
  /** True when the leader changed during the run (an election under load). */
  leaderChanged: boolean;
  /** Brokers the client held connections to; when the leader is not among them, a follower forwarded every publish. */
  clientConnectedTo: string[];
}

/** What the failover run found when reading the partition back. */
export interface FailoverCheck {
  /** Messages read back from the partition (from its first retained offset). */
  readBack: number;
  /** Acknowledged messages missing from the partition. */
  lost: number;
  /** Messages stored more than once. */
  duplicated: number;
  /** Messages stored after one published later. */
  outOfOrder: number;
  /** Acknowledged messages stored at another offset than their receipt said. */
  offsetMismatches: number;
}

export interface FailoverStall {
  kills: number;
  /** Per kill: from SIGKILL of the leader to the ack of the first publish started after it. */
  stallsMs: number[];
  medianMs: number;
  maxMs: number;
  /** Per kill: from SIGKILL until a surviving broker names a new leader (the election, seen from outside). */
  electedMs: number[];
  /** Per kill: the longest publish (call to ack) among those in flight at the kill or started during the stall. */
  longestPublishMs: number[];
  /** Per kill: from respawning the killed broker until it names the same leader as the others. */
  rejoinMs: number[];
  /** The broker killed each time. */
  killed: string[];
  published: number;
  acknowledged: number;
  /** Publishes that rejected (their outcome is unknown; none expected). */
  failed: number;
  /** SDK counters: messages sent again after a failover, and acks the broker marked duplicate. */
  republished: number;
  duplicateAcks: number;
  check: FailoverCheck;
  /** Set when the run stopped early; the figures above cover the kills before it. */
  error?: string;
}

/** Awaited publish latency on the cluster, and whether the client could publish to the leader directly. */
export interface ClusterLatency extends LatencySummary {
  leader: string;
  /** Brokers the client held connections to; when the leader is not among them, a follower forwarded every publish (two more hops). */
  clientConnectedTo: string[];
}

/**
 * Awaited publish latency of a client seeded with one follower of the
 * partition: `forwarded` cannot reach the leader (discovery off, one
 * connection: the follower forwards every publish, two more hops), `direct`
 * is a default client, which opens a link to the leader and publishes there.
 * Measured in alternating rounds on one cluster, so the ratio is of one run.
 */
export interface FollowerSeeded {
  leader: string;
  seed: string;
  forwarded: LatencySummary & { clientConnectedTo: string[] };
  direct: LatencySummary & { clientConnectedTo: string[] };
  /** `direct` p50 over `forwarded` p50. */
  p50Ratio: number;
}

export interface Cluster3Result {
  storage: ClusterStorage;
  pipelined128B?: ClusterThroughput;
  pipelined1KiB?: ClusterThroughput;
  sequentialPublish?: ClusterLatency;
  /** One message at a time, from `publish()` on one client to the handler of a subscriber on a second client (connected to broker `subscriberOn`; the subscription served by `servedBy`). */
  publishToDeliver?: ClusterLatency & { subscriberOn: string | undefined; servedBy?: string | undefined };
  followerSeeded?: FollowerSeeded;
  failoverStall?: FailoverStall;
  /** Disk modes only: a fresh subscriber reading a partition from `earliest` after every broker restarted. */
  replayFromDisk?: Replay;
}

const BROKER_IDS = ['c1', 'c2', 'c3'] as const;
/** How long a leader may take to appear (first election, or after a kill). */
const LEADER_TIMEOUT_MS = 15_000;
/** How long a restarted broker may take to rejoin. */
const REJOIN_TIMEOUT_MS = 30_000;
/** How long one failover may take before the run is declared broken. */
const STALL_TIMEOUT_MS = 30_000;
/** Poll interval of the leader probes. */
const PROBE_INTERVAL_MS = 10;

/**
 * A bare protocol connection asking one broker for a partition's leader (a
 * `metadata` request; the `topics` answer carries `leaders`). Kept open so a
 * probe during a failover costs one round trip, not a handshake.
 */
export class LeaderProbe {
  private nextId = 1;
  private readonly waiting = new Map<number, (frame: Extract<BrokerFrame, { type: 'topics' }>) => void>();
  /** Requests answered with an error frame. */
  private readonly refused = new Map<number, () => void>();
  private welcomed: (() => void) | undefined;
  private closed = false;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      let frame: BrokerFrame;
      try {
        frame = decodeBrokerFrame(data, 64 * 1024 * 1024);
      } catch {
        return;
      }
      if (frame.type === 'welcome') this.welcomed?.();
      if (frame.type === 'topics') {
        this.waiting.get(frame.id)?.(frame);
        this.waiting.delete(frame.id);
      }
      if (frame.type === 'error' && frame.id !== undefined) {
        this.refused.get(frame.id)?.();
        this.refused.delete(frame.id);
      }
    });
    ws.on('close', () => (this.closed = true));
    ws.on('error', () => (this.closed = true));
  }

  static async open(url: string, timeoutMs = 2000): Promise<LeaderProbe | undefined> {
    const ws = new WebSocket(url, { maxPayload: 0, handshakeTimeout: timeoutMs });
    ws.on('error', () => {});
    const opened = await new Promise<boolean>((resolve) => {
      ws.once('open', () => resolve(true));
      ws.once('error', () => resolve(false));
      ws.once('close', () => resolve(false));
    });
    if (!opened) {
      ws.terminate();
      return undefined;
    }
    const probe = new LeaderProbe(ws);
    const welcomed = new Promise<boolean>((resolve) => {
      probe.welcomed = () => resolve(true);
      setTimeout(() => resolve(false), timeoutMs);
    });
    probe.send({ type: 'hello', version: PROTOCOL_VERSION, clientId: 'bench-probe', producerId: 'bench-probe' });
    if (!(await welcomed)) {
      probe.close();
      return undefined;
    }
    return probe;
  }

  private send(frame: ClientFrame): void {
    this.ws.send(encodeFrame(frame));
  }

  /**
   * The `topics` answer for `topics` (a broker creates the ones it does not
   * know, with its default partition count); undefined on an error or timeout.
   */
  async topics(topics: readonly string[], timeoutMs = 30_000): Promise<Extract<BrokerFrame, { type: 'topics' }>['topics'] | undefined> {
    if (this.closed) return undefined;
    const id = this.nextId++;
    const answer = new Promise<Extract<BrokerFrame, { type: 'topics' }>['topics'] | undefined>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve(undefined);
      }, timeoutMs);
      this.waiting.set(id, (frame) => {
        clearTimeout(timer);
        this.refused.delete(id);
        resolve(frame.topics);
      });
      this.refused.set(id, () => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(undefined);
      });
    });
    this.send({ type: 'metadata', id, topics: [...topics] });
    return answer;
  }

  /** The leader of partition 0 of `topic` as this broker knows it; undefined when unknown or unreachable. */
  async leader(topic: string, timeoutMs = 2000): Promise<string | undefined> {
    if (this.closed) return undefined;
    const id = this.nextId++;
    const answer = new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve(undefined);
      }, timeoutMs);
      this.waiting.set(id, (frame) => {
        clearTimeout(timer);
        const leader = frame.topics[0]?.leaders?.[0];
        resolve(leader === undefined || leader === '' ? undefined : leader);
      });
    });
    this.send({ type: 'metadata', id, topics: [topic] });
    return answer;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.closed = true;
    this.ws.terminate();
  }
}

/** One broker of the cluster: fixed ports (so a restart comes back at the same address) and data directory. */
interface NodeSpec {
  id: string;
  clientPort: number;
  peerPort: number;
  dataDir: string | undefined;
}

/** Three broker processes forming one cluster. */
class Cluster {
  private readonly processes = new Map<string, BrokerProcess>();

  private constructor(
    readonly storage: ClusterStorage,
    private readonly root: string | undefined,
    private readonly specs: readonly NodeSpec[],
  ) {}

  static async start(storage: ClusterStorage): Promise<Cluster> {
    const ports = await freePorts(2 * BROKER_IDS.length);
    const root = storage === 'memory' ? undefined : makeTempDir('relaymq-bench-');
    const specs = BROKER_IDS.map((id, i) => ({
      id,
      clientPort: ports[i] as number,
      peerPort: ports[BROKER_IDS.length + i] as number,
      dataDir: root === undefined ? undefined : join(root, id),
    }));
    const cluster = new Cluster(storage, root, specs);
    try {
      await Promise.all(specs.map((spec) => cluster.spawn(spec)));
    } catch (err) {
      await cluster.close();
      throw err;
    }
    return cluster;
  }

  private async spawn(spec: NodeSpec): Promise<BrokerProcess> {
    const peers = this.specs.filter((other) => other !== spec).map((other) => `${other.id}@127.0.0.1:${other.peerPort}`);
    const args = ['--peer-port', String(spec.peerPort), '--peers', peers.join(',')];
    if (spec.dataDir !== undefined) args.push('--data', spec.dataDir);
    if (this.storage === 'interval' || this.storage === 'split-interval') args.push('--fsync', 'interval');
    // `fsync` and `interval` run the brokers' default layout (unified); the split layout is asked for by name.
    if (this.storage === 'split' || this.storage === 'split-interval') args.push('--storage-layout', 'split');
    const broker = await spawnBroker(spec.id, args, spec.clientPort);
    this.processes.set(spec.id, broker);
    return broker;
  }

  get urls(): string[] {
    return this.specs.map((spec) => `ws://127.0.0.1:${spec.clientPort}`);
  }

  get brokers(): BrokerProcess[] {
    return [...this.processes.values()];
  }

  broker(id: string): BrokerProcess {
    const broker = this.processes.get(id);
    if (broker === undefined) throw new Error(`no running broker ${id}`);
    return broker;
  }

  /** SIGKILL of one broker; the signal is sent before this returns its promise. */
  kill(id: string): Promise<void> {
    const broker = this.broker(id);
    this.processes.delete(id);
    return broker.kill();
  }

  /** Starts a killed broker again: same id, ports and data directory. */
  restart(id: string): Promise<BrokerProcess> {
    const spec = this.specs.find((s) => s.id === id);
    if (spec === undefined || this.processes.has(id)) throw new Error(`cannot restart ${id}`);
    return this.spawn(spec);
  }

  /**
   * Stops every broker (SIGTERM: a clean shutdown) and starts them again on
   * their data, so the next reads come from disk, not from memory.
   */
  async restartAll(): Promise<void> {
    await Promise.all(this.brokers.map((broker) => broker.stop()));
    this.processes.clear();
    await Promise.all(this.specs.map((spec) => this.spawn(spec)));
  }

  /**
   * The partition leader of `topic` once every running broker names the same
   * one (and it is running): a stable cluster, every member rejoined.
   */
  async agreedLeader(topic: string, timeoutMs = LEADER_TIMEOUT_MS): Promise<string> {
    const probes = new Map<string, LeaderProbe>();
    try {
      return await waitFor(
        async () => {
          const answers = await Promise.all(
            this.brokers.map(async (broker) => {
              let probe = probes.get(broker.id);
              if (probe === undefined || probe.isClosed) {
                probe = await LeaderProbe.open(broker.url);
                if (probe === undefined) return undefined;
                probes.set(broker.id, probe);
              }
              return probe.leader(topic);
            }),
          );
          const first = answers[0];
          return first !== undefined && this.processes.has(first) && answers.every((a) => a === first) ? first : undefined;
        },
        `the brokers to agree on a leader of ${topic}`,
        timeoutMs,
        25,
      );
    } finally {
      for (const probe of probes.values()) probe.close();
    }
  }

  /**
   * Stops every broker (SIGTERM, so `--cpu-prof` profiles get written; SIGKILL
   * after a grace period) and removes the data directory.
   */
  async close(): Promise<void> {
    const started = nowSeconds();
    await Promise.all(this.brokers.map((broker) => broker.stop()));
    progress(`cluster stopped in ${roundTo(nowSeconds() - started, 2)} s`);
    this.processes.clear();
    if (this.root !== undefined) removeTempDir(this.root);
  }
}

/** The SDK client of the cluster runs: connected to all three brokers, two pooled connections. */
function clusterClient(connect: typeof Connect, cluster: Cluster): Promise<RelayClient> {
  return connect({ brokers: cluster.urls, outbox: OUTBOX, poolSize: 2 });
}

async function clusterPipelined(
  connect: typeof Connect,
  cluster: Cluster,
  topic: string,
  size: number,
  count: number,
  sizes: ClusterSizes,
  settings: PublishSettings,
  label: string,
): Promise<ClusterThroughput> {
  const client = await clusterClient(connect, cluster);
  try {
    await client.publish(topic, new Uint8Array(size)); // creates the topic and its Raft group
    const leader = await cluster.agreedLeader(topic);
    const ordered = [cluster.broker(leader), ...cluster.brokers.filter((b) => b.id !== leader)];
    progress(`${label}leader of ${topic}: ${leader}; client connected to ${client.stats().connectedBrokers.map((b) => b.id).join(', ')}`);
    const result = await pipelined(client, ordered, topic, size, count, sizes, settings, label);
    const after = await cluster.agreedLeader(topic).catch(() => '?');
    return { ...result, leader, leaderChanged: after !== leader, clientConnectedTo: client.stats().connectedBrokers.map((b) => b.id).sort() };
  } finally {
    await client.close();
  }
}

async function clusterSequential(connect: typeof Connect, cluster: Cluster, sizes: ClusterSizes, settings: PublishSettings, label: string): Promise<ClusterLatency> {
  const client = await clusterClient(connect, cluster);
  try {
    const topic = 'bench.cluster.sequential';
    await client.publish(topic, new Uint8Array(128));
    const leader = await cluster.agreedLeader(topic);
    progress(`${label}leader of ${topic}: ${leader}; client connected to ${client.stats().connectedBrokers.map((b) => b.id).join(', ')}`);
    const latency = await sequentialPublish(client, topic, sizes, settings, label);
    return { ...latency, leader, clientConnectedTo: client.stats().connectedBrokers.map((b) => b.id).sort() };
  } finally {
    await client.close();
  }
}

/** Where {@link clusterPublishToDeliver}'s subscriber connects: `any` (a default client: a broker of its pool's choosing), or pinned to the partition's `leader` or a `follower`. */
type SubscriberPlacement = 'any' | 'leader' | 'follower';

function subscriberPlacement(): SubscriberPlacement {
  const placement = process.env.RELAYMQ_BENCH_SUBSCRIBER ?? 'any';
  if (placement !== 'any' && placement !== 'leader' && placement !== 'follower') throw new Error(`RELAYMQ_BENCH_SUBSCRIBER must be any, leader or follower, not ${placement}`);
  return placement;
}

/**
 * One message at a time from `publish()` on one cluster client to the handler on a second one. The
 * subscriber's broker decides the path (on the leader: delivered once applied there; on a follower:
 * once the leader's commit notice reached it), so the result names it (`subscriberOn`).
 */
async function clusterPublishToDeliver(connect: typeof Connect, cluster: Cluster, sizes: ClusterSizes, settings: PublishSettings, label: string): Promise<ClusterLatency & { subscriberOn: string | undefined; servedBy?: string | undefined }> {
  const publisher = await clusterClient(connect, cluster);
  let subscriber: RelayClient | undefined;
  try {
    const topic = 'bench.cluster.deliver';
    await publisher.publish(topic, new Uint8Array(128));
    const leader = await cluster.agreedLeader(topic);
    const placement = subscriberPlacement();
    const pinned = placement === 'leader' ? cluster.broker(leader) : placement === 'follower' ? cluster.brokers.find((b) => b.id !== leader) : undefined;
    subscriber = pinned === undefined ? await clusterClient(connect, cluster) : await connect({ brokers: [pinned.url], outbox: OUTBOX, poolSize: 1, discovery: false });
    const subscriberOn = subscriber.stats().activeBroker?.id;
    progress(`${label}leader of ${topic}: ${leader}; publisher connected to ${publisher.stats().connectedBrokers.map((b) => b.id).join(', ')}; subscriber on ${subscriberOn} (${placement})`);
    const latency = await publishToDeliver(publisher, subscriber, topic, sizes, settings);
    return { ...latency, leader, clientConnectedTo: publisher.stats().connectedBrokers.map((b) => b.id).sort(), subscriberOn };
  } finally {
    await Promise.all([publisher.close(), subscriber?.close()]);
  }
}

/** Rounds of {@link followerSeeded}, alternating forwarded and direct. */
const FOLLOWER_SEEDED_ROUNDS = 4;

async function followerSeeded(connect: typeof Connect, cluster: Cluster, sizes: ClusterSizes, settings: PublishSettings, label: string): Promise<FollowerSeeded> {
  const topic = 'bench.cluster.follower';
  const setup = await clusterClient(connect, cluster);
  await setup.publish(topic, new Uint8Array(128)).finally(() => setup.close());
  const leader = await cluster.agreedLeader(topic);
  const seed = cluster.brokers.find((b) => b.id !== leader) as BrokerProcess;
  progress(`${label}leader of ${topic}: ${leader}; clients seeded with follower ${seed.id}`);
  const clients = {
    forwarded: await connect({ brokers: [seed.url], outbox: OUTBOX, poolSize: 1, discovery: false }),
    direct: await connect({ brokers: [seed.url], outbox: OUTBOX }),
  };
  try {
    const samples = { forwarded: [] as number[], direct: [] as number[] };
    // Warm-up spread over the rounds like the samples: the brokers warm up across them.
    const perRound = { ...sizes, latencySamples: Math.ceil(sizes.latencySamples / FOLLOWER_SEEDED_ROUNDS), latencyWarmup: Math.ceil(sizes.latencyWarmup / FOLLOWER_SEEDED_ROUNDS) };
    for (let round = 0; round < FOLLOWER_SEEDED_ROUNDS; round++) {
      for (const kind of ['forwarded', 'direct'] as const) {
        await sequentialPublish(clients[kind], topic, perRound, settings, `${label}${kind} round ${round + 1}: `, samples[kind]);
      }
    }
    const summarize = (kind: 'forwarded' | 'direct'): LatencySummary & { clientConnectedTo: string[] } => ({
      ...summarizeLatency(samples[kind]),
      clientConnectedTo: clients[kind].stats().connectedBrokers.map((b) => b.id).sort(),
    });
    const forwarded = summarize('forwarded');
    const direct = summarize('direct');
    progress(`${label}follower-seeded p50: forwarded ${forwarded.p50Us} µs, direct ${direct.p50Us} µs`);
    return { leader, seed: seed.id, forwarded, direct, p50Ratio: roundTo(direct.p50Us / forwarded.p50Us, 3) };
  } finally {
    await Promise.all([clients.forwarded.close(), clients.direct.close()]);
  }
}

/**
 * Fills a partition with `replayMessages` messages of 128 B, restarts every
 * broker, and times a fresh client reading the partition from `earliest`.
 */
async function clusterReplay(connect: typeof Connect, cluster: Cluster, sizes: ClusterSizes, settings: PublishSettings, label: string): Promise<Replay> {
  const topic = 'bench.cluster.replay';
  const publisher = await clusterClient(connect, cluster);
  try {
    await fillTopic(publisher, topic, 128, sizes.replayMessages, settings, label);
  } finally {
    await publisher.close();
  }
  const started = nowSeconds();
  await cluster.restartAll();
  const leader = await cluster.agreedLeader(topic);
  progress(`${label}replay: brokers restarted in ${roundTo(nowSeconds() - started, 2)} s, leader ${leader}`);
  const reader = await clusterClient(connect, cluster);
  try {
    return await replayFromEarliest(reader, cluster.brokers, topic, 128, sizes.replayMessages, label);
  } finally {
    await reader.close();
  }
}

/** One publish of the failover run, with the offset its receipt named. */
interface Sent extends TimelineEntry {
  offset: number | undefined;
}

/**
 * `failoverWindow` loops each awaiting one publish after another (each
 * payload carries its sequence number), until stopped.
 */
class SteadyPublisher extends AckTimeline<Sent> {
  failed = 0;
  firstError: string | undefined;
  private stopped = false;
  private readonly loops: Array<Promise<void>>;

  constructor(
    private readonly client: RelayClient,
    private readonly topic: string,
    window: number,
    private readonly settings: PublishSettings,
  ) {
    super();
    this.loops = Array.from({ length: window }, () => this.loop());
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const seq = this.sent.length;
      const data = new Uint8Array(64);
      new DataView(data.buffer).setUint32(0, seq);
      const sent: Sent = { startedAt: performance.now(), ackedAt: undefined, offset: undefined };
      this.sent.push(sent);
      try {
        const receipt = await this.client.publish(this.topic, data, { ack: this.settings.ack });
        sent.offset = receipt.offset;
        this.acked(sent);
      } catch (err) {
        this.failed++;
        this.firstError ??= describe(err);
      }
    }
  }

  /** Stops starting publishes and waits for those in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }
}

/** Reads the whole partition back (from `earliest`) and checks it against the receipts. */
async function checkPartition(connect: typeof Connect, cluster: Cluster, topic: string, sent: readonly Sent[], label: string): Promise<FailoverCheck> {
  const reader = await connect({ brokers: cluster.urls, poolSize: 1 });
  try {
    const stored: Array<{ seq: number; offset: number }> = [];
    let lastAt = performance.now();
    await reader.subscribe<Uint8Array>(
      topic,
      (message: Message<Uint8Array>) => {
        lastAt = performance.now();
        if (message.data.byteLength !== 64) return; // the topic-creating message
        stored.push({ seq: new DataView(message.data.buffer, message.data.byteOffset, message.data.byteLength).getUint32(0), offset: message.offset });
      },
      { from: 'earliest' },
    );
    const ackedCount = sent.reduce((n, s) => n + (s.ackedAt === undefined ? 0 : 1), 0);
    progress(`${label}reading the partition back (${ackedCount} acknowledged)`);
    // Everything acknowledged, then one quiet second (unacknowledged publishes may have been stored too).
    const deadline = performance.now() + 60_000;
    while (performance.now() < deadline && (stored.length < ackedCount || performance.now() - lastAt < 1000)) await sleep(50);
    const firstOffset = stored[0]?.offset ?? 0;
    const offsetsBySeq = new Map<number, number[]>();
    let outOfOrder = 0;
    let previous = -1;
    for (const { seq, offset } of stored) {
      const offsets = offsetsBySeq.get(seq);
      if (offsets === undefined) offsetsBySeq.set(seq, [offset]);
      else offsets.push(offset);
      if (seq <= previous) outOfOrder++;
      previous = Math.max(previous, seq);
    }
    let lost = 0;
    let offsetMismatches = 0;
    sent.forEach((s, seq) => {
      if (s.ackedAt === undefined || s.offset === undefined || s.offset < firstOffset) return;
      const offsets = offsetsBySeq.get(seq);
      if (offsets === undefined) lost++;
      else if (!offsets.includes(s.offset)) offsetMismatches++;
    });
    let duplicated = 0;
    for (const offsets of offsetsBySeq.values()) duplicated += offsets.length - 1;
    return { readBack: stored.length, lost, duplicated, outOfOrder, offsetMismatches };
  } finally {
    await reader.close();
  }
}

/**
 * Repeated leader kills under a steady publisher: for each, SIGKILL the
 * partition leader, time the first acknowledged publish started after the
 * kill, restart the killed broker on its data directory and wait until it
 * rejoined (it names the same leader as the others).
 */
async function failoverStall(connect: typeof Connect, cluster: Cluster, sizes: ClusterSizes, settings: PublishSettings, label: string): Promise<FailoverStall> {
  const topic = 'bench.cluster.failover';
  const client = await clusterClient(connect, cluster);
  const stalls: number[] = [];
  const electedMs: number[] = [];
  const longestPublishMs: number[] = [];
  const rejoinMs: number[] = [];
  const killed: string[] = [];
  let error: string | undefined;
  let publisher: SteadyPublisher | undefined;
  try {
    await client.publish(topic, new Uint8Array(8)); // creates the topic
    publisher = new SteadyPublisher(client, topic, sizes.failoverWindow, settings);
    for (let kill = 1; kill <= sizes.failoverKills; kill++) {
      await sleep(sizes.failoverSteadyMs);
      const leader = await cluster.agreedLeader(topic);
      const survivor = cluster.brokers.find((b) => b.id !== leader) as BrokerProcess;
      const probe = await LeaderProbe.open(survivor.url);
      if (probe === undefined) throw new Error(`cannot reach ${survivor.id}`);
      const acked0 = publisher.acknowledged;
      const killAt = performance.now();
      const killing = cluster.kill(leader);
      killed.push(leader);
      // The election as seen from a survivor, polled while the publisher waits.
      const elected = waitFor(
        async () => {
          const now = await probe.leader(topic, 500);
          return now !== undefined && now !== leader ? performance.now() : undefined;
        },
        `a new leader of ${topic}`,
        STALL_TIMEOUT_MS,
        PROBE_INTERVAL_MS,
      ).finally(() => probe.close());
      const ackedAt = await publisher.firstAckStartedAfter(killAt, STALL_TIMEOUT_MS);
      const stall = ackedAt - killAt;
      await killing;
      const electedAt = await elected;
      const longest = publisher.sent
        .filter((s) => (s.ackedAt === undefined || s.ackedAt >= killAt) && s.startedAt <= ackedAt)
        .reduce((max, s) => Math.max(max, (s.ackedAt ?? performance.now()) - s.startedAt), 0);
      stalls.push(roundTo(stall, 1));
      electedMs.push(roundTo(electedAt - killAt, 1));
      longestPublishMs.push(roundTo(longest, 1));
      const restartAt = performance.now();
      await cluster.restart(leader);
      const now = await cluster.agreedLeader(topic, REJOIN_TIMEOUT_MS);
      rejoinMs.push(roundTo(performance.now() - restartAt, 1));
      progress(
        `${label}kill ${kill}/${sizes.failoverKills}: leader ${leader} SIGKILLed; stall ${roundTo(stall, 1)} ms ` +
          `(new leader named after ${roundTo(electedAt - killAt, 1)} ms, ${publisher.acknowledged - acked0} acks since); ` +
          `${leader} rejoined in ${rejoinMs[rejoinMs.length - 1]} ms, leader now ${now}`,
      );
    }
    await sleep(sizes.failoverSteadyMs);
  } catch (err) {
    error = describe(err);
    progress(`${label}failover run stopped: ${error}`);
  }
  const sent = publisher === undefined ? [] : (await publisher.stop(), publisher.sent);
  const stats = client.stats().publish;
  await client.close();
  const check = await checkPartition(connect, cluster, topic, sent, label).catch((err: unknown): FailoverCheck => {
    error ??= `read-back failed: ${describe(err)}`;
    return { readBack: 0, lost: Number.NaN, duplicated: Number.NaN, outOfOrder: Number.NaN, offsetMismatches: Number.NaN };
  });
  if (publisher?.firstError !== undefined) progress(`${label}first failed publish: ${publisher.firstError}`);
  const acknowledged = sent.reduce((n, s) => n + (s.ackedAt === undefined ? 0 : 1), 0);
  const result: FailoverStall = {
    kills: stalls.length,
    stallsMs: stalls,
    medianMs: roundTo(median(stalls), 1),
    maxMs: roundTo(Math.max(...stalls), 1),
    electedMs,
    longestPublishMs,
    rejoinMs,
    killed,
    published: sent.length,
    acknowledged,
    failed: publisher?.failed ?? 0,
    republished: stats.republished,
    duplicateAcks: stats.duplicates,
    check,
  };
  if (error !== undefined) result.error = error;
  progress(
    `${label}failover: median ${result.medianMs} ms, max ${result.maxMs} ms; ${acknowledged}/${sent.length} acknowledged, ${result.failed} failed; ` +
      `read back ${check.readBack}: lost ${check.lost}, duplicated ${check.duplicated}, out of order ${check.outOfOrder}, offset mismatches ${check.offsetMismatches}`,
  );
  return result;
}

/**
 * The cluster figures for one storage mode, each scenario on a fresh cluster
 * (the logs keep every message, so a reused cluster would carry the heap of
 * earlier scenarios into later ones).
 */
export async function cluster3(
  connect: typeof Connect,
  storage: ClusterStorage,
  sizes: ClusterSizes,
  settings: PublishSettings,
  only: ReadonlySet<ClusterScenario>,
): Promise<Cluster3Result> {
  const label = `cluster3/${storage}: `;
  const withCluster = async <T>(scenario: ClusterScenario, run: (cluster: Cluster) => Promise<T>): Promise<T> => {
    const started = nowSeconds();
    const cluster = await Cluster.start(storage);
    progress(`${label}${scenario}: brokers ${cluster.brokers.map((b) => `${b.id} (pid ${b.pid}) ${b.url}`).join(', ')}, started in ${roundTo(nowSeconds() - started, 2)} s`);
    try {
      return await run(cluster);
    } finally {
      await cluster.close();
    }
  };
  const result: Cluster3Result = { storage };
  if (only.has('pipelined128B')) {
    result.pipelined128B = await withCluster('pipelined128B', (cluster) =>
      clusterPipelined(connect, cluster, 'bench.cluster.b128', 128, sizes.pipelined128B, sizes, settings, label),
    );
  }
  if (only.has('pipelined1KiB')) {
    result.pipelined1KiB = await withCluster('pipelined1KiB', (cluster) =>
      clusterPipelined(connect, cluster, 'bench.cluster.kib1', 1024, sizes.pipelined1KiB, sizes, settings, label),
    );
  }
  if (only.has('sequentialPublish')) {
    result.sequentialPublish = await withCluster('sequentialPublish', (cluster) => clusterSequential(connect, cluster, sizes, settings, label));
  }
  if (only.has('publishToDeliver')) {
    result.publishToDeliver = await withCluster('publishToDeliver', (cluster) => clusterPublishToDeliver(connect, cluster, sizes, settings, label));
  }
  if (only.has('followerSeeded')) {
    result.followerSeeded = await withCluster('followerSeeded', (cluster) => followerSeeded(connect, cluster, sizes, settings, label));
  }
  if (only.has('failoverStall') && storage !== 'memory') {
    result.failoverStall = await withCluster('failoverStall', (cluster) => failoverStall(connect, cluster, sizes, settings, label));
  }
  if (only.has('replayFromDisk') && storage !== 'memory') {
    result.replayFromDisk = await withCluster('replayFromDisk', (cluster) => clusterReplay(connect, cluster, sizes, settings, label));
  }
  return result;
}
