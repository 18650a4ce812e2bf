/**
 * Heap census of idle partition groups (issue 13, RSS): three in-process
 * brokers host N partitions (R=3, `--data`, fsync interval), every group
 * quiesces, two full collections run, a heap snapshot is written and its
 * objects are summed by type and name (self size). Run with
 * `tsx bench/heap-census.ts N OUT.json`; compare two runs' per-replica bytes.
 */
import { setFlagsFromString, writeHeapSnapshot } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { readFileSync, writeFileSync, unlinkSync } from 'node:fs';
import { freePorts, loadBroker, makeTempDir, removeTempDir } from './lib.js';

const N = Number(process.argv[2] ?? 1000);
const OUT = process.argv[3] ?? '/tmp/census.json';
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const { startBroker } = await loadBroker();
const root = makeTempDir('relaymq-rss2-census-');
const ids = ['m1', 'm2', 'm3'];
const ports = await freePorts(3);
const peers = ids.map((id, i) => `${id}@127.0.0.1:${ports[i]}`);
const brokers = await Promise.all(ids.map((id, i) => startBroker({ id, host: '127.0.0.1', port: 0, peerPort: ports[i], peers: peers.filter((_, j) => j !== i), dataDir: `${root}/${id}`, fsync: 'interval', defaultPartitions: 8, log: () => {} })));
try {
  const topics = Array.from({ length: Math.ceil(N / 8) }, (_, i) => `mem.t${i}`);
  const engine = brokers[0]!.engine;
  const t0 = Date.now();
  for (;;) {
    try { if (topics.length) await Promise.all(topics.map((t) => engine.ensureTopic(t))); break; } catch (err) { if (Date.now() - t0 > 60000) throw err; await sleep(200); }
  }
  const groups = topics.length * 8 + 1;
  for (;;) {
    const stats = brokers.map((b) => b.stats());
    if (stats.every((s) => s.raftGroups === groups && s.raftGroupsQuiesced === groups)) break;
    if (Date.now() - t0 > 600000) throw new Error('not quiesced');
    await sleep(250);
  }
  await sleep(1000);
  gc(); gc();
  const mem = process.memoryUsage();
  const file = writeHeapSnapshot(`/tmp/rss2-work/snap-${N}.heapsnapshot`);
  const snap = JSON.parse(readFileSync(file, 'utf8'));
  unlinkSync(file);
  const m = snap.snapshot.meta;
  const nf = m.node_fields.length;
  const types: string[] = m.node_types[0];
  const iType = m.node_fields.indexOf('type'), iName = m.node_fields.indexOf('name'), iSize = m.node_fields.indexOf('self_size');
  const nodes: number[] = snap.nodes; const strings: string[] = snap.strings;
  // The first strong retainer of each node (owner's name and the edge's), to tell apart objects of one kind.
  const ef = m.edge_fields.length;
  const eTypes: string[] = m.edge_types[0];
  const iEType = m.edge_fields.indexOf('type'), iEName = m.edge_fields.indexOf('name_or_index'), iTo = m.edge_fields.indexOf('to_node');
  const iEdges = m.node_fields.indexOf('edge_count');
  const edges: number[] = snap.edges;
  const owner = new Map<number, string>();
  const ownerOf = new Map<number, number>();
  const label = (i: number): string => {
    const type = types[nodes[i + iType]!]!;
    let name = strings[nodes[i + iName]!]!;
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = '';
    if (type === 'closure') name = `fn ${name}`;
    return `${type}:${name.slice(0, 60)}`;
  };
  for (let i = 0, e = 0; i < nodes.length; i += nf) {
    const count = nodes[i + iEdges]!;
    for (let k = 0; k < count; k++, e += ef) {
      const et = eTypes[edges[e + iEType]!]!;
      if (et === 'weak' || et === 'shortcut') continue;
      const to = edges[e + iTo]!;
      if (owner.has(to)) continue;
      const en = et === 'element' || et === 'hidden' ? `[${edges[e + iEName]}]` : String(strings[edges[e + iEName]!]);
      owner.set(to, `${label(i)}.${et === 'element' || et === 'hidden' ? '[]' : en.slice(0, 40)}`);
      ownerOf.set(to, i);
    }
  }
  const agg = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < nodes.length; i += nf) {
    // Backing stores of arrays and property arrays say little by themselves: their owner's owner says whose they are.
    const parent = ownerOf.get(i);
    const generic = label(i) === 'array:(object elements)' || label(i) === 'hidden:system / PropertyArray';
    const key = `${label(i)} <- ${owner.get(i) ?? '?'}${generic && parent !== undefined ? ` <- ${owner.get(parent) ?? '?'}` : ''}`;
    const e = agg.get(key) ?? { count: 0, bytes: 0 };
    e.count++; e.bytes += nodes[i + iSize]!;
    agg.set(key, e);
  }
  writeFileSync(OUT, JSON.stringify({ N, heapUsed: mem.heapUsed, external: mem.external, agg: Object.fromEntries(agg) }));
  console.error(`census ${N}: heapUsed ${(mem.heapUsed / 2 ** 20).toFixed(1)} MiB external ${(mem.external / 2 ** 20).toFixed(1)} MiB -> ${OUT}`);
} finally {
  await Promise.all(brokers.map((b) => b.close()));
  removeTempDir(root);
}
