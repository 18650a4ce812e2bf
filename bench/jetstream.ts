/**
 * The cluster scenarios of bench/cluster.ts run against NATS JetStream (three
 * `nats-server` processes, one R3 file-storage stream) with the official
 * client (`nats`): pipelined publish, awaited publish, publish → deliver,
 * failover stall, replay. Each scenario runs on a fresh cluster, as relaymq's
 * do. JetStream acknowledges a publish once the stream leader and a quorum
 * stored it, before any fsync (nats-server syncs its files on a timer).
 */
import { createRequire } from 'node:module';
import { DeliverPolicy, createInbox, type JetStreamClient, type NatsConnection } from 'nats';
import { JetStreamCluster, STREAM, poll } from './jetstream-cluster.js';
import { describe, median, nowSeconds, ownCpuSeconds, payload, processCpuSeconds, progress, sleep, summarizeLatency, type LatencySummary } from './lib.js';
import { AckTimeline, type Sent } from './steady.js';
import { pipelinedRounds, rate, roundTo, type PublishSettings, type Replay, type Throughput } from './scenarios.js';
import type { ClusterScenario, ClusterSizes } from './cluster.js';

/** Where the client was connected: JetStream forwards a publish from any server to the stream leader. */
interface Placement {
  /** The stream leader's server. */
  leader: string;
  /** The server the client was connected to (the leader, tried first, unless said otherwise). */
  clientConnectedTo: string | undefined;
}

/** A pipelined run: with `js.publish()` (the client's JetStream API), and with core publishes whose acks come to one inbox (its leanest path). */
export interface JetStreamThroughput {
  jsPublish: Throughput & Placement;
  replyInbox: Throughput & Placement;
  /** The better of the two: what relaymq is compared with. */
  msgPerSec: number;
}

export interface JetStreamFailover {
  kills: number;
  /** Per kill: from SIGKILL of the stream leader's server to the ack of the first publish started after it. */
  stallsMs: number[];
  medianMs: number;
  maxMs: number;
  /**
   * Per kill: until a surviving server names another stream leader through the
   * JetStream API, which also waits for the meta group's leader (killed too
   * when it was on the same server), so this can come after the first ack.
   */
  electedMs: number[];
  /** Per kill: from restarting the killed server until the stream has a leader and both replicas current. */
  rejoinMs: number[];
  killed: string[];
  /** Logical publishes started (each retried with the same msgID until acknowledged), acknowledged, and attempts sent again. */
  published: number;
  acknowledged: number;
  retried: number;
  /**
   * Read back from the stream: acknowledged messages missing, stored twice, and
   * stored after one with a higher sequence number (the loops publish
   * concurrently and retry, so this counts interleaving, not a fault).
   */
  check: { readBack: number; lost: number; duplicated: number; outOfOrder: number };
  error?: string;
}

export interface JetStreamResult {
  server: string;
  client: string;
  /** What a JetStream ack means in this run. */
  durability: string;
  pipelined128B?: JetStreamThroughput;
  pipelined1KiB?: JetStreamThroughput;
  sequentialPublish?: LatencySummary & Placement;
  publishToDeliver?: LatencySummary & Placement;
  failoverStall?: JetStreamFailover;
  replayFromDisk?: Replay;
}

const LABEL = 'jetstream: ';
/** One attempt of a failover-run publish; a timed-out attempt is sent again with the same msgID (deduplicated by the stream). */
const ATTEMPT_TIMEOUT_MS = 250;
/** How long one logical publish, a failover, or a read may take before the run is declared broken. */
const STALL_TIMEOUT_MS = 30_000;
const READ_TIMEOUT_MS = 120_000;


/** The leader's process first, then the others: `brokerCpuPercent` is the leader's. */
function serversOf(cluster: JetStreamCluster, leader: string): Array<{ id: string; pid: number }> {
  const pids = cluster.pids;
  return Object.keys(pids)
    .sort((a, b) => (a === leader ? -1 : b === leader ? 1 : a.localeCompare(b)))
    .map((id) => ({ id, pid: pids[id] as number }));
}

/** `js.publish()` keeping at most `window` unacknowledged. */
function jsWindowed(js: JetStreamClient, subject: string, data: Uint8Array, count: number, window: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let started = 0;
    let acknowledged = 0;
    let failed = false;
    const onAck = (): void => {
      if (++acknowledged === count) resolve();
      else fill();
    };
    const onError = (err: unknown): void => {
      if (!failed) reject(err);
      failed = true;
    };
    const fill = (): void => {
      while (!failed && started < count && started - acknowledged < window) {
        started++;
        js.publish(subject, data).then(onAck, onError);
      }
    };
    if (count === 0) resolve();
    else fill();
  });
}

/**
 * Core publishes to the stream's subject with one reply inbox, keeping at most
 * `window` unacknowledged: each PubAck arriving on the inbox lets one more go.
 * No per-publish promise, timer or inbox: the leanest way to publish to a
 * stream with the client.
 */
function inboxWindowed(nc: NatsConnection, subject: string, data: Uint8Array, count: number, window: number): Promise<void> {
  const inbox = createInbox();
  const decoder = new TextDecoder();
  return new Promise<void>((resolve, reject) => {
    let started = 0;
    let acknowledged = 0;
    const timer = setTimeout(() => finish(new Error(`${acknowledged}/${count} PubAcks after ${READ_TIMEOUT_MS} ms`)), READ_TIMEOUT_MS);
    const subscription = nc.subscribe(inbox, {
      callback: (err, msg) => {
        // A PubAck is {"stream":...,"seq":...}; an error is {"error":...} or a status message without data.
        if (err !== null || msg.data.length === 0 || decoder.decode(msg.data.subarray(0, 8)) === '{"error"') {
          finish(new Error(`publish failed: ${err?.message ?? decoder.decode(msg.data)}`));
          return;
        }
        if (++acknowledged === count) finish();
        else fill();
      },
    });
    const finish = (err?: Error): void => {
      clearTimeout(timer);
      subscription.unsubscribe();
      if (err === undefined) resolve();
      else reject(err);
    };
    const fill = (): void => {
      while (started < count && started - acknowledged < window) {
        started++;
        nc.publish(subject, data, { reply: inbox });
      }
    };
    if (count === 0) finish();
    else fill();
  });
}

async function pipelined(cluster: JetStreamCluster, size: number, count: number, sizes: ClusterSizes, settings: PublishSettings): Promise<JetStreamThroughput> {
  const leader = await cluster.settled();
  const nc = await cluster.connect(leader);
  try {
    const js = nc.jetstream();
    const placement = { leader, clientConnectedTo: nc.info?.server_name };
    const servers = serversOf(cluster, leader);
    const subject = `bench.pipelined.${size}`;
    const note = `, window ${settings.window}`;
    const jsPublish = await pipelinedRounds(
      (data, n) => jsWindowed(js, subject, data, n, settings.window),
      servers,
      size,
      count,
      sizes,
      `${LABEL}pipelined ${size} B js.publish: `,
      note,
    );
    const replyInbox = await pipelinedRounds(
      (data, n) => inboxWindowed(nc, subject, data, n, settings.window),
      servers,
      size,
      count,
      sizes,
      `${LABEL}pipelined ${size} B reply inbox: `,
      note,
    );
    return {
      jsPublish: { ...jsPublish, ...placement },
      replyInbox: { ...replyInbox, ...placement },
      msgPerSec: Math.max(jsPublish.msgPerSec, replyInbox.msgPerSec),
    };
  } finally {
    await nc.close();
  }
}

/** `await js.publish()` of 128 B one at a time, the client connected to the stream leader. */
async function sequentialPublish(cluster: JetStreamCluster, sizes: ClusterSizes): Promise<LatencySummary & Placement> {
  const leader = await cluster.settled();
  const nc = await cluster.connect(leader);
  try {
    const js = nc.jetstream();
    const data = payload(128);
    progress(`${LABEL}sequential publish: ${sizes.latencySamples} samples, client on ${nc.info?.server_name}, leader ${leader}`);
    for (let i = 0; i < sizes.latencyWarmup; i++) await js.publish('bench.sequential', data);
    const samplesMs: number[] = [];
    for (let i = 0; i < sizes.latencySamples; i++) {
      const start = performance.now();
      await js.publish('bench.sequential', data);
      samplesMs.push(performance.now() - start);
    }
    const summary = summarizeLatency(samplesMs);
    progress(`  p50 ${summary.p50Us} µs, p99 ${summary.p99Us} µs`);
    return { ...summary, leader, clientConnectedTo: nc.info?.server_name };
  } finally {
    await nc.close();
  }
}

/**
 * One message at a time, from `js.publish()` on one connection to the
 * callback of an ordered consumer (new messages only) on a second one; both
 * connected to the stream leader. The payload carries its sequence number.
 */
async function publishToDeliver(cluster: JetStreamCluster, sizes: ClusterSizes): Promise<LatencySummary & Placement> {
  const leader = await cluster.settled();
  const subject = 'bench.deliver';
  const publisher = await cluster.connect(leader);
  const subscriber = await cluster.connect(leader);
  try {
    progress(`${LABEL}publish→deliver: ${sizes.latencySamples} samples`);
    let waiting: { seq: number; delivered: (atMs: number) => void } | undefined;
    const consumer = await subscriber.jetstream().consumers.get(STREAM, { filterSubjects: subject, deliver_policy: DeliverPolicy.New });
    const messages = await consumer.consume({
      callback: (msg) => {
        const atMs = performance.now();
        const seq = new DataView(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength).getUint32(0);
        if (waiting !== undefined && waiting.seq === seq) waiting.delivered(atMs);
      },
    });
    const js = publisher.jetstream();
    const samplesMs: number[] = [];
    try {
      const total = sizes.latencyWarmup + sizes.latencySamples;
      for (let seq = 0; seq < total; seq++) {
        const data = payload(128);
        new DataView(data.buffer).setUint32(0, seq);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const delivered = new Promise<number>((resolve, reject) => {
          waiting = { seq, delivered: resolve };
          timer = setTimeout(() => reject(new Error(`message ${seq} not delivered within ${STALL_TIMEOUT_MS} ms`)), STALL_TIMEOUT_MS);
        });
        const start = performance.now();
        const [, atMs] = await Promise.all([js.publish(subject, data), delivered]).finally(() => clearTimeout(timer));
        if (seq >= sizes.latencyWarmup) samplesMs.push(atMs - start);
      }
    } finally {
      await messages.close();
    }
    const summary = summarizeLatency(samplesMs);
    progress(`  p50 ${summary.p50Us} µs, p99 ${summary.p99Us} µs`);
    return { ...summary, leader, clientConnectedTo: publisher.info?.server_name };
  } finally {
    await Promise.all([publisher.close(), subscriber.close()]);
  }
}

/**
 * Reads `subject` from the start of the stream with an ordered consumer and
 * calls `onMessage` for each message, until `count` arrived; resolves with
 * the arrival times of the first and the last.
 */
async function readAll(nc: NatsConnection, subject: string, count: number, onMessage: (data: Uint8Array) => void): Promise<{ firstAt: number; lastAt: number }> {
  // No deliver_policy: the ordered consumer starts at sequence 1 (with `All` as well, it would also send opt_start_seq, which the server refuses).
  const consumer = await nc.jetstream().consumers.get(STREAM, { filterSubjects: subject });
  let received = 0;
  let firstAt = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let messages: Awaited<ReturnType<typeof consumer.consume>> | undefined;
  try {
    const lastAt = await new Promise<number>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`read ${received}/${count} messages in ${READ_TIMEOUT_MS} ms`)), READ_TIMEOUT_MS);
      consumer
        .consume({
          max_messages: 1_000,
          callback: (msg) => {
            received++;
            if (received === 1) firstAt = nowSeconds();
            onMessage(msg.data);
            if (received === count) resolve(nowSeconds());
          },
        })
        .then((m) => (messages = m), reject);
      if (count === 0) resolve(nowSeconds());
    });
    return { firstAt, lastAt };
  } finally {
    clearTimeout(timer);
    await messages?.close();
  }
}

/** Messages stored for `subject`, from the stream's state. */
async function storedCount(nc: NatsConnection, subject: string): Promise<number> {
  const info = await (await nc.jetstreamManager()).streams.info(STREAM, { subjects_filter: subject });
  return info.state.subjects?.[subject] ?? 0;
}

/** Fills `subject` with `count` messages of 128 B, restarts every server, and times a fresh connection reading them from the start. */
async function replay(cluster: JetStreamCluster, sizes: ClusterSizes, settings: PublishSettings): Promise<Replay> {
  const subject = 'bench.replay';
  const count = sizes.replayMessages;
  const publisher = await cluster.connect(await cluster.settled());
  try {
    progress(`${LABEL}replay: publishing ${count} messages of 128 B`);
    await inboxWindowed(publisher, subject, payload(128), count, settings.window);
  } finally {
    await publisher.close();
  }
  const restarted = nowSeconds();
  await cluster.restartAll();
  const leader = await cluster.settled();
  progress(`${LABEL}replay: servers restarted in ${roundTo(nowSeconds() - restarted, 2)} s, leader ${leader}; reading ${count} messages`);
  const reader = await cluster.connect(leader);
  try {
    const servers = serversOf(cluster, leader);
    const cpu0 = servers.map((s) => processCpuSeconds(s.pid));
    const clientCpu0 = ownCpuSeconds();
    const start = nowSeconds();
    const { firstAt, lastAt } = await readAll(reader, subject, count, () => {});
    const seconds = lastAt - start;
    const cpu = (i: number, pid: number): number | undefined => {
      const before = cpu0[i];
      const after = processCpuSeconds(pid);
      return before === undefined || after === undefined ? undefined : Math.round((100 * (after - before)) / seconds);
    };
    const result: Replay = {
      ...rate(count, 128, seconds),
      firstMessageMs: roundTo((firstAt - start) * 1000, 1),
      credit: 1_000,
      clientCpuPercent: Math.round((100 * (ownCpuSeconds() - clientCpu0)) / seconds),
      brokersCpuPercent: Object.fromEntries(servers.map((s, i) => [s.id, cpu(i, s.pid)])),
    };
    progress(`  ${result.msgPerSec} msg/s (first message after ${result.firstMessageMs} ms)`);
    return result;
  } finally {
    await reader.close();
  }
}

/**
 * `window` loops, each publishing one message after another (payload: its
 * sequence number; msgID: the same). An attempt that fails or times out
 * ({@link ATTEMPT_TIMEOUT_MS}) is sent again with the same msgID, which the
 * stream deduplicates, as the relaymq SDK resends with the same producer seq.
 * A publish counts from its first attempt to its ack.
 */
class SteadyPublisher extends AckTimeline<Sent> {
  retried = 0;
  private stopped = false;
  private readonly loops: Array<Promise<void>>;

  constructor(
    private readonly js: JetStreamClient,
    private readonly subject: string,
    window: number,
  ) {
    super();
    this.loops = Array.from({ length: window }, () => this.loop());
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const seq = this.sent.length;
      const data = new Uint8Array(64);
      new DataView(data.buffer).setUint32(0, seq);
      const sent: Sent = { startedAt: performance.now(), ackedAt: undefined };
      this.sent.push(sent);
      for (let attempt = 0; sent.ackedAt === undefined && performance.now() - sent.startedAt < STALL_TIMEOUT_MS; attempt++) {
        if (attempt > 0) this.retried++;
        try {
          await this.js.publish(this.subject, data, { msgID: String(seq), timeout: ATTEMPT_TIMEOUT_MS });
          this.acked(sent);
        } catch {
          // No responders answer at once while the stream has no leader: do not spin.
          await sleep(10);
        }
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }
}

/**
 * Repeated SIGKILLs of the stream leader's server under `failoverWindow`
 * publishing loops: each timed to the ack of the first publish started after
 * it; the killed server is restarted on its store and caught up before the
 * next kill. The client lists every server and reconnects every 100 ms.
 */
async function failoverStall(cluster: JetStreamCluster, sizes: ClusterSizes): Promise<JetStreamFailover> {
  const subject = 'bench.failover';
  const nc = await cluster.connect();
  const stalls: number[] = [];
  const electedMs: number[] = [];
  const rejoinMs: number[] = [];
  const killed: string[] = [];
  let error: string | undefined;
  const publisher = new SteadyPublisher(nc.jetstream(), subject, sizes.failoverWindow);
  try {
    for (let kill = 1; kill <= sizes.failoverKills; kill++) {
      await sleep(sizes.failoverSteadyMs);
      const leader = await cluster.settled();
      const acked0 = publisher.acknowledged;
      const killAt = performance.now();
      const killing = cluster.kill(leader);
      killed.push(leader);
      const elected = poll(async () => {
        const now = await cluster.leader();
        return now !== undefined && now !== leader ? performance.now() : undefined;
      }, `another leader of ${STREAM}`, STALL_TIMEOUT_MS);
      const ackedAt = await publisher.firstAckStartedAfter(killAt, STALL_TIMEOUT_MS);
      await killing;
      const electedAt = await elected;
      stalls.push(roundTo(ackedAt - killAt, 1));
      electedMs.push(roundTo(electedAt - killAt, 1));
      const restartAt = performance.now();
      await cluster.restart(leader);
      const now = await cluster.settled();
      rejoinMs.push(roundTo(performance.now() - restartAt, 1));
      progress(
        `${LABEL}kill ${kill}/${sizes.failoverKills}: leader ${leader} SIGKILLed; stall ${stalls[stalls.length - 1]} ms ` +
          `(new leader named after ${electedMs[electedMs.length - 1]} ms, ${publisher.acknowledged - acked0} acks since); ` +
          `${leader} caught up in ${rejoinMs[rejoinMs.length - 1]} ms, leader now ${now}`,
      );
    }
    await sleep(sizes.failoverSteadyMs);
  } catch (err) {
    error = describe(err);
    progress(`${LABEL}failover run stopped: ${error}`);
  }
  await publisher.stop();
  const sent = publisher.sent;
  const acknowledged = publisher.acknowledged;
  let check: JetStreamFailover['check'] = { readBack: 0, lost: Number.NaN, duplicated: Number.NaN, outOfOrder: Number.NaN };
  try {
    const stored = await storedCount(nc, subject);
    const seqs: number[] = [];
    await readAll(nc, subject, stored, (data) => seqs.push(new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0)));
    const times = new Map<number, number>();
    let outOfOrder = 0;
    let previous = -1;
    for (const seq of seqs) {
      times.set(seq, (times.get(seq) ?? 0) + 1);
      if (seq <= previous) outOfOrder++;
      previous = Math.max(previous, seq);
    }
    let lost = 0;
    sent.forEach((s, seq) => {
      if (s.ackedAt !== undefined && !times.has(seq)) lost++;
    });
    let duplicated = 0;
    for (const n of times.values()) duplicated += n - 1;
    check = { readBack: seqs.length, lost, duplicated, outOfOrder };
  } catch (err) {
    error ??= `read-back failed: ${describe(err)}`;
  } finally {
    await nc.close();
  }
  const result: JetStreamFailover = {
    kills: stalls.length,
    stallsMs: stalls,
    medianMs: roundTo(median(stalls), 1),
    maxMs: roundTo(Math.max(...stalls), 1),
    electedMs,
    rejoinMs,
    killed,
    published: sent.length,
    acknowledged,
    retried: publisher.retried,
    check,
  };
  if (error !== undefined) result.error = error;
  progress(
    `${LABEL}failover: median ${result.medianMs} ms, max ${result.maxMs} ms; ${acknowledged}/${sent.length} acknowledged, ${publisher.retried} attempts retried; ` +
      `read back ${check.readBack}: lost ${check.lost}, duplicated ${check.duplicated}, out of order ${check.outOfOrder}`,
  );
  return result;
}

/** The cluster scenarios of `only` against JetStream, each on a fresh 3-server cluster. */
export async function jetstream(
  binary: { path: string; version: string },
  sizes: ClusterSizes,
  settings: PublishSettings,
  only: ReadonlySet<ClusterScenario>,
): Promise<JetStreamResult> {
  const withCluster = async <T>(scenario: ClusterScenario, run: (cluster: JetStreamCluster) => Promise<T>): Promise<T> => {
    const started = nowSeconds();
    const cluster = await JetStreamCluster.start(binary.path);
    progress(`${LABEL}${scenario}: servers ${Object.entries(cluster.pids).map(([name, pid]) => `${name} (pid ${pid})`).join(', ')}, started in ${roundTo(nowSeconds() - started, 2)} s`);
    try {
      return await run(cluster);
    } finally {
      await cluster.close();
    }
  };
  const { version } = createRequire(import.meta.url)('nats/package.json') as { version: string };
  const result: JetStreamResult = {
    server: binary.version,
    client: `nats ${version}`,
    durability: 'file storage; acknowledged once the leader and a quorum wrote it, before fsync (nats-server syncs on a timer)',
  };
  if (only.has('pipelined128B')) result.pipelined128B = await withCluster('pipelined128B', (c) => pipelined(c, 128, sizes.pipelined128B, sizes, settings));
  if (only.has('pipelined1KiB')) result.pipelined1KiB = await withCluster('pipelined1KiB', (c) => pipelined(c, 1024, sizes.pipelined1KiB, sizes, settings));
  if (only.has('sequentialPublish')) result.sequentialPublish = await withCluster('sequentialPublish', (c) => sequentialPublish(c, sizes));
  if (only.has('publishToDeliver')) result.publishToDeliver = await withCluster('publishToDeliver', (c) => publishToDeliver(c, sizes));
  if (only.has('failoverStall')) result.failoverStall = await withCluster('failoverStall', (c) => failoverStall(c, sizes));
  if (only.has('replayFromDisk')) result.replayFromDisk = await withCluster('replayFromDisk', (c) => replay(c, sizes, settings));
  return result;
}
