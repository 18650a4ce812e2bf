/**
 * The `move` figures (issue 14): a partition holding `sizes.bytes` (1 GiB by
 * default) is moved to a broker that just joined, once with the move
 * throttle off and once on, under a concurrent publisher. Three broker
 * processes (R=3, `--data`, fsync always) take a one-partition topic filled
 * with 64 KiB messages; then, per run, a fresh broker joins (its
 * `--move-bytes-per-second` is the throttle: it limits copies into it) and a
 * follower of the partition that does not lead the metadata group is
 * decommissioned, so the metadata leader moves that replica to the newcomer
 * and nothing else moves. The second run drains a replica the first one
 * placed or kept, so both copy the same partition from the same leader.
 *
 * Figures per run: the catch-up rate (the partition's size, as its leader
 * counts it, over the time from the removal request until the metadata
 * leader saw the new replica promoted to a voter), the whole move's
 * duration, and the latency of a publisher awaiting one 1 KiB publish
 * (ack quorum) at a time on the same partition while the move runs. The
 * same publisher over a quiet stretch before the first move (after the
 * brokers were left alone a while: right after the fill they checkpoint and
 * compact it, and the p99 was 1.2 s) is the baseline.
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { RelayClient, connect as Connect } from '@relaymq/sdk';
import { freePorts, makeTempDir, nowSeconds, payload, progress, removeTempDir, spawnBroker, summarizeLatency, type BrokerProcess, type LatencySummary } from './lib.js';
import { OUTBOX, publishWindowed, roundTo } from './scenarios.js';

/** Sizes of one `move` run. */
export interface MoveSizes {
  /** Bytes of message payload in the partition before the moves (the issue asks for 1 GiB). */
  bytes: number;
  /** The throttled run's `moveBytesPerSecond`. */
  throttleBytesPerSecond: number;
  /** Quiet publishing before the first move, for the baseline latency. */
  baselineMs: number;
  /** Left alone after the fill before the baseline (the brokers checkpoint and compact what was filled). */
  settleMs: number;
}

export const MOVE_SIZES: MoveSizes = { bytes: 1024 * 1024 * 1024, throttleBytesPerSecond: 10_000_000, baselineMs: 5000, settleMs: 15_000 };

/** The issue-14 goal for the unthrottled catch-up rate, MB/s (10^6 bytes). */
export const MOVE_RATE_GOAL_MBPS = 100;

/** One move of the partition. */
export interface MoveRun {
  /** `moveBytesPerSecond` of the new replica's broker; 0: unthrottled. */
  throttleBytesPerSecond: number;
  from: string;
  to: string;
  /** The partition's size as its leader counted it when the move started (`totalBytes`), bytes. */
  partitionBytes: number;
  /** From the removal request until the metadata leader saw the new replica promoted. */
  catchUpSeconds: number;
  /** `partitionBytes / catchUpSeconds`, in MB/s (10^6 bytes). */
  catchUpMBps: number;
  /** From the removal request until the drained broker left the metadata group (move done). */
  moveSeconds: number;
  /** The concurrent publisher, over `moveSeconds`. */
  publish: LatencySummary;
}

export interface MoveBenchResult {
  brokers: number;
  replicationFactor: number;
  messageBytes: number;
  /** How fast the partition was filled (ack quorum, 32 publishes in flight), MB/s. */
  fillMBps: number;
  /** The concurrent publisher before any move: awaited 1 KiB publishes, ack quorum. */
  baseline: LatencySummary;
  unthrottled: MoveRun;
  throttled: MoveRun;
  ratios: {
    /** Unthrottled catch-up rate over the throttled one. */
    catchUpUnthrottledOverThrottled: number;
    /** Publish p99 during the unthrottled move over the throttled one's. */
    p99UnthrottledOverThrottled: number;
    /** Publish p99 during each move over the baseline's. */
    p99UnthrottledOverBaseline: number;
    p99ThrottledOverBaseline: number;
  };
  goalMBps: number;
  met: boolean;
  /** `uptime`'s 1-minute load average at the start and the end of the run. */
  load: [number, number];
}

const TOPIC = 'bench.move';
const TOKEN = 'bench-move-admin-token-0123456789';
const MESSAGE_BYTES = 64 * 1024;
const PROBE_BYTES = 1024;
const FILL_WINDOW = 32;
const MOVE_TIMEOUT_MS = 900_000;
/**
 * Every broker's settings beyond its addresses. No automatic rebalancing: it
 * would hand the partition's leadership to the new replica after the first
 * move (its preferred leader), and the second would copy from another leader.
 */
const BENCH_BROKER_ARGS = ['--partitions', '1', '--replication-factor', '3', '--max-payload', String(2 * MESSAGE_BYTES), '--auto-rebalance', 'false'];

interface MoveNode {
  id: string;
  peerPort: number;
  adminUrl: string;
  process: BrokerProcess;
}

interface Moves {
  metadataLeader: string | null;
  moves: Array<{ topic: string; from: string; to: string; phase: string; totalBytes?: number | null }>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function admin<T>(node: MoveNode, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${node.adminUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${method} ${path} on ${node.id}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`move: timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A broker `id` on `ports` (fresh ones when not given), with `extra` arguments (`--peers` or `--join`, a throttle). */
async function startNode(id: string, root: string, extra: readonly string[], ports?: readonly number[]): Promise<MoveNode> {
  const [clientPort, peerPort, adminPort] = (ports ?? (await freePorts(3))) as [number, number, number];
  const args = ['--peer-port', String(peerPort), '--data', join(root, id), '--admin-port', String(adminPort), '--admin-token', TOKEN];
  args.push(...BENCH_BROKER_ARGS, ...extra);
  const process = await spawnBroker(id, args, clientPort);
  return { id, peerPort, adminUrl: `http://127.0.0.1:${adminPort}`, process };
}

/** One publish of 1 KiB at a time, ack quorum, until stopped; the latencies in ms. */
function probePublisher(client: RelayClient): { stop(): Promise<number[]> } {
  const samples: number[] = [];
  const data = payload(PROBE_BYTES);
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const started = performance.now();
      await client.publish(TOPIC, data, { ack: 'quorum' });
      samples.push(performance.now() - started);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return samples;
    },
  };
}

const loadAverage = (): number => loadavg()[0] as number;

export async function moveBench(connect: typeof Connect, sizes: MoveSizes = MOVE_SIZES): Promise<MoveBenchResult> {
  const label = 'move: ';
  const root = makeTempDir('relaymq-bench-move-');
  const nodes: MoveNode[] = [];
  const clients: RelayClient[] = [];
  const loadBefore = loadAverage();
  try {
    // Three brokers that know each other from the start: their ports are chosen first (client, peer, admin each).
    const ids = ['m1', 'm2', 'm3'];
    const ports = await freePorts(3 * ids.length);
    const portsOf = (i: number): number[] => [ports[i], ports[3 + i], ports[6 + i]] as number[];
    const peersOf = (i: number): string => ids.flatMap((other, j) => (j === i ? [] : [`${other}@127.0.0.1:${portsOf(j)[1]}`])).join(',');
    nodes.push(...(await Promise.all(ids.map((id, i) => startNode(id, root, ['--peers', peersOf(i)], portsOf(i))))));
    progress(`${label}brokers ${nodes.map((n) => `${n.id} (pid ${n.process.pid})`).join(', ')}`);
    const client = await connect({ brokers: nodes.map((n) => n.process.url), outbox: OUTBOX, publishTimeoutMs: 60_000 });
    clients.push(client);

    const count = Math.ceil(sizes.bytes / MESSAGE_BYTES);
    progress(`${label}filling ${TOPIC} with ${count} messages of ${MESSAGE_BYTES} B (${roundTo(sizes.bytes / 2 ** 20, 1)} MiB)`);
    const fillStarted = nowSeconds();
    await publishWindowed(client, TOPIC, payload(MESSAGE_BYTES), count, FILL_WINDOW, 'quorum');
    const fillMBps = roundTo((count * MESSAGE_BYTES) / 1e6 / (nowSeconds() - fillStarted), 1);
    progress(`${label}filled at ${fillMBps} MB/s`);

    await sleep(sizes.settleMs);
    const baselineProbe = probePublisher(client);
    await sleep(sizes.baselineMs);
    const baseline = summarizeLatency(await baselineProbe.stop());
    progress(`${label}baseline publish p99 ${roundTo(baseline.p99Us / 1000, 1)} ms (${baseline.count} publishes)`);

    const runs: MoveRun[] = [];
    for (const [i, throttle] of [0, sizes.throttleBytesPerSecond].entries()) {
      runs.push(await moveOnce(client, nodes, root, `m${4 + i}`, throttle, count * MESSAGE_BYTES, label));
    }
    const [unthrottled, throttled] = runs as [MoveRun, MoveRun];
    const ratio = (a: number, b: number): number => roundTo(a / b, 2);
    return {
      brokers: 3,
      replicationFactor: 3,
      messageBytes: MESSAGE_BYTES,
      fillMBps,
      baseline,
      unthrottled,
      throttled,
      ratios: {
        catchUpUnthrottledOverThrottled: ratio(unthrottled.catchUpMBps, throttled.catchUpMBps),
        p99UnthrottledOverThrottled: ratio(unthrottled.publish.p99Us, throttled.publish.p99Us),
        p99UnthrottledOverBaseline: ratio(unthrottled.publish.p99Us, baseline.p99Us),
        p99ThrottledOverBaseline: ratio(throttled.publish.p99Us, baseline.p99Us),
      },
      goalMBps: MOVE_RATE_GOAL_MBPS,
      met: unthrottled.catchUpMBps >= MOVE_RATE_GOAL_MBPS,
      load: [roundTo(loadBefore, 2), roundTo(loadAverage(), 2)],
    };
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await Promise.all(nodes.map((n) => n.process.stop()));
    removeTempDir(root);
  }
}

/**
 * A new broker `id` joins (throttled at `throttle`); a follower of the
 * partition that does not lead the metadata group is decommissioned, moving
 * its replica to the newcomer under the probe publisher; the drained broker
 * is stopped once it left the metadata group.
 */
async function moveOnce(client: RelayClient, nodes: MoveNode[], root: string, id: string, throttle: number, filledBytes: number, label: string): Promise<MoveRun> {
  const seed = nodes[0] as MoveNode;
  const joined = await startNode(id, root, ['--join', `127.0.0.1:${seed.peerPort}`, '--move-bytes-per-second', String(throttle)]);
  nodes.push(joined);
  await until(`${id} to be ready`, 60_000, async () => ((await fetch(`${joined.adminUrl}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200 ? true : undefined));
  const topic = await admin<{ partitions: Array<{ replicas: string[]; leader: string | null }> }>(seed, 'GET', `/api/topics?topic=${TOPIC}`);
  const partition = topic.partitions[0] as { replicas: string[]; leader: string | null };
  const metadataLeader = (await admin<Moves>(seed, 'GET', '/api/cluster/moves')).metadataLeader;
  const from = partition.replicas.find((r) => r !== partition.leader && r !== metadataLeader);
  const asked = nodes.find((n) => n.id === metadataLeader) ?? seed;
  if (from === undefined) throw new Error(`move: no replica to drain in ${JSON.stringify(partition)} (metadata leader ${metadataLeader})`);
  progress(`${label}${id} joined (throttle ${throttle === 0 ? 'off' : `${roundTo(throttle / 1e6, 1)} MB/s`}); draining ${from} (replicas ${partition.replicas.join(',')}, leader ${partition.leader})`);

  const probe = probePublisher(client);
  const started = nowSeconds();
  await admin(asked, 'POST', '/api/cluster/remove', { broker: from });
  let partitionBytes = 0;
  let seen = false;
  const catchUpSeconds = await until(`the replica of ${from} to reach ${id}`, MOVE_TIMEOUT_MS, async () => {
    const { moves } = await admin<Moves>(asked, 'GET', '/api/cluster/moves');
    const move = moves.find((m) => m.topic === TOPIC && m.to === id);
    if (move !== undefined && typeof move.totalBytes === 'number') partitionBytes = move.totalBytes;
    seen ||= move !== undefined;
    // Caught up: promoted or later, or already finished between two readings.
    const caughtUp = move === undefined ? seen : move.phase !== 'pending' && move.phase !== 'catching-up';
    return caughtUp ? nowSeconds() - started : undefined;
  });
  await until(`${from} to leave the metadata group`, MOVE_TIMEOUT_MS, async () => {
    const view = await admin<{ members: Array<{ id: string; role: string }> }>(asked, 'GET', '/api/membership');
    return view.members.find((m) => m.id === from)?.role === 'none' ? true : undefined;
  });
  const moveSeconds = nowSeconds() - started;
  const publish = summarizeLatency(await probe.stop());
  const drained = nodes.find((n) => n.id === from) as MoveNode;
  await drained.process.stop();
  nodes.splice(nodes.indexOf(drained), 1);
  // No reading carried the size (the move was quicker than a step): what was filled.
  if (partitionBytes === 0) partitionBytes = filledBytes;
  const run: MoveRun = {
    throttleBytesPerSecond: throttle,
    from,
    to: id,
    partitionBytes,
    catchUpSeconds: roundTo(catchUpSeconds, 2),
    catchUpMBps: roundTo(partitionBytes / 1e6 / catchUpSeconds, 1),
    moveSeconds: roundTo(moveSeconds, 2),
    publish,
  };
  progress(`${label}${JSON.stringify(run)}`);
  return run;
}
