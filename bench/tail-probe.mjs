// Preload for latency-tail studies (`node --import ./bench/tail-probe.mjs`): when
// RELAYMQ_TAIL_PROBE_DIR is set, the process records its GC pauses, its timer
// callbacks and its CPU time, and writes them at exit to
// <dir>/probe-<broker id or "bench">-<pid>.json for bench/tail-report.ts.
// Every time is CLOCK_MONOTONIC in µs, the clock of process.hrtime in every
// process (and of --cpu-prof), so events of four processes line up with the
// publishes that RELAYMQ_BENCH_SAMPLES_OUT wrote. Plain JS so that the brokers
// (built code, no tsx) can load it through RELAYMQ_BENCH_BROKER_NODE_ARGS.
import { writeFileSync } from 'node:fs';
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
        cpu,
        eventLoopDelayMs: { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) },
      }),
    );
  });
}
