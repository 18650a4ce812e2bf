/**
 * `npm run bench`: publish throughput and latency against one broker on
 * loopback. The broker runs in its own process; the SDK runs here. One JSON
 * object goes to stdout, progress to stderr.
 *
 *   npm run bench                       full run (well under a minute)
 *   npm run bench -- --quick            a short run, for a smoke test
 *   npm run bench -- --out bench.json   also write the JSON to a file
 *   npm run bench -- --window 2000      publishes in flight in pipelined runs
 *   npm run bench -- --only pipelined128B,sequentialPublish   some scenarios only
 *   npm run bench -- --sdk source       drive the SDK sources (through tsx) instead of its build
 *
 * Set RELAYMQ_BENCH_BROKER_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=prof")
 * to pass flags to the broker's node process.
 */
import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import type { AckLevel, Message, RelayClient, connect as Connect } from '@relaymq/sdk';
import {
  killChildren,
  loadSdk,
  nowSeconds,
  ownCpuSeconds,
  payload,
  processCpuSeconds,
  progress,
  spawnBroker,
  summarizeLatency,
  type BrokerProcess,
  type LatencySummary,
  type SdkBuild,
} from './lib.js';

/** Sizes of one run. */
interface RunConfig {
  /** Messages of the measured pipelined runs, by payload size. */
  pipelined128B: number;
  pipelined1KiB: number;
  /** Unmeasured messages before each pipelined run (JIT, topic metadata, socket buffers). */
  pipelinedWarmup: number;
  /** Measured rounds of each pipelined run; the median round is reported. */
  rounds: number;
  /** Most publishes awaiting their ack at once; below the SDK's outbox limit so `publish` never blocks. */
  window: number;
  /** Latency samples, after `latencyWarmup` unmeasured ones. */
  latencySamples: number;
  latencyWarmup: number;
  /** Ack level of every publish (`quorum` is the SDK default; on one broker it means the broker stored it). */
  ack: AckLevel;
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
};

/** Outbox of the benchmark clients: room for the whole window, `block` as a safety net. */
const OUTBOX = { maxMessages: 10_000, policy: 'block' as const };

/** Figures of one pipelined run: its median round. */
interface Throughput {
  /** Messages per round. */
  messages: number;
  payloadBytes: number;
  seconds: number;
  msgPerSec: number;
  /** Payload bytes per second, in MiB. */
  mibPerSec: number;
  /** CPU used during the run, in percent of one core (a process tops out near 100). */
  clientCpuPercent: number;
  brokerCpuPercent: number | undefined;
  /** msg/s of every round, in order. */
  roundsMsgPerSec: number[];
}

/** The figures for one broker; `cluster3` will sit beside it. */
interface SingleBrokerResult {
  pipelined128B: Throughput;
  pipelined1KiB: Throughput;
  /** `await publish()` one at a time: publish call to ack. */
  sequentialPublish: LatencySummary;
  /** One message at a time: publish call to the subscriber's handler, on a second client. */
  publishToDeliver: LatencySummary;
}

interface BenchResult {
  node: string;
  cpus: number;
  cpuModel: string | undefined;
  date: string;
  quick: boolean;
  config: RunConfig;
  /** The SDK build that ran: `dist` (published build) or `source` (through tsx). */
  sdk: SdkBuild;
  /** Every scenario unless `--only` picked some. */
  singleBroker: Partial<SingleBrokerResult>;
}

/**
 * Publishes `count` messages keeping at most `window` unacknowledged: each
 * ack lets one more publish start. Publishes started in one turn of the event
 * loop leave in one frame, which is what pipelining buys.
 */
function publishWindowed(client: RelayClient, topic: string, data: Uint8Array, count: number, window: number, ack: AckLevel): Promise<void> {
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

async function pipelined(client: RelayClient, broker: BrokerProcess, topic: string, size: number, count: number, config: RunConfig): Promise<Throughput> {
  const data = payload(size);
  progress(`pipelined ${size} B: warm-up ${config.pipelinedWarmup}`);
  await publishWindowed(client, topic, data, config.pipelinedWarmup, config.window, config.ack);
  const rounds: Throughput[] = [];
  for (let round = 1; round <= config.rounds; round++) {
    progress(`pipelined ${size} B: round ${round}/${config.rounds}, ${count} messages, window ${config.window}`);
    const brokerCpu0 = processCpuSeconds(broker.pid);
    const clientCpu0 = ownCpuSeconds();
    const start = nowSeconds();
    await publishWindowed(client, topic, data, count, config.window, config.ack);
    const seconds = nowSeconds() - start;
    const clientCpu = ownCpuSeconds() - clientCpu0;
    const brokerCpu1 = processCpuSeconds(broker.pid);
    const result: Throughput = {
      messages: count,
      payloadBytes: size,
      seconds: roundTo(seconds, 3),
      msgPerSec: Math.round(count / seconds),
      mibPerSec: roundTo((count * size) / seconds / (1024 * 1024), 1),
      clientCpuPercent: Math.round((100 * clientCpu) / seconds),
      brokerCpuPercent: brokerCpu0 === undefined || brokerCpu1 === undefined ? undefined : Math.round((100 * (brokerCpu1 - brokerCpu0)) / seconds),
      roundsMsgPerSec: [],
    };
    progress(`  ${result.msgPerSec} msg/s (${result.mibPerSec} MiB/s, client CPU ${result.clientCpuPercent}%, broker CPU ${result.brokerCpuPercent ?? '?'}%)`);
    rounds.push(result);
  }
  const median = [...rounds].sort((a, b) => a.msgPerSec - b.msgPerSec)[Math.floor(rounds.length / 2)] as Throughput;
  return { ...median, roundsMsgPerSec: rounds.map((r) => r.msgPerSec) };
}

async function sequentialPublish(client: RelayClient, topic: string, config: RunConfig): Promise<LatencySummary> {
  const data = payload(128);
  progress(`sequential publish: ${config.latencySamples} samples`);
  for (let i = 0; i < config.latencyWarmup; i++) await client.publish(topic, data, { ack: config.ack });
  const samplesMs: number[] = [];
  for (let i = 0; i < config.latencySamples; i++) {
    const start = performance.now();
    await client.publish(topic, data, { ack: config.ack });
    samplesMs.push(performance.now() - start);
  }
  const summary = summarizeLatency(samplesMs);
  progress(`  p50 ${summary.p50Us} µs, p99 ${summary.p99Us} µs`);
  return summary;
}

/**
 * One message in flight at a time, from `publish()` on one client to the
 * handler on another. Each payload carries its sequence number, so a stray
 * or late message can never be matched with the wrong send time.
 */
async function publishToDeliver(publisher: RelayClient, subscriber: RelayClient, topic: string, config: RunConfig): Promise<LatencySummary> {
  progress(`publish→deliver: ${config.latencySamples} samples`);
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
  const total = config.latencyWarmup + config.latencySamples;
  for (let seq = 0; seq < total; seq++) {
    // A fresh buffer per message: the SDK keeps `data` until the ack.
    const data = payload(128);
    new DataView(data.buffer).setUint32(0, seq);
    const delivered = new Promise<number>((resolve) => (waiting = { seq, delivered: resolve }));
    const start = performance.now();
    const [, atMs] = await Promise.all([publisher.publish(topic, data, { ack: config.ack }), delivered]);
    if (seq >= config.latencyWarmup) samplesMs.push(atMs - start);
  }
  await subscription.unsubscribe();
  const summary = summarizeLatency(samplesMs);
  progress(`  p50 ${summary.p50Us} µs, p99 ${summary.p99Us} µs`);
  return summary;
}

function roundTo(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** Scenario names, as keys of the result; `--only` picks some. */
const SCENARIOS = ['pipelined128B', 'pipelined1KiB', 'sequentialPublish', 'publishToDeliver'] as const;
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
      pipelined(await open(), broker, 'bench.pipelined.b128', 128, config.pipelined128B, config),
    );
  }
  if (only.has('pipelined1KiB')) {
    result.pipelined1KiB = await withBroker('pipelined1KiB', async (broker, open) =>
      pipelined(await open(), broker, 'bench.pipelined.kib1', 1024, config.pipelined1KiB, config),
    );
  }
  if (only.has('sequentialPublish')) {
    result.sequentialPublish = await withBroker('sequentialPublish', async (_broker, open) => sequentialPublish(await open(), 'bench.sequential', config));
  }
  if (only.has('publishToDeliver')) {
    result.publishToDeliver = await withBroker('publishToDeliver', async (_broker, open) =>
      publishToDeliver(await open(), await open(), 'bench.deliver', config),
    );
  }
  return result;
}

function parseOnly(value: string | undefined): Set<Scenario> {
  if (value === undefined) return new Set(SCENARIOS);
  const names = value.split(',').map((name) => name.trim());
  for (const name of names) {
    if (!(SCENARIOS as readonly string[]).includes(name)) throw new Error(`--only: unknown scenario "${name}"; known: ${SCENARIOS.join(', ')}`);
  }
  return new Set(names as Scenario[]);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      window: { type: 'string' },
      only: { type: 'string' },
      sdk: { type: 'string', default: 'dist' },
    },
    strict: true,
  });
  const quick = values.quick === true;
  const config = { ...(quick ? QUICK : FULL) };
  if (values.window !== undefined) {
    const window = Number(values.window);
    if (!Number.isInteger(window) || window < 1 || window > OUTBOX.maxMessages) {
      throw new Error(`--window must be an integer from 1 to ${OUTBOX.maxMessages}, got "${values.window}"`);
    }
    config.window = window;
  }
  if (values.sdk !== 'dist' && values.sdk !== 'source') throw new Error(`--sdk must be dist or source, got "${values.sdk}"`);
  const sdkBuild: SdkBuild = values.sdk;
  const { connect } = await loadSdk(sdkBuild);
  const started = nowSeconds();
  const result: BenchResult = {
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    date: new Date().toISOString(),
    quick,
    config,
    sdk: sdkBuild,
    singleBroker: await singleBroker(connect, config, parseOnly(values.only)),
  };
  progress(`done in ${roundTo(nowSeconds() - started, 1)} s`);
  const json = `${JSON.stringify(result, null, 2)}\n`;
  // `npm run bench` also prints the build's output on stdout; --out gives a file holding only the JSON.
  if (values.out !== undefined) await writeFile(values.out, json);
  process.stdout.write(json);
}

// Whatever happens, no broker process outlives the benchmark.
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
