import { describe, expect, it } from 'vitest';
import { formatReport } from './chaos/report.js';
import { runChaos } from './chaos/run.js';
import { FAULT_FAMILIES, type FaultFamily } from './chaos/schedule.js';

/**
 * A short fixed seed of the chaos suite (docs/reliability.md): real broker
 * processes, every link through a fault-injecting proxy, an independent
 * checker over every replica. Longer runs: `npm run chaos`.
 */
const TEST_TIMEOUT_MS = 180_000;

async function chaos(brokers: number, replicationFactor: number, seed: number, faults: readonly FaultFamily[] = FAULT_FAMILIES): Promise<void> {
  const lines: string[] = [];
  const report = await runChaos({ brokers, replicationFactor, seconds: 20, seed, faults: [...faults], partitions: 6, producers: 3, tmpfs: true, keep: false, log: (l) => lines.push(l) });
  const text = formatReport(report);
  // The report (with the replay command) is the failure message.
  if (!report.ok) console.error(`${lines.join('\n')}\n${text}`);
  expect(report.ok, text).toBe(true);
  expect(report.acked).toBeGreaterThan(1000);
  expect(Object.values(report.faultsByFamily).reduce((a, b) => a + (b ?? 0), 0)).toBeGreaterThanOrEqual(3);
}

describe('chaos suite, short fixed seeds: nothing acknowledged lost, duplicated, misplaced or reordered; replicas and subscribers agree', () => {
  // Seed 7, every family: at 3 brokers client cut, split, one-way, full disk, crash-all; at 5 the same without the crash-all.
  it('3 brokers, replication factor 3', () => chaos(3, 3, 7), TEST_TIMEOUT_MS);
  // Five brokers: with RF 3 each hosts only some partitions, so delivery and routing cross brokers.
  it('5 brokers, replication factor 3', () => chaos(5, 3, 7), TEST_TIMEOUT_MS);
  it('5 brokers, replication factor 5', () => chaos(5, 5, 7), TEST_TIMEOUT_MS);
});
