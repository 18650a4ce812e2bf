/**
 * What a broker process says about itself while a benchmark runs: its own
 * counters from `/metrics`, and its resident memory from /proc.
 */
import { readFileSync } from 'node:fs';
import { roundTo } from './scenarios.js';

/** The broker's numeric `relaymq_broker_stat` series from its `/metrics`, by stat name (empty when unavailable). */
export async function brokerStats(adminPort: number): Promise<Map<string, number>> {
  const stats = new Map<string, number>();
  try {
    const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`, { signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    for (const line of text.split('\n')) {
      const match = /^relaymq_broker_stat\{[^}]*stat="([^"]+)"[^}]*\} (\S+)$/.exec(line);
      if (match !== null) stats.set(match[1] as string, Number(match[2]));
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
