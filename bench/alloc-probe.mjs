// Preload for allocation studies (`node --import ./bench/alloc-probe.mjs`): when RELAYMQ_ALLOC_PROBE_DIR
// is set, SIGUSR2 opens a window and a second SIGUSR2 closes it (bench/scenarios.ts sends both around the
// measured publishes of `sequentialPublish` when RELAYMQ_BENCH_ALLOC_WINDOW is set). Over the window the
// process records the bytes it allocated (the heap used at the end minus at the start, plus what every GC
// freed, from v8.GCProfiler), its GCs by kind and each scavenge's pause, and (RELAYMQ_ALLOC_PROBE_SAMPLING=
// <bytes>, a sampling interval) a sampling heap profile that keeps the objects GCs collected, so the sites
// of short-lived garbage show. Written at the window's close to <dir>/alloc-<broker id or "bench">-<pid>-
// <window number>.json (and .heapprofile). Plain JS so that brokers (built code, no tsx) can load it.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';

const dir = process.env.RELAYMQ_ALLOC_PROBE_DIR;
if (dir !== undefined && dir !== '') {
  const idIndex = process.argv.indexOf('--id');
  const id = idIndex > 0 ? process.argv[idIndex + 1] : 'bench';
  const samplingInterval = Number(process.env.RELAYMQ_ALLOC_PROBE_SAMPLING ?? '0');
  const gcKinds = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };
  let window;
  /** Windows closed so far: the benchmark process opens one per scenario run. */
  let closed = 0;
  new PerformanceObserver((list) => {
    if (window === undefined) return;
    for (const entry of list.getEntries()) {
      const kind = gcKinds[entry.detail?.kind ?? entry.kind] ?? 'other';
      window.gcs[kind] = (window.gcs[kind] ?? 0) + 1;
      window.gcPauseUs += entry.duration * 1000;
      if (kind === 'minor') window.scavengePausesUs.push(Math.round(entry.duration * 1000));
    }
  }).observe({ entryTypes: ['gc'] });
  const session = new Session();
  session.connect();
  const post = (method, params) =>
    new Promise((resolve, reject) => session.post(method, params, (err, result) => (err ? reject(err) : resolve(result))));

  process.on('SIGUSR2', () => {
    if (window === undefined) {
      const profiler = new v8.GCProfiler();
      window = { profiler, gcs: {}, gcPauseUs: 0, scavengePausesUs: [], startMs: performance.now(), usedStart: v8.getHeapStatistics().used_heap_size };
      profiler.start();
      if (samplingInterval > 0)
        void post('HeapProfiler.startSampling', { samplingInterval, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
      return;
    }
    const w = window;
    window = undefined;
    const usedEnd = v8.getHeapStatistics().used_heap_size;
    const stats = w.profiler.stop();
    let freed = 0;
    for (const gc of stats.statistics) freed += gc.beforeGC.heapStatistics.usedHeapSize - gc.afterGC.heapStatistics.usedHeapSize;
    const out = join(dir, `alloc-${id}-${process.pid}-${closed++}`);
    writeFileSync(
      `${out}.json`,
      JSON.stringify({ id, pid: process.pid, windowMs: performance.now() - w.startMs, allocatedBytes: usedEnd - w.usedStart + freed, gcs: w.gcs, gcPauseUs: Math.round(w.gcPauseUs), scavengePausesUs: w.scavengePausesUs, gcProfilerCount: stats.statistics.length }),
    );
    if (samplingInterval > 0) void post('HeapProfiler.stopSampling').then((r) => writeFileSync(`${out}.heapprofile`, JSON.stringify(r.profile)));
  });
}
