/** TEMPORARY diagnostics (RELAYMQ_TRACE_FAILOVER=1): per-second Raft message counts by type and role changes. */
import { monitorEventLoopDelay } from 'node:perf_hooks';

export const TRACE = process.env.RELAYMQ_TRACE_FAILOVER === '1';
const counts = new Map<string, number>();
export function traceCount(key: string, n = 1): void {
  if (TRACE) counts.set(key, (counts.get(key) ?? 0) + n);
}
let started = false;
export function startTrace(self: string, snapshot: () => Record<string, number>): void {
  if (!TRACE || started) return;
  started = true;
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const t0 = Date.now();
  setInterval(() => {
    const parts = [...counts.entries()].sort().map(([k, v]) => `${k}=${v}`);
    counts.clear();
    const snap = snapshot();
    process.stderr.write(
      `TRACE ${self} t=${((Date.now() - t0) / 1000).toFixed(0)} lagMax=${(lag.max / 1e6).toFixed(0)}ms lagP50=${(lag.percentile(50) / 1e6).toFixed(0)}ms ${Object.entries(snap).map(([k, v]) => `${k}=${v}`).join(' ')} ${parts.join(' ')}\n`,
    );
    lag.reset();
  }, 1000).unref();
}

let profiled = false;
/** TEMPORARY: CPU profile of the 10 s after the first peer loss (RELAYMQ_TRACE_PROFILE_DIR). */
export function profileAfterPeerDown(self: string): void {
  const dir = process.env.RELAYMQ_TRACE_PROFILE_DIR;
  if (dir === undefined || profiled) return;
  profiled = true;
  void import('node:inspector').then(({ Session }) => {
    const session = new Session();
    session.connect();
    session.post('Profiler.enable', () =>
      session.post('Profiler.setSamplingInterval', { interval: 500 }, () =>
        session.post('Profiler.start', () => {
          setTimeout(() => {
            session.post('Profiler.stop', (err, result) => {
              if (err === null) void import('node:fs').then((fs) => fs.writeFileSync(`${dir}/${self}.cpuprofile`, JSON.stringify(result.profile)));
              session.disconnect();
            });
          }, 10_000);
        }),
      ),
    );
  });
}
