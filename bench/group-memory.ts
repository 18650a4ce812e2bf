/**
 * The `groupMemory` figures (issue 13): what an idle partition group costs a
 * broker's memory, apart from what the garbage collector has not reclaimed
 * yet. Three brokers run in this process (the built broker library, R=3,
 * a data directory each, 8 partitions per topic); for each size the topics
 * are created in one bulk request, every group quiesces, then a full garbage
 * collection runs and `process.memoryUsage()` is read. A baseline cluster
 * with no topic (the metadata group only) is measured the same way; the cost
 * of a partition on one broker is the growth over the baseline divided by
 * three brokers and the partition count.
 *
 * The brokers fsync on a timer (`fsync: 'interval'`): a group holds the same
 * state either way, and creating thousands of groups with an fsync per vote
 * and entry takes minutes on a shared machine. RSS is left out: three brokers
 * share this process, and the V8 heap's slack (garbage not yet collected,
 * pages kept after a collection) depends on the collector's history, not on
 * the partition count; the broker processes' RSS is in the `scale` figures.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Broker, startBroker as StartBroker } from '@relaymq/broker';
import { freePorts, loadBroker, makeTempDir, nowSeconds, progress, removeTempDir } from './lib.js';
import { roundTo } from './scenarios.js';

const PARTITIONS_PER_TOPIC = 8;
const BROKERS = 3;
/** How long every group of a size may take to be created, elected and quiesced. */
const QUIESCE_TIMEOUT_MS = 600_000;

/** Memory of the process at one size, after a full collection, in MiB. */
export interface MemoryAt {
  partitions: number;
  heapUsedMiB: number;
  /** Memory of C++ objects bound to JavaScript ones, array buffers included. */
  externalMiB: number;
  arrayBuffersMiB: number;
  /** Seconds from the bulk request until every group of every broker was quiesced. */
  quiescedSeconds: number;
}

export interface GroupMemoryResult {
  brokers: number;
  baseline: MemoryAt;
  sizes: MemoryAt[];
  /** Per broker and partition over the baseline, at each size: (heapUsed + external − baseline) / (brokers × partitions). */
  bytesPerPartition: Array<{ partitions: number; heap: number; external: number; total: number }>;
}

/** `gc()`, reached without `--expose-gc` on the command line. */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function startCluster(startBroker: typeof StartBroker, root: string): Promise<Broker[]> {
  const ids = Array.from({ length: BROKERS }, (_, i) => `m${i + 1}`);
  const peerPorts = await freePorts(BROKERS);
  const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
  return Promise.all(
    ids.map((id, i) =>
      startBroker({
        id,
        host: '127.0.0.1',
        port: 0,
        peerPort: peerPorts[i],
        peers: peers.filter((_, j) => j !== i),
        dataDir: `${root}/${id}`,
        fsync: 'interval',
        defaultPartitions: PARTITIONS_PER_TOPIC,
        log: () => {},
      }),
    ),
  );
}

async function quiesced(brokers: readonly Broker[], groups: number, what: string): Promise<void> {
  const deadline = performance.now() + QUIESCE_TIMEOUT_MS;
  for (;;) {
    const stats = brokers.map((b) => b.stats());
    if (stats.every((s) => s.raftGroups === groups && s.raftGroupsQuiesced === groups)) return;
    if (performance.now() > deadline) throw new Error(`${what}: groups not all quiesced after ${QUIESCE_TIMEOUT_MS} ms (${stats.map((s) => `${s.raftGroupsQuiesced}/${s.raftGroups}`).join(', ')})`);
    await sleep(250);
  }
}

/** Creates `partitions` partitions on a fresh cluster, waits for quiescence, and reads the memory after a full collection. */
async function measure(startBroker: typeof StartBroker, partitions: number, gc: () => void): Promise<MemoryAt> {
  const root = makeTempDir('relaymq-bench-group-memory-');
  const brokers = await startCluster(startBroker, root);
  try {
    const topics = Array.from({ length: Math.ceil(partitions / PARTITIONS_PER_TOPIC) }, (_, i) => `mem.t${i}`);
    const started = nowSeconds();
    const engine = (brokers[0] as Broker).engine;
    // The metadata group elects first; a request refused meanwhile is asked again.
    for (;;) {
      try {
        await Promise.all(topics.map((topic) => engine.ensureTopic(topic)));
        break;
      } catch (err) {
        if (nowSeconds() - started > 60) throw err;
        await sleep(200);
      }
    }
    await quiesced(brokers, topics.length * PARTITIONS_PER_TOPIC + 1, `groupMemory/${partitions}`);
    const quiescedSeconds = roundTo(nowSeconds() - started, 1);
    // Two collections: the first may leave objects to finalizers and weak references.
    gc();
    gc();
    const usage = process.memoryUsage();
    const mib = (bytes: number): number => roundTo(bytes / 2 ** 20, 1);
    const at: MemoryAt = { partitions: topics.length * PARTITIONS_PER_TOPIC, heapUsedMiB: mib(usage.heapUsed), externalMiB: mib(usage.external), arrayBuffersMiB: mib(usage.arrayBuffers), quiescedSeconds };
    progress(`groupMemory/${partitions}: ${JSON.stringify(at)}`);
    return at;
  } finally {
    await Promise.all(brokers.map((b) => b.close()));
    removeTempDir(root);
  }
}

/** The `groupMemory` figures at each of `sizes` (partition counts), over a baseline with no topic. */
export async function groupMemory(sizes: readonly number[]): Promise<GroupMemoryResult> {
  const gc = collector();
  const { startBroker } = await loadBroker();
  const baseline = await measure(startBroker, 0, gc);
  const measured: MemoryAt[] = [];
  for (const partitions of sizes) measured.push(await measure(startBroker, partitions, gc));
  const bytes = (mib: number, base: number, partitions: number): number => Math.round(((mib - base) * 2 ** 20) / (BROKERS * partitions));
  return {
    brokers: BROKERS,
    baseline,
    sizes: measured,
    bytesPerPartition: measured.map((m) => {
      const heap = bytes(m.heapUsedMiB, baseline.heapUsedMiB, m.partitions);
      const external = bytes(m.externalMiB, baseline.externalMiB, m.partitions);
      return { partitions: m.partitions, heap, external, total: heap + external };
    }),
  };
}
