/**
 * What a broker process says about itself while a benchmark runs: its own
 * counters from `/metrics`, and its resident memory from /proc.
 */
import { readFileSync } from 'node:fs';
import { roundTo } from './scenarios.js';

/** Node's heap gauges in `/metrics` (prom-client's default metrics), by the name {@link brokerStats} gives them. */
const HEAP_GAUGES: Record<string, string> = {
  relaymq_process_nodejs_heap_size_used_bytes: 'heapUsedBytes',
  relaymq_process_nodejs_heap_size_total_bytes: 'heapTotalBytes',
  relaymq_process_nodejs_external_memory_bytes: 'externalBytes',
};

/**
 * The broker's numeric `relaymq_broker_stat` series from its `/metrics`, by
 * stat name, and its heap gauges as `heapUsedBytes`, `heapTotalBytes` and
 * `externalBytes` (empty when unavailable).
 */
export async function brokerStats(adminPort: number): Promise<Map<string, number>> {
  const stats = new Map<string, number>();
  try {
    const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`, { signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    for (const line of text.split('\n')) {
      const match = /^relaymq_broker_stat\{[^}]*stat="([^"]+)"[^}]*\} (\S+)$/.exec(line);
      if (match !== null) stats.set(match[1] as string, Number(match[2]));
      const gauge = /^(\w+)(?:\{[^}]*\})? (\S+)$/.exec(line);
      const name = gauge === null ? undefined : HEAP_GAUGES[gauge[1] as string];
      if (name !== undefined) stats.set(name, Number(gauge?.[2]));
    }
  } catch {
    // An older broker, or none: the counters are left out.
  }
  return stats;
}

/** Resident memory of process `pid` in MiB, from /proc (NaN where unavailable). */
export function rssMiB(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? Number.NaN : roundTo(Number(match[1]) / 1024, 1);
  } catch {
    return Number.NaN;
  }
}
