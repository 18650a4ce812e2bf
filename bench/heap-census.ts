/**
 * Heap census of idle partition replicas (issue 13, RSS per broker). Three
 * brokers of the built library run in this process (R=3, a data directory
 * each, fsync `interval`, 8 partitions per topic), host N partitions, and
 * every group quiesces; after two full collections a heap snapshot is
 * written and its objects are summed by kind and first retainer (self
 * sizes: `closure:fn apply <- object:Object.apply`; an array's or property
 * array's backing store also names its owner's owner).
 *
 *   npx tsx bench/heap-census.ts 0 base.json        # the brokers without partitions
 *   npx tsx bench/heap-census.ts 2000 after.json     # 2,000 partitions
 *   npx tsx bench/heap-census.ts --compare base.json after.json [rows]
 *
 * `--compare` prints the bytes per hosted replica of each kind over the
 * base: the difference divided by 3 brokers × the partitions.
 */
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString, writeHeapSnapshot } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { freePorts, loadBroker, makeTempDir, removeTempDir } from './lib.js';

const BROKERS = 3;
const PARTITIONS_PER_TOPIC = 8;
const QUIESCE_TIMEOUT_MS = 600_000;

/** A census: the process's memory after the collections, and the snapshot's objects by kind. */
interface Census {
  partitions: number;
  heapUsed: number;
  external: number;
  kinds: Record<string, { count: number; bytes: number }>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function census(partitions: number): Promise<Census> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const { startBroker } = await loadBroker();
  const root = makeTempDir('relaymq-bench-heap-census-');
  const ids = Array.from({ length: BROKERS }, (_, i) => `m${i + 1}`);
  const ports = await freePorts(BROKERS);
  const peers = ids.map((id, i) => `${id}@127.0.0.1:${ports[i]}`);
  const brokers = await Promise.all(
    ids.map((id, i) =>
      startBroker({ id, host: '127.0.0.1', port: 0, peerPort: ports[i], peers: peers.filter((_, j) => j !== i), dataDir: `${root}/${id}`, fsync: 'interval', defaultPartitions: PARTITIONS_PER_TOPIC, log: () => {} }),
    ),
  );
  try {
    const topics = Array.from({ length: Math.ceil(partitions / PARTITIONS_PER_TOPIC) }, (_, i) => `mem.t${i}`);
    const engine = brokers[0]!.engine;
    const started = performance.now();
    // The metadata group elects first; a request refused meanwhile is asked again.
    for (;;) {
      try {
        await Promise.all(topics.map((topic) => engine.ensureTopic(topic)));
        break;
      } catch (err) {
        if (performance.now() - started > 60_000) throw err;
        await sleep(200);
      }
    }
    const groups = topics.length * PARTITIONS_PER_TOPIC + 1;
    while (!brokers.every((b) => b.stats().raftGroups === groups && b.stats().raftGroupsQuiesced === groups)) {
      if (performance.now() - started > QUIESCE_TIMEOUT_MS) throw new Error(`groups not all quiesced after ${QUIESCE_TIMEOUT_MS} ms`);
      await sleep(250);
    }
    // Two collections: the first may leave objects to finalizers and weak references.
    gc();
    gc();
    const { heapUsed, external } = process.memoryUsage();
    const file = writeHeapSnapshot(join(tmpdir(), `relaymq-heap-census-${process.pid}.heapsnapshot`));
    try {
      return { partitions: topics.length * PARTITIONS_PER_TOPIC, heapUsed, external, kinds: kindsOf(JSON.parse(readFileSync(file, 'utf8'))) };
    } finally {
      unlinkSync(file);
    }
  } finally {
    await Promise.all(brokers.map((b) => b.close()));
    removeTempDir(root);
  }
}

interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** A snapshot's objects summed by `kind <- first strong retainer.edge` (see the module's comment). */
function kindsOf(snap: HeapSnapshot): Census['kinds'] {
  const { meta } = snap.snapshot;
  const { nodes, edges, strings } = snap;
  const nf = meta.node_fields.length;
  const ef = meta.edge_fields.length;
  const [nodeTypes] = meta.node_types;
  const [edgeTypes] = meta.edge_types;
  const [iType, iName, iSize, iEdges] = ['type', 'name', 'self_size', 'edge_count'].map((f) => meta.node_fields.indexOf(f)) as [number, number, number, number];
  const [eType, eName, eTo] = ['type', 'name_or_index', 'to_node'].map((f) => meta.edge_fields.indexOf(f)) as [number, number, number];
  const label = (i: number): string => {
    const type = nodeTypes[nodes[i + iType] as number] as string;
    const name = type.includes('string') ? '' : (strings[nodes[i + iName] as number] as string);
    return `${type}:${type === 'closure' ? 'fn ' : ''}${name.slice(0, 60)}`;
  };
  const retainer = new Map<number, { by: number; edge: string }>();
  for (let i = 0, e = 0; i < nodes.length; i += nf) {
    const count = nodes[i + iEdges] as number;
    for (let k = 0; k < count; k++, e += ef) {
      const type = edgeTypes[edges[e + eType] as number] as string;
      if (type === 'weak' || type === 'shortcut') continue;
      const to = edges[e + eTo] as number;
      if (retainer.has(to)) continue;
      const edge = type === 'element' || type === 'hidden' ? '[]' : String(strings[edges[e + eName] as number]).slice(0, 40);
      retainer.set(to, { by: i, edge });
    }
  }
  const owner = (i: number): string => {
    const r = retainer.get(i);
    return r === undefined ? '?' : `${label(r.by)}.${r.edge}`;
  };
  const kinds: Census['kinds'] = {};
  for (let i = 0; i < nodes.length; i += nf) {
    const own = label(i);
    // A backing store says little by itself: its owner's owner says whose it is.
    const parent = retainer.get(i)?.by;
    const generic = (own === 'array:(object elements)' || own === 'hidden:system / PropertyArray') && parent !== undefined;
    const key = `${own} <- ${owner(i)}${generic ? ` <- ${owner(parent)}` : ''}`;
    const kind = (kinds[key] ??= { count: 0, bytes: 0 });
    kind.count++;
    kind.bytes += nodes[i + iSize] as number;
  }
  return kinds;
}

/** Bytes and objects per hosted replica of each kind, `after` over `base`, largest first. */
function compare(base: Census, after: Census, rows: number): string {
  const replicas = BROKERS * (after.partitions - base.partitions);
  const diff = Object.keys({ ...base.kinds, ...after.kinds }).map((key) => {
    const [b, a] = [base.kinds[key], after.kinds[key]];
    return { key, bytes: ((a?.bytes ?? 0) - (b?.bytes ?? 0)) / replicas, count: ((a?.count ?? 0) - (b?.count ?? 0)) / replicas };
  });
  diff.sort((x, y) => y.bytes - x.bytes);
  const total = diff.reduce((sum, d) => sum + d.bytes, 0);
  const lines = [`per replica: heapUsed ${Math.round((after.heapUsed - base.heapUsed) / replicas)} B, external ${Math.round((after.external - base.external) / replicas)} B, snapshot ${Math.round(total)} B`];
  for (const d of diff.slice(0, rows)) lines.push(`${d.bytes.toFixed(0).padStart(7)} B ${d.count.toFixed(2).padStart(7)} objects  ${d.key}`);
  return lines.join('\n');
}

const args = process.argv.slice(2);
if (args[0] === '--compare') {
  const read = (path: string | undefined): Census => JSON.parse(readFileSync(path ?? '', 'utf8')) as Census;
  console.log(compare(read(args[1]), read(args[2]), Number(args[3] ?? 40)));
} else {
  const partitions = Number(args[0] ?? 1000);
  const out = args[1] ?? 'heap-census.json';
  const result = await census(partitions);
  writeFileSync(out, JSON.stringify(result));
  console.error(`heap census at ${result.partitions} partitions: heap used ${(result.heapUsed / 2 ** 20).toFixed(1)} MiB, external ${(result.external / 2 ** 20).toFixed(1)} MiB -> ${out}`);
}
