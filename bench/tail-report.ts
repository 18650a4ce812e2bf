/**
 * Where the slow publishes' time went: lines up every publish of a
 * `sequentialPublish` run (RELAYMQ_BENCH_SAMPLES_OUT) with what each process
 * recorded through bench/tail-probe.mjs (GC pauses, timer callbacks, CPU).
 *
 *   dir=/tmp/tail; mkdir -p $dir
 *   RELAYMQ_BENCH_SAMPLES_OUT=$dir/samples.json RELAYMQ_TAIL_PROBE_DIR=$dir \
 *   RELAYMQ_BENCH_BROKER_NODE_ARGS="--import ./bench/tail-probe.mjs" \
 *     node --import tsx --import ./bench/tail-probe.mjs bench/run.ts --only cluster3.sequentialPublish --cluster-storage memory
 *   npx tsx bench/tail-report.ts $dir            # the slowest 1 %; --top 40 for more
 *
 * Per process: CPU per publish in the measured window, GCs in it and how
 * many publishes each overlapped, the periodic callbacks (count, CPU); then
 * each slow publish with the events that overlapped it. A slow publish that
 * overlaps nothing waited for something the probe does not see: the OS
 * scheduler (4 processes on 2 cores, and whatever else runs), the network.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

interface Samples {
  startsUs: number[];
  samplesMs: number[];
  /** This process's pid, then the brokers'; per sample, how long each waited for a CPU (µs; null: unknown). */
  pids?: number[];
  runQueueWaitsUs?: Array<Array<number | null>>;
}
interface Probe {
  id: string;
  pid: number;
  gcs: Array<[startUs: number, durationUs: number, kind: string]>;
  timers: Array<[startUs: number, cpuUs: number, wallUs: number, label: string]>;
  cpu: Array<[us: number, cpuUs: number]>;
  /** File-system calls: on the event loop from 100 µs (`writeSync`, `fdatasyncSync`), in the pool all (`datasync (pool)`). */
  io?: Array<[startUs: number, durationUs: number, label: string]>;
  eventLoopDelayMs: { p50: number; p99: number; max: number };
}
/** A timer callback counts as loop-blocking work in a slow publish from this much CPU on (µs). */
const LONG_CALLBACK_CPU_US = 300;

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string' } } });
const dir = positionals[0];
if (dir === undefined) throw new Error('usage: tsx bench/tail-report.ts <dir> [--top N]');
const samples = JSON.parse(readFileSync(join(dir, 'samples.json'), 'utf8')) as Samples;
const probes = readdirSync(dir)
  .filter((name) => name.startsWith('probe-') && name.endsWith('.json'))
  .map((name) => JSON.parse(readFileSync(join(dir, name), 'utf8')) as Probe)
  .sort((a, b) => a.id.localeCompare(b.id));

const count = samples.samplesMs.length;
const windows = samples.startsUs.map((startUs, i) => ({ i, startUs, endUs: startUs + (samples.samplesMs[i] as number) * 1000, ms: samples.samplesMs[i] as number }));
const firstUs = windows[0]?.startUs ?? 0;
const lastUs = windows[count - 1]?.endUs ?? 0;
const sorted = [...samples.samplesMs].sort((a, b) => a - b);
const percentile = (p: number): number => sorted[Math.min(count - 1, Math.floor(count * p))] as number;
const overlaps = (startUs: number, durationUs: number, w: { startUs: number; endUs: number }): boolean => startUs < w.endUs && startUs + durationUs > w.startUs;
const cpuAt = (probe: Probe, us: number): number => {
  let value = probe.cpu[0]?.[1] ?? 0;
  for (const [at, cpuUs] of probe.cpu) if (at <= us) value = cpuUs;
  return value;
};
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

console.log(`${count} publishes: p50 ${(percentile(0.5) * 1000).toFixed(0)} µs, p99 ${(percentile(0.99) * 1000).toFixed(0)} µs, max ${((sorted[count - 1] ?? 0) * 1000).toFixed(0)} µs, window ${((lastUs - firstUs) / 1000).toFixed(0)} ms`);
for (const probe of probes) {
  const gcs = probe.gcs.filter(([startUs]) => startUs >= firstUs && startUs <= lastUs);
  const kinds = new Map<string, number>();
  for (const [, , kind] of gcs) kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  const hit = windows.filter((w) => gcs.some(([startUs, durationUs]) => overlaps(startUs, durationUs, w))).length;
  const cpuPerPublish = (cpuAt(probe, lastUs) - cpuAt(probe, firstUs)) / count;
  console.log(
    `${probe.id}: CPU ${cpuPerPublish.toFixed(0)} µs/publish; GCs ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'} (${(gcs.reduce((s, g) => s + g[1], 0) / 1000).toFixed(1)} ms), overlapping ${hit} publishes; event-loop delay p99 ${probe.eventLoopDelayMs.p99} ms`,
  );
  const ioByLabel = new Map<string, Array<[number, number, string]>>();
  for (const call of probe.io ?? []) if (call[0] >= firstUs && call[0] <= lastUs) ioByLabel.set(call[2], [...(ioByLabel.get(call[2]) ?? []), call]);
  for (const [label, calls] of ioByLabel) {
    const hitIo = windows.filter((w) => calls.some(([startUs, durationUs]) => overlaps(startUs, durationUs, w))).length;
    const durations = calls.map((c) => c[1]);
    console.log(`   ${label}: ${calls.length} in the window, median ${median(durations)} µs, max ${Math.max(...durations)} µs, overlapping ${hitIo} publishes`);
  }
  const byLabel = new Map<string, number[]>();
  for (const [startUs, cpuUs, , label] of probe.timers) {
    if (startUs < firstUs || startUs > lastUs) continue;
    if (!label.includes(' @ ') && cpuUs < LONG_CALLBACK_CPU_US) continue;
    byLabel.set(label, [...(byLabel.get(label) ?? []), cpuUs]);
  }
  for (const [label, cpus] of [...byLabel].sort((a, b) => b[1].reduce((s, x) => s + x, 0) - a[1].reduce((s, x) => s + x, 0)).slice(0, 4)) {
    console.log(`   ${cpus.length} × median ${median(cpus)} µs, max ${Math.max(...cpus)} µs CPU: ${label.slice(0, 140)}`);
  }
}

const top = Number(values.top ?? Math.max(1, Math.round(count / 100)));
const slowest = [...windows].sort((a, b) => b.ms - a.ms).slice(0, top);
const nameOf = (k: number): string => probes.find((p) => p.pid === samples.pids?.[k])?.id ?? (k === 0 ? 'bench' : String(samples.pids?.[k]));
let withGc = 0;
let withCallback = 0;
let withIo = 0;
let neither = 0;
console.log(`\nthe ${top} slowest (index, ms, what overlapped it):`);
for (const w of slowest) {
  const events: string[] = [];
  let gc = false;
  let callback = false;
  let io = false;
  for (const probe of probes) {
    for (const [startUs, durationUs, label] of probe.io ?? []) {
      if (!overlaps(startUs, durationUs, w)) continue;
      events.push(`${probe.id} ${label} ${(durationUs / 1000).toFixed(2)} ms`);
      io = true;
    }
    for (const [startUs, durationUs, kind] of probe.gcs) {
      if (!overlaps(startUs, durationUs, w)) continue;
      events.push(`${probe.id} GC ${kind} ${(durationUs / 1000).toFixed(1)} ms`);
      gc = true;
    }
    for (const [startUs, cpuUs, wallUs, label] of probe.timers) {
      if (cpuUs < LONG_CALLBACK_CPU_US || !overlaps(startUs, wallUs, w)) continue;
      events.push(`${probe.id} callback ${(cpuUs / 1000).toFixed(1)} ms CPU (${label.split(' < ')[0]?.slice(0, 60)})`);
      callback = true;
    }
  }
  if (gc) withGc++;
  if (callback) withCallback++;
  if (io) withIo++;
  if (!gc && !callback && !io) neither++;
  const waits = samples.runQueueWaitsUs?.[w.i]?.map((us, k) => `${nameOf(k)} ${us === null ? '?' : (us / 1000).toFixed(1)}`).join(', ');
  console.log(`  #${w.i} ${w.ms.toFixed(2)}  ${events.join('; ') || '-'}${waits === undefined ? '' : `  | waited for a CPU (ms): ${waits}`}`);
}
console.log(`of the ${top}: ${withGc} overlap a GC, ${withCallback} a timer callback of ≥ ${LONG_CALLBACK_CPU_US} µs CPU, ${withIo} a file-system call (fsync in the pool, or a slow one on the loop), ${neither} none of these`);

// Time the slowest and the fastest half spent waiting for a CPU, per process: what the OS scheduler took.
if (samples.runQueueWaitsUs !== undefined) {
  const fastest = [...windows].sort((a, b) => a.ms - b.ms).slice(0, Math.floor(count / 2));
  const share = (set: typeof windows, k: number): string => {
    const waited = set.reduce((sum, w) => sum + (samples.runQueueWaitsUs?.[w.i]?.[k] ?? 0), 0);
    return `${((100 * waited) / set.reduce((sum, w) => sum + w.ms * 1000, 0)).toFixed(0)}%`;
  };
  const columns = (samples.pids ?? []).map((_, k) => `${nameOf(k)} ${share(slowest, k)} (fastest half ${share(fastest, k)})`);
  console.log(`main thread waiting for a CPU, as a share of the slowest ${top} publishes' time: ${columns.join(', ')}`);
}

