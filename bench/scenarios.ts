/**
 * The measurements shared by the single-broker and the cluster benchmarks:
 * pipelined throughput, awaited publish latency, publish→deliver latency.
 * They know clients and broker processes, not how the brokers were started.
 */
import { writeFile } from 'node:fs/promises';
import type { AckLevel, Message, RelayClient } from '@relaymq/sdk';
import {
  childPids,
  nowSeconds,
  ownCpuSeconds,
  payload,
  processCpuSeconds,
  processCpuSplit,
  progress,
  runQueueWaitUs,
  summarizeLatency,
  type BrokerProcess,
  type LatencySummary,
} from './lib.js';

/** Sizes of the pipelined and latency runs. */
export interface ScenarioSizes {
  /** Messages of the measured pipelined runs, by payload size. */
  pipelined128B: number;
  pipelined1KiB: number;
  /** Unmeasured messages before each pipelined run (JIT, topic metadata, socket buffers). */
  pipelinedWarmup: number;
  /** Measured rounds of each pipelined run; the median round is reported. */
  rounds: number;
  /** Latency samples, after `latencyWarmup` unmeasured ones. */
  latencySamples: number;
  latencyWarmup: number;
}

/** How the scenarios publish. */
export interface PublishSettings {
  /** Most publishes awaiting their ack at once; below the SDK's outbox limit so `publish` never blocks. */
  window: number;
  /** Ack level of every publish (`quorum` is the SDK default; on one broker it means the broker stored it). */
  ack: AckLevel;
}

/** Outbox of the benchmark clients: room for the whole window, `block` as a safety net. */
export const OUTBOX = { maxMessages: 10_000, policy: 'block' as const };

/** Figures of one pipelined run: its median round. */
export interface Throughput {
  /** Messages per round. */
  messages: number;
  payloadBytes: number;
  seconds: number;
  msgPerSec: number;
  /** Payload bytes per second, in MiB. */
  mibPerSec: number;
  /** CPU used during the run, in percent of one core (a process tops out near 100). */
  clientCpuPercent: number;
  /** CPU of the broker (in a cluster: of the partition leader). */
  brokerCpuPercent: number | undefined;
  /** In a cluster: CPU of every broker, by id. */
  brokersCpuPercent?: Record<string, number | undefined>;
  /** msg/s of every round, in order. */
  roundsMsgPerSec: number[];
}

/** Count, size and duration of a run as the figures every throughput result starts with. */
export function rate(count: number, size: number, seconds: number): Pick<Throughput, 'messages' | 'payloadBytes' | 'seconds' | 'msgPerSec' | 'mibPerSec'> {
  return {
    messages: count,
    payloadBytes: size,
    seconds: roundTo(seconds, 3),
    msgPerSec: Math.round(count / seconds),
    mibPerSec: roundTo((count * size) / seconds / (1024 * 1024), 1),
  };
}

export function roundTo(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/**
 * Publishes `count` messages keeping at most `window` unacknowledged: each
 * ack lets one more publish start. Publishes started in one turn of the event
 * loop leave in one frame, which is what pipelining buys.
 */
export function publishWindowed(client: RelayClient, topic: string, data: Uint8Array, count: number, window: number, ack: AckLevel): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let started = 0;
    let acknowledged = 0;
    let failed = false;
    const onAck = (): void => {
      acknowledged++;
      if (acknowledged === count) resolve();
      else fill();
    };
    const onError = (err: unknown): void => {
      if (failed) return;
      failed = true;
      reject(err);
    };
    const fill = (): void => {
      while (!failed && started < count && started - acknowledged < window) {
        started++;
        client.publish(topic, data, { ack }).then(onAck, onError);
      }
    };
    if (count === 0) resolve();
    else fill();
  });
}

const cpuPercent = (before: number | undefined, after: number | undefined, seconds: number): number | undefined =>
  before === undefined || after === undefined ? undefined : Math.round((100 * (after - before)) / seconds);

/**
 * Pipelined publishing of `size`-byte messages through the SDK: a warm-up,
 * then `rounds` rounds of `count`; the median round is reported. CPU is
 * sampled for every broker of `brokers`; the first one's is
 * `brokerCpuPercent` (in a cluster: put the leader first).
 */
export function pipelined(
  client: RelayClient,
  brokers: readonly BrokerProcess[],
  topic: string,
  size: number,
  count: number,
  sizes: ScenarioSizes,
  settings: PublishSettings,
  label = '',
): Promise<Throughput> {
  const publish = (data: Uint8Array, n: number): Promise<void> => publishWindowed(client, topic, data, n, settings.window, settings.ack);
  return pipelinedRounds(publish, brokers, size, count, sizes, `${label}pipelined ${size} B: `, `, window ${settings.window}`);
}

/**
 * The rounds of a pipelined run, whatever publishes: `publish(data, n)`
 * resolves once `n` publishes of `data` were acknowledged. CPU is sampled for
 * every process of `servers`, the first one's is `brokerCpuPercent`.
 */
export async function pipelinedRounds(
  publish: (data: Uint8Array, count: number) => Promise<void>,
  servers: ReadonlyArray<Pick<BrokerProcess, 'id' | 'pid'>>,
  size: number,
  count: number,
  sizes: ScenarioSizes,
  label: string,
  note = '',
): Promise<Throughput> {
  const data = payload(size);
  progress(`${label}warm-up ${sizes.pipelinedWarmup}`);
  await publish(data, sizes.pipelinedWarmup);
  const rounds: Throughput[] = [];
  for (let round = 1; round <= sizes.rounds; round++) {
    progress(`${label}round ${round}/${sizes.rounds}, ${count} messages${note}`);
    const brokerCpu0 = servers.map((server) => processCpuSeconds(server.pid));
    const brokerSplit0 = servers.map((server) => processCpuSplit(server.pid));
    const clientCpu0 = ownCpuSeconds();
    const start = nowSeconds();
    await publish(data, count);
    const seconds = nowSeconds() - start;
    const clientCpu = ownCpuSeconds() - clientCpu0;
    const brokerCpu = servers.map((server, i) => cpuPercent(brokerCpu0[i], processCpuSeconds(server.pid), seconds));
    // CPU per message in user and system mode (µs): what a message costs each process, whatever the machine's load.
    const usPerMessage = servers.map((server, i) => {
      const before = brokerSplit0[i];
      const after = processCpuSplit(server.pid);
      if (before === undefined || after === undefined) return '?';
      return `${server.id} ${roundTo((1e6 * (after.user - before.user)) / count, 1)}+${roundTo((1e6 * (after.system - before.system)) / count, 1)}`;
    });
    const result: Throughput = {
      ...rate(count, size, seconds),
      clientCpuPercent: Math.round((100 * clientCpu) / seconds),
      brokerCpuPercent: brokerCpu[0],
      roundsMsgPerSec: [],
    };
    if (servers.length > 1) result.brokersCpuPercent = Object.fromEntries(servers.map((server, i) => [server.id, brokerCpu[i]]));
    const cpuNote = servers.length > 1 ? servers.map((b, i) => `${b.id} ${brokerCpu[i] ?? '?'}%`).join(', ') : `broker CPU ${brokerCpu[0] ?? '?'}%`;
    progress(`  ${result.msgPerSec} msg/s (${result.mibPerSec} MiB/s, client CPU ${result.clientCpuPercent}%, ${cpuNote}; CPU µs/msg user+system ${usPerMessage.join(', ')})`);
    rounds.push(result);
  }
  const median = [...rounds].sort((a, b) => a.msgPerSec - b.msgPerSec)[Math.floor(rounds.length / 2)] as Throughput;
  return { ...median, roundsMsgPerSec: rounds.map((r) => r.msgPerSec) };
}

const waitDelta = (before: number | undefined, after: number | undefined): number | null =>
  before === undefined || after === undefined ? null : Math.round(after - before);

/** How long the processes get to open or close an allocation window (a signal is handled on a later turn). */
const ALLOC_WINDOW_SETTLE_MS = 200;

async function signalAllocWindow(pids: readonly number[]): Promise<void> {
  if (pids.length === 0) return;
  for (const pid of pids) process.kill(pid, 'SIGUSR2');
  await new Promise((resolve) => setTimeout(resolve, ALLOC_WINDOW_SETTLE_MS));
}

/** `await publish()` of 128 B one at a time: call to ack. */
export async function sequentialPublish(
  client: RelayClient,
  topic: string,
  sizes: ScenarioSizes,
  settings: PublishSettings,
  label = '',
  /** Where the samples (ms) go; the summary covers only this call's. */
  into: number[] = [],
): Promise<LatencySummary> {
  const data = payload(128);
  progress(`${label}sequential publish: ${sizes.latencySamples} samples`);
  for (let i = 0; i < sizes.latencyWarmup; i++) await client.publish(topic, data, { ack: settings.ack });
  const samplesMs: number[] = [];
  // RELAYMQ_BENCH_SAMPLES_OUT: also write each sample's start on CLOCK_MONOTONIC (µs, the clock of
  // --cpu-prof and of process.hrtime in every process) and, per process (this one and the brokers),
  // how long its main thread waited for a CPU during the sample: bench/tail-report.ts reads them.
  const samplesOut = process.env.RELAYMQ_BENCH_SAMPLES_OUT;
  const pids = samplesOut === undefined ? [] : [process.pid, ...childPids()];
  const startsUs: number[] = [];
  const runQueueWaitsUs: Array<Array<number | null>> = [];
  // RELAYMQ_BENCH_ALLOC_WINDOW: SIGUSR2 to this process and the brokers before and after the samples, which
  // bench/alloc-probe.mjs (preloaded in each) takes as the window to count allocations and GCs in.
  const allocWindow = process.env.RELAYMQ_BENCH_ALLOC_WINDOW !== undefined ? [process.pid, ...childPids()] : [];
  await signalAllocWindow(allocWindow);
  for (let i = 0; i < sizes.latencySamples; i++) {
    const waitsBefore = pids.map(runQueueWaitUs);
    startsUs.push(Number(process.hrtime.bigint() / 1000n));
    const start = performance.now();
    await client.publish(topic, data, { ack: settings.ack });
    samplesMs.push(performance.now() - start);
    if (pids.length > 0) runQueueWaitsUs.push(pids.map((pid, k) => waitDelta(waitsBefore[k], runQueueWaitUs(pid))));
  }
  await signalAllocWindow(allocWindow);
  if (samplesOut !== undefined) await writeFile(samplesOut, JSON.stringify({ startsUs, samplesMs, pids, runQueueWaitsUs }));
  into.push(...samplesMs);
  const summary = summarizeLatency(samplesMs);
  progress(`  p50 ${summary.p50Us} µs, p99 ${summary.p99Us} µs`);
  return summary;
}

/**
 * One message in flight at a time, from `publish()` on one client to the
 * handler on another. Each payload carries its sequence number, so a stray
 * or late message can never be matched with the wrong send time.
 */
export async function publishToDeliver(
  publisher: RelayClient,
  subscriber: RelayClient,
  topic: string,
  sizes: ScenarioSizes,
  settings: PublishSettings,
): Promise<LatencySummary & { servedBy?: string }> {
  progress(`publish→deliver: ${sizes.latencySamples} samples`);
  let waiting: { seq: number; delivered: (atMs: number) => void } | undefined;
  const subscription = await subscriber.subscribe<Uint8Array>(
    topic,
    (message: Message<Uint8Array>) => {
      const atMs = performance.now();
      const seq = new DataView(message.data.buffer, message.data.byteOffset, message.data.byteLength).getUint32(0);
      if (waiting !== undefined && waiting.seq === seq) waiting.delivered(atMs);
    },
    { from: 'new' },
  );
  const samplesMs: number[] = [];
  const total = sizes.latencyWarmup + sizes.latencySamples;
  for (let seq = 0; seq < total; seq++) {
    // A fresh buffer per message: the SDK keeps `data` until the ack.
    const data = payload(128);
    new DataView(data.buffer).setUint32(0, seq);
    const delivered = new Promise<number>((resolve) => (waiting = { seq, delivered: resolve }));
    const start = performance.now();
    const [, atMs] = await Promise.all([publisher.publish(topic, data, { ack: settings.ack }), delivered]);
    if (seq >= sizes.latencyWarmup) samplesMs.push(atMs - start);
  }
  // The broker that served the subscription (an SDK that serves subscriptions from the leader moves them there).
  const servedBy = subscriber.stats().subscribe.servedBy?.find((s) => s.subscription === subscription.id)?.broker;
  await subscription.unsubscribe();
  const summary = summarizeLatency(samplesMs);
  progress(`  p50 ${summary.p50Us} µs, p99 ${summary.p99Us} µs${servedBy === undefined ? '' : `; subscription served by ${servedBy}`}`);
  return servedBy === undefined ? summary : { ...summary, servedBy };
}

/** Figures of a replay: a fresh subscriber reading a stored partition from `earliest`. */
export interface Replay {
  /** Messages read (the whole partition). */
  messages: number;
  payloadBytes: number;
  /** From the `subscribe()` call to the last message handled. */
  seconds: number;
  msgPerSec: number;
  mibPerSec: number;
  /** From the `subscribe()` call to the first message handled. */
  firstMessageMs: number;
  /** Messages in flight to the subscriber (its credit, the SDK default unless set). */
  credit: number | undefined;
  clientCpuPercent: number;
  /** CPU of every broker during the read, by id. */
  brokersCpuPercent: Record<string, number | undefined>;
}

/** Longest a replay may take before the run is declared broken. */
const REPLAY_TIMEOUT_MS = 120_000;

/**
 * Subscribes from `earliest` to `topic`, whose partition holds `count`
 * messages of `size` bytes, and times reading all of them. The subscriber must
 * be a fresh client, and the brokers freshly started on their data, so that
 * nothing is served from a cache filled by the publisher.
 */
export async function replayFromEarliest(
  subscriber: RelayClient,
  brokers: readonly BrokerProcess[],
  topic: string,
  size: number,
  count: number,
  label = '',
  credit?: number,
): Promise<Replay> {
  progress(`${label}replay: reading ${count} messages of ${size} B from earliest`);
  const brokerCpu0 = brokers.map((broker) => processCpuSeconds(broker.pid));
  const clientCpu0 = ownCpuSeconds();
  const start = nowSeconds();
  let firstAt: number | undefined;
  let received = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = new Promise<number>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`replay: ${received}/${count} messages after ${REPLAY_TIMEOUT_MS} ms`)), REPLAY_TIMEOUT_MS);
    const handler = (): void => {
      received++;
      if (received === 1) firstAt = nowSeconds();
      if (received === count) resolve(nowSeconds());
    };
    subscriber.subscribe(topic, handler, credit === undefined ? { from: 'earliest' } : { from: 'earliest', credit }).catch(reject);
  });
  try {
    const end = await done;
    const seconds = end - start;
    const clientCpu = ownCpuSeconds() - clientCpu0;
    const result: Replay = {
      ...rate(count, size, seconds),
      firstMessageMs: roundTo(((firstAt ?? end) - start) * 1000, 1),
      credit,
      clientCpuPercent: Math.round((100 * clientCpu) / seconds),
      brokersCpuPercent: Object.fromEntries(brokers.map((broker, i) => [broker.id, cpuPercent(brokerCpu0[i], processCpuSeconds(broker.pid), seconds)])),
    };
    const cpuNote = brokers.map((b) => `${b.id} ${result.brokersCpuPercent[b.id] ?? '?'}%`).join(', ');
    progress(`  ${result.msgPerSec} msg/s (${result.mibPerSec} MiB/s, first message after ${result.firstMessageMs} ms, client CPU ${result.clientCpuPercent}%, ${cpuNote})`);
    return result;
  } finally {
    clearTimeout(timer);
  }
}

/** Fills `topic` with `count` messages of `size` bytes, pipelined, for a later replay. */
export async function fillTopic(client: RelayClient, topic: string, size: number, count: number, settings: PublishSettings, label = ''): Promise<void> {
  progress(`${label}replay: publishing ${count} messages of ${size} B`);
  const start = nowSeconds();
  await publishWindowed(client, topic, payload(size), count, settings.window, settings.ack);
  progress(`  published in ${roundTo(nowSeconds() - start, 2)} s`);
}
