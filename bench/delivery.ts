/**
 * The `delivery` figures (issue 13): one broker, many subscribers, and what a
 * publish costs the fan-out. `subscribers` clients (one connection each)
 * subscribe to `perSubscriber` topics each out of `topics` (every topic gets
 * `perSubscriber` subscribers), and every client also subscribes to one hot
 * topic. Two runs, each publishing to a few partitions only:
 *
 * - `spread`: messages to a few of the spread topics (one partition each,
 *   by key); each reaches that topic's few subscribers.
 * - `hot`: messages to the hot topic; each reaches every client.
 *
 * Each run is a pipelined pass (deliveries per second, from the first publish
 * to the last delivery, and the per-delivery latency from `publish()` to the
 * handler) and a sequential pass (one message at a time, until every
 * subscriber has it). The broker's own counters say how many sessions each
 * message woke and how many subscription cursors the delivery passes read:
 * with fan-out that touches only what changed, a spread message wakes its
 * few subscribers, not every session.
 */
import type { RelayClient, connect as Connect } from '@relaymq/sdk';
import { brokerStats, rssMiB } from './broker-stats.js';
import {
  freePorts,
  nowSeconds,
  ownCpuSeconds,
  payload,
  processCpuSeconds,
  progress,
  spawnBroker,
  summarizeLatency,
  type BrokerProcess,
  type LatencySummary,
} from './lib.js';
import { OUTBOX, roundTo } from './scenarios.js';

/** Sizes of one `delivery` run. */
export interface DeliverySizes {
  /** Subscribing clients, one connection each. */
  subscribers: number;
  /** Spread topics (one partition each is published to); `subscribers` must be a multiple of `topics / perSubscriber`. */
  topics: number;
  /** Spread topics each subscriber subscribes to. */
  perSubscriber: number;
  /** Partitions per topic (`--partitions` of the broker). */
  partitionsPerTopic: number;
  /** Spread topics published to in the `spread` run. */
  publishedTopics: number;
  /** Messages of the pipelined pass of each run, and the most unacknowledged at once. */
  spreadMessages: number;
  hotMessages: number;
  window: number;
  /** Messages of the sequential pass of each run. */
  sequentialMessages: number;
}

export const DELIVERY_FULL: DeliverySizes = {
  subscribers: 1000,
  topics: 1000,
  perSubscriber: 10,
  partitionsPerTopic: 4,
  publishedTopics: 4,
  spreadMessages: 20_000,
  hotMessages: 200,
  window: 500,
  sequentialMessages: 100,
};

export const DELIVERY_QUICK: DeliverySizes = {
  ...DELIVERY_FULL,
  subscribers: 200,
  topics: 200,
  spreadMessages: 4_000,
  hotMessages: 100,
  sequentialMessages: 30,
};

/** One pass of one run. */
export interface DeliveryPass {
  messages: number;
  /** Messages received by handlers: `messages` × subscribers of the topic. */
  deliveries: number;
  seconds: number;
  deliveriesPerSec: number;
  /** From `publish()` to each handler call. */
  latency: LatencySummary;
  /** Sessions the broker woke per message (its `deliverySessionsWoken` counter). */
  sessionsWokenPerMessage: number;
  /** Subscription cursors the broker's delivery passes read per message (`deliveryCursorsVisited`). */
  cursorsVisitedPerMessage: number;
  brokerCpuPercent: number | undefined;
  clientCpuPercent: number;
}

/** The sequential pass adds the time until every subscriber had the message. */
export interface DeliverySequentialPass extends DeliveryPass {
  /** From `publish()` to the last subscriber's handler, per message. */
  allDelivered: LatencySummary;
}

export interface DeliveryRun {
  /** Subscribers of each topic published to. */
  subscribersPerMessage: number;
  /** Client sessions on the broker. */
  sessions: number;
  pipelined: DeliveryPass;
  sequential: DeliverySequentialPass;
}

export interface DeliveryResult {
  subscribers: number;
  /** Subscriptions on the broker (its `subscriptions` gauge). */
  subscriptions: number;
  topics: number;
  partitionsPerTopic: number;
  /** Seconds to connect every client and subscribe. */
  setupSeconds: number;
  /** Broker RSS after both runs. */
  brokerRssMiB: number;
  spread: DeliveryRun;
  hot: DeliveryRun;
}

const HOT_TOPIC = 'delivery.hot';
const spreadTopic = (i: number): string => `delivery.t${i}`;
/** Clients connecting (and subscribing) at once during setup. */
const SETUP_CONCURRENCY = 50;
const PASS_TIMEOUT_MS = 300_000;

/** The spread topics of subscriber `i`: `perSubscriber` topics `topics / perSubscriber` apart, so each topic gets `perSubscriber` subscribers. */
function topicsOf(i: number, sizes: DeliverySizes): number[] {
  const stride = sizes.topics / sizes.perSubscriber;
  return Array.from({ length: sizes.perSubscriber }, (_, j) => (i + j * stride) % sizes.topics);
}

/** Counts deliveries per message sequence number, with the time of each, and resolves waiters for a count. */
class DeliveryLog {
  /** `performance.now()` when message `seq` was published. */
  readonly sentAt: number[] = [];
  readonly latenciesMs: number[] = [];
  private readonly counts: number[] = [];
  private readonly lastAt: number[] = [];
  private total = 0;
  private waiter: { count: number; resolve: () => void } | undefined;

  delivered(seq: number): void {
    const at = performance.now();
    const sent = this.sentAt[seq];
    if (sent === undefined) return;
    this.latenciesMs.push(at - sent);
    this.counts[seq] = (this.counts[seq] ?? 0) + 1;
    this.lastAt[seq] = at;
    this.total++;
    if (this.waiter !== undefined && this.total >= this.waiter.count) {
      const { resolve } = this.waiter;
      this.waiter = undefined;
      resolve();
    }
  }

  /** Resolves once `count` deliveries in all were seen; rejects after {@link PASS_TIMEOUT_MS}. */
  async until(count: number, what: string): Promise<void> {
    if (this.total >= count) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        new Promise<void>((resolve) => (this.waiter = { count, resolve })),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${what}: ${this.total} of ${count} deliveries after ${PASS_TIMEOUT_MS} ms`)), PASS_TIMEOUT_MS);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  deliveredTo(seq: number): number {
    return this.counts[seq] ?? 0;
  }

  lastDeliveryMs(seq: number): number {
    return (this.lastAt[seq] as number) - (this.sentAt[seq] as number);
  }

  reset(): void {
    this.sentAt.length = 0;
    this.latenciesMs.length = 0;
    this.counts.length = 0;
    this.lastAt.length = 0;
    this.total = 0;
  }
}

/** A message carrying its sequence number in its first 4 bytes. */
function numbered(seq: number): Uint8Array {
  const data = payload(64);
  new DataView(data.buffer).setUint32(0, seq);
  return data;
}

interface Counters {
  woken: number;
  visited: number;
  cpu: number | undefined;
  clientCpu: number;
  at: number;
}

async function counters(broker: BrokerProcess, adminPort: number): Promise<Counters> {
  const stats = await brokerStats(adminPort);
  return {
    woken: stats.get('deliverySessionsWoken') ?? Number.NaN,
    visited: stats.get('deliveryCursorsVisited') ?? Number.NaN,
    cpu: processCpuSeconds(broker.pid),
    clientCpu: ownCpuSeconds(),
    at: nowSeconds(),
  };
}

function pass(before: Counters, after: Counters, messages: number, deliveries: number, latenciesMs: readonly number[]): DeliveryPass {
  const seconds = after.at - before.at;
  return {
    messages,
    deliveries,
    seconds: roundTo(seconds, 3),
    deliveriesPerSec: Math.round(deliveries / seconds),
    latency: summarizeLatency(latenciesMs),
    sessionsWokenPerMessage: roundTo((after.woken - before.woken) / messages, 2),
    cursorsVisitedPerMessage: roundTo((after.visited - before.visited) / messages, 2),
    brokerCpuPercent: before.cpu === undefined || after.cpu === undefined ? undefined : Math.round((100 * (after.cpu - before.cpu)) / seconds),
    clientCpuPercent: Math.round((100 * (after.clientCpu - before.clientCpu)) / seconds),
  };
}

/** Publishes `count` messages round-robin over `topics` (one key: one partition each), at most `window` unacknowledged. */
async function publishPipelined(publisher: RelayClient, topics: readonly string[], count: number, window: number, log: DeliveryLog): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const seq = next++;
      log.sentAt[seq] = performance.now();
      await publisher.publish(topics[seq % topics.length] as string, numbered(seq), { key: 'k' });
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, count) }, worker));
}

async function run(
  label: string,
  broker: BrokerProcess,
  adminPort: number,
  publisher: RelayClient,
  log: DeliveryLog,
  topics: readonly string[],
  subscribersPerMessage: number,
  sessions: number,
  pipelinedMessages: number,
  sizes: DeliverySizes,
): Promise<DeliveryRun> {
  log.reset();
  progress(`delivery/${label}: pipelined, ${pipelinedMessages} messages to ${topics.length} partition(s), ${subscribersPerMessage} subscribers each`);
  const before = await counters(broker, adminPort);
  await publishPipelined(publisher, topics, pipelinedMessages, sizes.window, log);
  await log.until(pipelinedMessages * subscribersPerMessage, `delivery/${label} pipelined`);
  const after = await counters(broker, adminPort);
  const pipelined = pass(before, after, pipelinedMessages, pipelinedMessages * subscribersPerMessage, log.latenciesMs);
  progress(`  ${pipelined.deliveriesPerSec} deliveries/s, p50 ${pipelined.latency.p50Us} µs, ${pipelined.sessionsWokenPerMessage} sessions woken per message`);

  log.reset();
  progress(`delivery/${label}: sequential, ${sizes.sequentialMessages} messages`);
  const seqBefore = await counters(broker, adminPort);
  const allMs: number[] = [];
  for (let seq = 0; seq < sizes.sequentialMessages; seq++) {
    log.sentAt[seq] = performance.now();
    await publisher.publish(topics[seq % topics.length] as string, numbered(seq), { key: 'k' });
    await log.until((seq + 1) * subscribersPerMessage, `delivery/${label} sequential message ${seq}`);
    if (log.deliveredTo(seq) !== subscribersPerMessage) throw new Error(`delivery/${label}: message ${seq} reached ${log.deliveredTo(seq)} subscribers, not ${subscribersPerMessage}`);
    allMs.push(log.lastDeliveryMs(seq));
  }
  const seqAfter = await counters(broker, adminPort);
  const sequential = {
    ...pass(seqBefore, seqAfter, sizes.sequentialMessages, sizes.sequentialMessages * subscribersPerMessage, log.latenciesMs),
    allDelivered: summarizeLatency(allMs),
  };
  progress(`  every subscriber in p50 ${sequential.allDelivered.p50Us} µs, ${sequential.sessionsWokenPerMessage} sessions woken per message`);
  return { subscribersPerMessage, sessions, pipelined, sequential };
}

/** Runs `task` over `items`, `concurrency` at a time. */
async function inBatches<T, R>(items: readonly T[], concurrency: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += concurrency) out.push(...(await Promise.all(items.slice(i, i + concurrency).map(task))));
  return out;
}

/** The `delivery` figures: one broker, `sizes.subscribers` clients, a spread run and a hot run. */
export async function delivery(connect: typeof Connect, sizes: DeliverySizes): Promise<DeliveryResult> {
  if (sizes.subscribers % (sizes.topics / sizes.perSubscriber) !== 0 || sizes.topics % sizes.perSubscriber !== 0) {
    throw new Error('delivery: topics must be a multiple of perSubscriber, and subscribers a multiple of topics / perSubscriber');
  }
  const [adminPort] = (await freePorts(1)) as [number];
  const args = ['--partitions', String(sizes.partitionsPerTopic), '--admin-port', String(adminPort)];
  args.push('--max-connections-per-ip', String(sizes.subscribers + 10));
  const broker = await spawnBroker('delivery', args);
  progress(`delivery: broker (pid ${broker.pid}) on ${broker.url}`);
  const clients: RelayClient[] = [];
  const open = async (): Promise<RelayClient> => {
    const client = await connect({ brokers: [broker.url], outbox: OUTBOX, discovery: false, poolSize: 1 });
    clients.push(client);
    return client;
  };
  try {
    const log = new DeliveryLog();
    const handler = (message: { data: Uint8Array }): void => {
      log.delivered(new DataView(message.data.buffer, message.data.byteOffset, message.data.byteLength).getUint32(0));
    };
    const publisher = await open();
    const setupStart = nowSeconds();
    // Creating every topic first: a subscription to a topic that does not exist yet would wait for it.
    const allTopics = [HOT_TOPIC, ...Array.from({ length: sizes.topics }, (_, i) => spreadTopic(i))];
    await inBatches(allTopics, SETUP_CONCURRENCY, (topic) => publisher.publish(topic, numbered(0xffffffff), { key: 'warmup' }));
    await inBatches(
      Array.from({ length: sizes.subscribers }, (_, i) => i),
      SETUP_CONCURRENCY,
      async (i) => {
        const client = await open();
        await client.subscribe<Uint8Array>(HOT_TOPIC, handler, { from: 'new' });
        for (const t of topicsOf(i, sizes)) await client.subscribe<Uint8Array>(spreadTopic(t), handler, { from: 'new' });
      },
    );
    const setupSeconds = roundTo(nowSeconds() - setupStart, 2);
    const stats = await brokerStats(adminPort);
    const subscriptions = stats.get('subscriptions') ?? Number.NaN;
    progress(`delivery: ${sizes.subscribers} subscribers, ${subscriptions} subscriptions in ${setupSeconds} s`);
    const sessions = stats.get('connections') ?? Number.NaN;
    const published = Array.from({ length: sizes.publishedTopics }, (_, i) => spreadTopic(i));
    const spread = await run('spread', broker, adminPort, publisher, log, published, sizes.perSubscriber, sessions, sizes.spreadMessages, sizes);
    const hot = await run('hot', broker, adminPort, publisher, log, [HOT_TOPIC], sizes.subscribers, sessions, sizes.hotMessages, sizes);
    return {
      subscribers: sizes.subscribers,
      subscriptions,
      topics: sizes.topics + 1,
      partitionsPerTopic: sizes.partitionsPerTopic,
      setupSeconds,
      brokerRssMiB: rssMiB(broker.pid),
      spread,
      hot,
    };
  } finally {
    await inBatches(clients, SETUP_CONCURRENCY, (client) => client.close());
    await broker.stop();
  }
}
