// Preload for latency-tail studies (`node --import ./bench/tail-probe.mjs`): when
// RELAYMQ_TAIL_PROBE_DIR is set, the process records its GC pauses, its timer
// callbacks and its CPU time, and writes them at exit to
// <dir>/probe-<broker id or "bench">-<pid>.json for bench/tail-report.ts.
// Every time is CLOCK_MONOTONIC in µs, the clock of process.hrtime in every
// process (and of --cpu-prof), so events of four processes line up with the
// publishes that RELAYMQ_BENCH_SAMPLES_OUT wrote. Plain JS so that the brokers
// (built code, no tsx) can load it through RELAYMQ_BENCH_BROKER_NODE_ARGS.
import fs, { writeFileSync } from 'node:fs';
import { open as openPromise } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { PerformanceObserver, monitorEventLoopDelay, performance } from 'node:perf_hooks';

const dir = process.env.RELAYMQ_TAIL_PROBE_DIR;
if (dir !== undefined && dir !== '') {
  /** A timeout callback is kept only from this much CPU on (µs): most are a few µs and there is one per request. */
  const TIMEOUT_CPU_FLOOR_US = 200;
  /** CPU time is sampled this often (ms): enough to cut out the measured window. */
  const CPU_SAMPLE_MS = 100;
  const nowUs = () => Number(process.hrtime.bigint() / 1000n);
  const perfToMonotonicUs = nowUs() - performance.now() * 1000;
  const gcKinds = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };
  /** [startUs, durationUs (wall), kind] */
  const gcs = [];
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = entry.detail?.kind ?? entry.kind;
      gcs.push([Math.round(entry.startTime * 1000 + perfToMonotonicUs), Math.round(entry.duration * 1000), gcKinds[kind] ?? String(kind)]);
    }
  }).observe({ entryTypes: ['gc'] });

  /** [startUs, cpuUs, wallUs, label]: every interval callback (periodic work), and timeouts from TIMEOUT_CPU_FLOOR_US of CPU. */
  const timers = [];
  const creator = (stack) =>
    (stack ?? '')
      .split('\n')
      .slice(2, 4)
      .map((line) => line.trim().replace(/^at /, ''))
      .join(' < ');
  const wrap = (original, periodic) =>
    function (callback, ms, ...rest) {
      if (typeof callback !== 'function') return original.call(this, callback, ms, ...rest);
      // Interval timers are few and long-lived: where they were set up names them. Timeouts only by function name.
      const label = periodic ? `${callback.name || 'interval'} @ ${creator(new Error().stack)}` : `timeout ${callback.name || 'anonymous'}`;
      return original.call(
        this,
        function (...args) {
          const startUs = nowUs();
          const cpu0 = process.cpuUsage();
          try {
            return callback.apply(this, args);
          } finally {
            const cpu = process.cpuUsage(cpu0);
            const cpuUs = cpu.user + cpu.system;
            if (periodic || cpuUs >= TIMEOUT_CPU_FLOOR_US) timers.push([startUs, cpuUs, nowUs() - startUs, label]);
          }
        },
        ms,
        ...rest,
      );
    };
  const unwrappedSetInterval = globalThis.setInterval;
  globalThis.setInterval = wrap(globalThis.setInterval, true);
  globalThis.setTimeout = wrap(globalThis.setTimeout, false);

  /**
   * [startUs, durationUs (wall), label]: file-system calls that can stall a publish. `writeSync` and
   * `fdatasyncSync` run on the event loop (kept from IO_FLOOR_US); `datasync`/`sync` of a FileHandle run in
   * the thread pool beside it (every one kept: the interval fsync, once a second per log).
   */
  const IO_FLOOR_US = 100;
  if (process.env.RELAYMQ_TAIL_PROBE_STACKS) Error.stackTraceLimit = 20;
  /** With RELAYMQ_TAIL_PROBE_STACKS set, each call's label names its callers (costly: for finding who calls, not for timing). */
  const caller = (stack) =>
    (stack ?? '')
      .split('\n')
      .slice(2, 14)
      .map((line) => line.trim().replace(/^at /, '').replace(/\(file:\/\/.*\/(.*?)\)/, '($1)'))
      .join(' < ');
  const io = [];
  // With RELAYMQ_TAIL_PROBE_SCHED set, a slow call's label tells how much of it the thread waited for a CPU
  // (/proc/thread-self/schedstat's run-queue wait): the rest it ran, or slept in the kernel (a lock, the journal).
  const sched = process.env.RELAYMQ_TAIL_PROBE_SCHED ? () => Number(fs.readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[1]) / 1000 : undefined;
  const timeSync = (original, label) =>
    function (...args) {
      const waited0 = sched?.();
      const cpu0 = sched === undefined ? undefined : process.cpuUsage();
      const startUs = nowUs();
      try {
        return original.apply(this, args);
      } finally {
        const durationUs = nowUs() - startUs;
        let name = label;
        if (sched !== undefined && durationUs >= IO_FLOOR_US) {
          const cpu = process.cpuUsage(cpu0);
          name = `${label} [waited for a CPU ${Math.round(sched() - waited0)} µs, ran ${cpu.user + cpu.system} µs]`;
        }
        if (durationUs >= IO_FLOOR_US) io.push([startUs, durationUs, process.env.RELAYMQ_TAIL_PROBE_STACKS ? `${name} < ${caller(new Error().stack)}` : name]);
      }
    };
  fs.writeSync = timeSync(fs.writeSync, 'writeSync');
  fs.fdatasyncSync = timeSync(fs.fdatasyncSync, 'fdatasyncSync');
  fs.fsyncSync = timeSync(fs.fsyncSync, 'fsyncSync');
  syncBuiltinESMExports(); // `import { writeSync } from 'node:fs'` in modules loaded after this sees the wrapper
  const timeAsync = (original, label) =>
    function (...args) {
      const startUs = nowUs();
      const stack = process.env.RELAYMQ_TAIL_PROBE_STACKS ? ` < ${caller(new Error().stack)}` : '';
      const record = () => io.push([startUs, nowUs() - startUs, label + stack]);
      const result = original.apply(this, args);
      result.then(record, record);
      return result;
    };
  const probeHandle = await openPromise(process.execPath, 'r');
  const handleProto = Object.getPrototypeOf(probeHandle);
  await probeHandle.close();
  handleProto.datasync = timeAsync(handleProto.datasync, 'datasync (pool)');
  handleProto.sync = timeAsync(handleProto.sync, 'fsync (pool)');

  /** [us, cpuUs so far] */
  const cpu = [];
  const sampleCpu = () => {
    const usage = process.cpuUsage();
    cpu.push([nowUs(), usage.user + usage.system]);
  };
  sampleCpu();
  unwrappedSetInterval(sampleCpu, CPU_SAMPLE_MS).unref(); // the probe's own timer is not part of the study

  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  process.on('exit', () => {
    sampleCpu();
    const idIndex = process.argv.indexOf('--id');
    const id = idIndex > 0 ? process.argv[idIndex + 1] : 'bench';
    const ms = (ns) => Math.round(ns / 1e3) / 1e3;
    writeFileSync(
      join(dir, `probe-${id}-${process.pid}.json`),
      JSON.stringify({
        id,
        pid: process.pid,
        gcs,
        timers,
        io,
        cpu,
        eventLoopDelayMs: { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) },
      }),
    );
  });
}
